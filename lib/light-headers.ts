// A small WHATWG Headers, for the agent bundle only: the Makefile's AGENT_BUNDLE rule injects it
// (esbuild --inject) wherever the bundled code names the global `Headers` (the Connect client
// builds every request's and response's headers with it). Node 20's global Headers is undici's:
// the first use loads node's whole fetch implementation (its JS, a WebAssembly HTTP parser), which
// cost the long-running agent ~4 MB of RSS for a map of a few strings (docs/performance.md, "Agent
// memory"). globalThis is not changed: anything that calls fetch gets undici's own Headers.
// Behaviour follows the Fetch standard's Headers (lib/light-headers.test.ts holds it equal to
// node's over a table of uses): names case-insensitive and validated, values trimmed and checked,
// repeated names joined with ", " (Set-Cookie kept apart), iteration in sorted lowercase order.

type Init = Iterable<readonly [string, string]> | Record<string, string> | LightHeaders;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const trim = (v: string) => v.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');

function checkName(name: string): string {
  if (!TOKEN.test(name)) throw new TypeError(`Headers: invalid header name "${name}"`);
  return name.toLowerCase();
}
function checkValue(value: string): string {
  const v = trim(String(value));
  if (/[\0\r\n]/.test(v)) throw new TypeError(`Headers: invalid header value "${v}"`);
  return v;
}

export class LightHeaders {
  readonly #fields = new Map<string, string>();
  #setCookie: string[] = [];

  constructor(init?: Init) {
    if (init === undefined || init === null) return;
    if (typeof init !== 'object') throw new TypeError('Headers: init is not an object');
    if (Symbol.iterator in init) {
      for (const pair of init as Iterable<readonly [string, string]>) {
        if (pair.length !== 2) throw new TypeError('Headers: a header pair must have two items');
        this.append(pair[0], pair[1]);
      }
    } else for (const [k, v] of Object.entries(init)) this.append(k, v);
  }

  append(name: string, value: string): void {
    const k = checkName(String(name));
    const v = checkValue(value);
    if (k === 'set-cookie') this.#setCookie.push(v);
    const had = this.#fields.get(k);
    this.#fields.set(k, had === undefined ? v : `${had}, ${v}`);
  }

  set(name: string, value: string): void {
    const k = checkName(String(name));
    const v = checkValue(value);
    if (k === 'set-cookie') this.#setCookie = [v];
    this.#fields.set(k, v);
  }

  delete(name: string): void {
    const k = checkName(String(name));
    if (k === 'set-cookie') this.#setCookie = [];
    this.#fields.delete(k);
  }

  get(name: string): string | null {
    return this.#fields.get(checkName(String(name))) ?? null;
  }

  has(name: string): boolean {
    return this.#fields.has(checkName(String(name)));
  }

  getSetCookie(): string[] {
    return [...this.#setCookie];
  }

  *entries(): IterableIterator<[string, string]> {
    for (const k of [...this.#fields.keys()].sort()) {
      if (k === 'set-cookie') for (const v of this.#setCookie) yield [k, v];
      else yield [k, this.#fields.get(k)!];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): IterableIterator<string> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  forEach(callback: (value: string, name: string, parent: LightHeaders) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) callback.call(thisArg, v, k, this);
  }

  get [Symbol.toStringTag](): string {
    return 'Headers';
  }
}

export { LightHeaders as Headers };
