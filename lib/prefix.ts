// IPv4/IPv6 addresses and prefixes, for the controller and the agent alike: one scanner, one
// parsed type, no state. A scanner over char codes rather than ipaddr.js or regular expressions:
// 10-60x faster on IPv4, which is most of a config (docs/performance.md, "Prefix scanner").
//
// Grammar (strict): IPv4 as four decimal octets 0-255 without leading zeros; IPv6 as RFC 4291 text
// (1-4 hex digits a group, one "::", an IPv4 tail), no zone id; a prefix is ADDRESS/LENGTH with a
// 1-3 digit length, surrounding white space ignored. Lenient (what a host prints): the length may
// be left out (a host prefix) and have any number of digits, and an IPv6 address may carry a zone.

export type Family = 4 | 6;

/** An address: IPv4 as a number (0 to 2^32 - 1), IPv6 as a bigint; `zone` only from a lenient parse. */
export type Address =
  { readonly family: 4; readonly addr: number } | { readonly family: 6; readonly addr: bigint; readonly zone?: string };

/** A parsed prefix: the address as written (host bits may be set: see hasHostBits, networkOf). */
export type Prefix = Address & { readonly len: number };

export type PrefixResult = { ok: true; prefix: Prefix } | { ok: false; message: string };

export const bitsOf = (family: Family): number => (family === 4 ? 32 : 128);

/** The decimal number in text[from, to) (leading zeros allowed) if it is <= max; -1 otherwise. */
function scanDecimal(text: string, from: number, to: number, max: number): number {
  if (from >= to) return -1;
  let v = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
    if (v > max) return -1;
  }
  return v;
}

/** Dotted-quad IPv4 in text[from, to): its value, or -1. `zeros`: octets may have leading zeros
 *  (read as decimal), as ipaddr.js allows in an IPv6 address's IPv4 tail. One pass, no calls: the
 *  agent parses ~20,000 prefixes before the JIT has warmed up. */
export function scanIPv4(text: string, from = 0, to = text.length, zeros = false): number {
  let n = 0;
  let v = 0;
  let digits = 0;
  let parts = 0;
  for (let i = from; i <= to; i++) {
    const c = i < to ? text.charCodeAt(i) : 46; // the end closes the last octet like a '.'
    if (c === 46) {
      if (digits === 0 || ++parts > 4) return -1;
      n = n * 256 + v;
      v = 0;
      digits = 0;
    } else {
      if (c < 48 || c > 57 || (digits === 1 && v === 0 && !zeros)) return -1; // not a digit, or after a leading 0
      v = v * 10 + (c - 48);
      digits++;
      if (v > 255) return -1;
    }
  }
  return parts === 4 ? n : -1;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 32; // lower case
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** IPv6 in text[from, to) (no zone): its value, or undefined. "::a.b.c.d" reads as ::ffff:a.b.c.d,
 *  as ipaddr.js (and so this code before the scanner) has it. */
export function scanIPv6(text: string, from = 0, to = text.length): bigint | undefined {
  const groups: number[] = [];
  let gap = -1; // index in groups where "::" stands
  let at = from;
  let v4Tail = false;
  if (text.charCodeAt(at) === 58 && text.charCodeAt(at + 1) === 58) {
    gap = 0;
    at += 2;
  }
  while (at < to) {
    let v = 0;
    let end = at;
    for (let d; end < to && (d = hexDigit(text.charCodeAt(end))) >= 0; end++) v = v * 16 + d;
    if (end < to && text.charCodeAt(end) === 46) {
      // '.': the IPv4 tail ends the address
      const n = scanIPv4(text, at, to, true);
      if (n < 0) return undefined;
      groups.push(Math.floor(n / 65536), n % 65536);
      v4Tail = true;
      break;
    }
    if (end === at || end - at > 4) return undefined;
    groups.push(v);
    if (end === to) break;
    if (text.charCodeAt(end) !== 58) return undefined; // ':'
    at = end + 1;
    if (text.charCodeAt(at) === 58) {
      if (gap >= 0) return undefined;
      gap = groups.length;
      at++;
    } else if (at === to) return undefined; // a single trailing ':'
  }
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) return undefined;
  if (gap === 0 && v4Tail && groups.length === 2) groups.unshift(0xffff); // "::a.b.c.d"
  const fill = 8 - groups.length; // 0 without a gap
  const groupAt = (i: number): number => (i < gap || gap < 0 ? groups[i]! : i < gap + fill ? 0 : groups[i - fill]!); // i < 8
  const word = (i: number): bigint => BigInt(groupAt(i) * 65536 + groupAt(i + 1));
  return (word(0) << 96n) | (word(2) << 64n) | (word(4) << 32n) | word(6);
}

/** A zone id as ipaddr.js reads one: "%" and one or more ASCII letters or digits. */
function isZone(text: string, from: number, to: number): boolean {
  if (to - from < 2) return false;
  for (let i = from + 1; i < to; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122))) return false;
  }
  return true;
}

/** An address in text[from, to), exactly (no white space); `zone`: an IPv6 zone id is allowed. */
export function scanAddress(text: string, from = 0, to = text.length, zone = false): Address | undefined {
  const v4 = scanIPv4(text, from, to);
  if (v4 >= 0) return { family: 4, addr: v4 };
  const pct = zone ? text.indexOf('%', from) : -1;
  const end = pct >= 0 && pct < to ? pct : to;
  if (end !== to && !isZone(text, end, to)) return undefined;
  const v6 = scanIPv6(text, from, end);
  if (v6 === undefined) return undefined;
  return end === to ? { family: 6, addr: v6 } : { family: 6, addr: v6, zone: text.slice(end + 1, to) };
}

/** Parses a plain address strictly (no length, no zone, no white space). */
export function parseAddress(text: string): Address | undefined {
  return scanAddress(text);
}

/**
 * Parses "ADDRESS/LENGTH" (white space around it ignored); host bits may be set. The error says
 * what is wrong: no length, not an address, or a length out of range.
 */
export function parsePrefix(text: string, lenient = false): PrefixResult {
  let from = 0;
  let to = text.length;
  while (from < to && isSpace(text.charCodeAt(from))) from++;
  while (to > from && isSpace(text.charCodeAt(to - 1))) to--;
  const slash = text.indexOf('/', from);
  if ((slash < 0 || slash >= to) && !lenient)
    return { ok: false, message: `"${text}" is not a prefix: write it as ADDRESS/LENGTH, e.g. 10.20.1.0/24` };
  const hasLen = slash >= 0 && slash < to;
  const addrEnd = hasLen ? slash : to;
  const v4 = scanIPv4(text, from, addrEnd);
  const a = v4 >= 0 ? undefined : scanAddress(text, from, addrEnd, lenient);
  if (v4 < 0 && !a) return { ok: false, message: `"${text}" is not a valid IPv4 or IPv6 prefix` };
  const bits = v4 >= 0 ? 32 : 128;
  const len = !hasLen ? bits : to - slash - 1 <= 3 || lenient ? scanDecimal(text, slash + 1, to, bits) : -1;
  if (len < 0) return { ok: false, message: `"${text}": prefix length must be 0-${bits}` };
  return { ok: true, prefix: a ? { ...a, len } : { family: 4, addr: v4, len } };
}

// String.prototype.trim()'s white space: what the parsers before this one trimmed.
function isSpace(c: number): boolean {
  if (c > 32 && c < 160) return false; // the usual case, first
  return (
    c === 32 ||
    (c >= 9 && c <= 13) ||
    c === 160 ||
    c === 0xfeff ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

/** The host bits of an IPv6 address under a prefix length. */
const hostBits6 = (addr: bigint, len: number): bigint => BigInt.asUintN(128 - len, addr);

/** First and last address of the prefix (host bits cleared / set). */
export function rangeOf(
  p: Prefix,
): { family: 4; start: number; end: number } | { family: 6; start: bigint; end: bigint } {
  if (p.family === 4) {
    const size = 2 ** (32 - p.len);
    const start = p.addr - (p.addr % size);
    return { family: 4, start, end: start + size - 1 };
  }
  const start = p.addr - hostBits6(p.addr, p.len);
  return { family: 6, start, end: start + ((1n << BigInt(128 - p.len)) - 1n) };
}

export function hasHostBits(p: Prefix): boolean {
  return p.family === 4 ? p.addr % 2 ** (32 - p.len) !== 0 : hostBits6(p.addr, p.len) !== 0n;
}

/** The network of a prefix: host bits cleared, zone dropped. */
export function networkOf(p: Prefix): Prefix {
  if (p.family === 4)
    return hasHostBits(p) ? { family: 4, addr: p.addr - (p.addr % 2 ** (32 - p.len)), len: p.len } : p;
  return { family: 6, addr: p.addr - hostBits6(p.addr, p.len), len: p.len };
}

export function formatIPv4(n: number): string {
  return `${Math.floor(n / 16777216)}.${Math.floor(n / 65536) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run (leftmost of equals) of two or more
 *  zero groups as "::"; an IPv4 tail is written in hex, as ipaddr.js writes it. */
export function formatIPv6(v: bigint): string {
  const g: number[] = [];
  for (const w of [
    Number(v >> 96n),
    Number((v >> 64n) & 0xffffffffn),
    Number((v >> 32n) & 0xffffffffn),
    Number(v & 0xffffffffn),
  ]) {
    g.push(Math.floor(w / 65536), w % 65536);
  }
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      out += '::';
      i += bestLen - 1;
    } else out += (i > 0 && i !== best + bestLen ? ':' : '') + g[i]!.toString(16);
  }
  return out;
}

/** The address's text (with its zone, if any). */
export function formatAddress(a: Address): string {
  if (a.family === 4) return formatIPv4(a.addr);
  return a.zone === undefined ? formatIPv6(a.addr) : `${formatIPv6(a.addr)}%${a.zone}`;
}

/** "ADDRESS/LENGTH" as parsed (host bits kept): an interface address. */
export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p)}/${p.len}`;
}

const digits = (n: number): number => (n < 10 ? 1 : n < 100 ? 2 : 3);

/**
 * The canonical text of the prefix's network ("10.1.0.0/24", "2001:db8::/48"). `text`, the text it
 * was parsed from, is returned itself when it is canonical already (the usual case for IPv4: checked
 * by its length, since the scanner admits no other text of that length for the same prefix).
 */
export function canonicalText(p: Prefix, text?: string): string {
  if (p.family === 6) return p.zone === undefined && !hasHostBits(p) ? formatPrefix(p) : formatPrefix(networkOf(p));
  if (text !== undefined && !hasHostBits(p)) {
    const n = p.addr;
    const lenDigits = p.len < 10 ? 1 : 2;
    const want =
      digits(n >>> 24) + digits((n >>> 16) & 255) + digits((n >>> 8) & 255) + digits(n & 255) + 4 + lenDigits;
    if (text.length === want && text.charCodeAt(want - 1 - lenDigits) === 47) return text; // '/' there: nothing trimmed
  }
  return formatPrefix(networkOf(p));
}

/** True when `outer` contains every address of `inner` (same family). */
export function contains(outer: Prefix, inner: Prefix): boolean {
  if (outer.len > inner.len) return false;
  if (outer.family === 4)
    return (
      inner.family === 4 &&
      Math.floor(outer.addr / 2 ** (32 - outer.len)) === Math.floor(inner.addr / 2 ** (32 - outer.len))
    );
  return inner.family === 6 && (outer.addr ^ inner.addr) >> BigInt(128 - outer.len) === 0n;
}

/** True when the address lies in the prefix. */
export function containsAddress(p: Prefix, a: Address): boolean {
  return contains(p, a.family === 4 ? { family: 4, addr: a.addr, len: 32 } : { family: 6, addr: a.addr, len: 128 });
}

/** True when the two prefixes share an address (prefixes nest or are disjoint). */
export function overlaps(a: Prefix, b: Prefix): boolean {
  return contains(a, b) || contains(b, a);
}
