// The validator's error list and the shape checks every section of a policy file shares: a map's
// fields, text, lists of names, maps by name, and the flow (proto/port/expect) of a test or probe.
import type { ErrorDetail } from '../../../lib/errors.js';
import { didYouMean, isValidName } from '../names.js';
import { formatPath, type PathSegment, type Position } from '../parse.js';

export type Raw = Record<string, unknown>;

export function isRecord(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function typeName(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return `${typeof v} ${JSON.stringify(v)}`;
}

export function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export interface Flow {
  proto: 'tcp' | 'udp' | 'icmp' | 'any';
  port?: number;
  expect: 'allow' | 'deny';
}

export class Checker {
  readonly errors: ErrorDetail[] = [];

  constructor(private readonly locate?: (path: readonly PathSegment[], isKey?: boolean) => Position | undefined) {}

  /**
   * A function as the message is called only when the message is read: a suggestion ("did you
   * mean") compares the name with every candidate, and a damaged 10,000-subnet file can hold
   * 10,000 such errors of which limitErrors() shows 50 (computing all of them took 30 s).
   */
  err(path: readonly PathSegment[], message: string | (() => string), isKey = false): void {
    const pos = this.locate?.(path, isKey);
    const d: ErrorDetail = { path: formatPath(path), message: typeof message === 'string' ? message : '' };
    if (typeof message === 'function') {
      let text: string | undefined;
      Object.defineProperty(d, 'message', { get: () => (text ??= message()), enumerable: true, configurable: true });
    }
    if (pos) {
      d.line = pos.line;
      d.column = pos.column;
    }
    this.errors.push(d);
  }

  /** Checks a map's keys; reports unknown ones (with a suggestion) and missing required ones. */
  fields(v: unknown, path: PathSegment[], allowed: string[], required: string[], what: string): Raw | undefined {
    if (!isRecord(v)) {
      this.err(path, `${what} must be a map with ${allowed.map((k) => `"${k}"`).join(', ')}; got ${typeName(v)}`);
      return undefined;
    }
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k))
        this.err([...path, k], () => `unknown field "${k}" in ${what}${didYouMean(k, allowed)}`, true);
    }
    for (const k of required) {
      if (v[k] === undefined || v[k] === null) this.err(path, `${what} is missing "${k}"`);
    }
    return v;
  }

  optString(v: Raw, key: string, path: PathSegment[]): string | undefined {
    const x = v[key];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'string' && typeof x !== 'number') {
      this.err([...path, key], `"${key}" must be text; got ${typeName(x)}`);
      return undefined;
    }
    return String(x);
  }

  /** A string or a list of strings -> list; reports each bad entry. */
  stringList(x: unknown, path: PathSegment[], what: string): string[] {
    if (x === undefined || x === null) return [];
    if (typeof x === 'string') return [x];
    if (!Array.isArray(x)) {
      this.err(path, `${what} must be a name or a list of names; got ${typeName(x)}`);
      return [];
    }
    const out: string[] = [];
    x.forEach((item, i) => {
      if (typeof item === 'string') out.push(item);
      else this.err([...path, i], `${what} entries must be names; got ${typeName(item)}`);
    });
    return out;
  }

  namedMap(v: unknown, path: PathSegment[], what: string): Array<[string, unknown]> {
    if (v === undefined || v === null) return [];
    if (!isRecord(v)) {
      this.err(path, `"${path[path.length - 1]}" must be a map of ${what} by name; got ${typeName(v)}`);
      return [];
    }
    const entries = Object.entries(v);
    for (const [name] of entries) {
      if (!isValidName(name))
        this.err(
          [...path, name],
          `${what} name "${name}" is invalid: use lowercase letters, digits and hyphens (1-63 characters)`,
          true,
        );
    }
    return entries;
  }

  /** A section that must be a list when present: its entries (none when absent or wrong). */
  list(v: unknown, path: PathSegment[], what: string): unknown[] {
    if (v !== undefined && v !== null && !Array.isArray(v))
      this.err(path, `${what} must be a list; got ${typeName(v)}`);
    return Array.isArray(v) ? v : [];
  }

  /** proto/port/expect of a test or probe. */
  flow(f: Raw, p: PathSegment[], isProbe: boolean): Flow | undefined {
    let ok = true;
    let expect: 'allow' | 'deny' = 'allow';
    if (f.expect !== undefined && f.expect !== null) {
      if (f.expect === 'allow' || f.expect === 'deny') expect = f.expect;
      else {
        this.err([...p, 'expect'], `expect must be "allow" or "deny"; got ${typeName(f.expect)}`);
        ok = false;
      }
    }
    let proto: 'tcp' | 'udp' | 'icmp' | 'any' | undefined;
    if (f.proto !== undefined && f.proto !== null) {
      if (f.proto === 'tcp' || f.proto === 'udp' || f.proto === 'icmp') proto = f.proto;
      else {
        this.err([...p, 'proto'], `proto must be tcp, udp or icmp; got ${typeName(f.proto)}`);
        ok = false;
      }
    }
    let port: number | undefined;
    if (f.port !== undefined && f.port !== null) {
      if (typeof f.port === 'number' && Number.isInteger(f.port) && f.port >= 1 && f.port <= 65535) port = f.port;
      else {
        this.err([...p, 'port'], `port must be a number 1-65535; got ${typeName(f.port)}`);
        ok = false;
      }
    }
    if (!ok) return undefined;
    if (proto === 'icmp' && port !== undefined) {
      this.err([...p, 'port'], 'icmp has no port');
      return undefined;
    }
    if ((proto === 'tcp' || proto === 'udp') && port === undefined) {
      this.err(p, `${proto} needs a port`);
      return undefined;
    }
    if (proto === undefined) proto = port !== undefined ? 'tcp' : isProbe ? 'icmp' : 'any';
    return port === undefined ? { proto, expect } : { proto, port, expect };
  }

  /** The errors in document order: by line when known, then by path; stable otherwise. */
  sorted(): ErrorDetail[] {
    return this.errors
      .map((e, i) => ({ e, i }))
      .sort(
        (a, b) => (a.e.line ?? Infinity) - (b.e.line ?? Infinity) || (a.e.column ?? 0) - (b.e.column ?? 0) || a.i - b.i,
      )
      .map((x) => x.e);
  }
}
