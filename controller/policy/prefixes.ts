// Prefix arithmetic for the policy engine, on [start, end] bigint intervals. Prefixes are never
// expanded into addresses: merging works on intervals and cuts them back into the fewest CIDR blocks.
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface ParsedPrefix {
  family: Family;
  /** First address. */
  start: bigint;
  /** Last address (inclusive). */
  end: bigint;
  length: number;
  /** Canonical text, e.g. "10.20.1.0/24", "fd00:20::/48". */
  text: string;
  /**
   * start and end as plain numbers for fast sorting and merging: exact for IPv4; for IPv6 the top
   * 53 bits (ties fall back to the bigints).
   */
  key: number;
  endKey: number;
}

const V6_SHIFT = 75n;

export function makePrefix(family: Family, start: bigint, end: bigint, length: number, text: string): ParsedPrefix {
  const key = family === 4 ? Number(start) : Number(start >> V6_SHIFT);
  const endKey = family === 4 ? Number(end) : Number(end >> V6_SHIFT);
  return { family, start, end, length, text, key, endKey };
}

function v4Text(n: number): string {
  return `${Math.floor(n / 16777216) % 256}.${Math.floor(n / 65536) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`;
}

const V4_PREFIX = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** The 32-bit value of the four decimal octets in m[1..4]; undefined for a leading zero or > 255. */
function v4Value(m: RegExpExecArray): number | undefined {
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const o = m[i];
    if (o.length > 1 && o[0] === '0') return undefined;
    const n = Number(o);
    if (n > 255) return undefined;
    v = v * 256 + n;
  }
  return v;
}

/** Canonical IPv4 "a.b.c.d/len" without host bits, parsed with plain numbers; undefined otherwise. */
function fastV4(text: string): ParsedPrefix | undefined {
  const m = V4_PREFIX.exec(text);
  if (!m) return undefined;
  const v = v4Value(m);
  if (v === undefined) return undefined;
  const length = Number(m[5]);
  if (length > 32 || (m[5].length > 1 && m[5][0] === '0')) return undefined;
  const size = 2 ** (32 - length);
  if (v % size !== 0) return undefined;
  return makePrefix(4, BigInt(v), BigInt(v + size - 1), length, text);
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function bytesToBigint(bytes: number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function bigintToAddress(family: Family, v: bigint): string {
  if (family === 4) {
    const n = Number(v);
    return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const bytes: number[] = new Array<number>(16);
  for (let i = 15; i >= 0; i--) {
    bytes[i] = Number(v & 255n);
    v >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

function blockSize(family: Family, length: number): bigint {
  return 1n << BigInt(BITS[family] - length);
}

/** Parses a plain address (no prefix length) strictly: IPv4 only as four decimal parts. */
export function parseAddress(text: string): { family: Family; value: bigint; text: string } | undefined {
  const t = text.trim();
  if (t.includes('/')) return undefined;
  const m = IPV4.exec(t);
  if (m) {
    // Fast path (most prefixes are IPv4): four decimal octets, no leading zeros (no octal doubt).
    const v = v4Value(m);
    if (v === undefined) return undefined;
    return { family: 4, value: BigInt(v), text: `${Number(m[1])}.${Number(m[2])}.${Number(m[3])}.${Number(m[4])}` };
  }
  if (!t.includes(':')) return undefined;
  if (ipaddr.IPv6.isValid(t)) {
    const a = ipaddr.IPv6.parse(t);
    if (a.zoneId) return undefined;
    return { family: 6, value: bytesToBigint(a.toByteArray()), text: a.toString() };
  }
  return undefined;
}

export type PrefixParse =
  | { ok: true; prefix: ParsedPrefix }
  | { ok: false; reason: 'syntax'; message: string }
  | { ok: false; reason: 'host-bits'; message: string; network: string };

/** Parses "ADDR/LEN" strictly. Host bits set is an error that names the network address. */
export function parsePrefixStrict(text: string): PrefixParse {
  const fast = fastV4(text);
  if (fast) return { ok: true, prefix: fast };
  const t = text.trim();
  const slash = t.indexOf('/');
  if (slash < 0) return { ok: false, reason: 'syntax', message: `"${text}" is not a prefix: write it as ADDRESS/LENGTH, e.g. 10.20.1.0/24` };
  const addr = parseAddress(t.slice(0, slash));
  const lenText = t.slice(slash + 1);
  if (!addr) return { ok: false, reason: 'syntax', message: `"${text}" is not a valid IPv4 or IPv6 prefix` };
  const bits = BITS[addr.family];
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > bits) {
    return { ok: false, reason: 'syntax', message: `"${text}": prefix length must be 0-${bits}` };
  }
  const length = Number(lenText);
  const size = blockSize(addr.family, length);
  const start = addr.value - (addr.value % size);
  const canonical = `${bigintToAddress(addr.family, start)}/${length}`;
  if (start !== addr.value) {
    return { ok: false, reason: 'host-bits', message: `"${text}" has host bits set; the network address is ${canonical}`, network: canonical };
  }
  return { ok: true, prefix: makePrefix(addr.family, start, start + size - 1n, length, canonical) };
}

/** A parse cache: canonical prefixes are parsed once per process-lifetime of the cache. */
export class PrefixCache {
  private readonly map = new Map<string, ParsedPrefix>();
  /** Lenient: a prefix with host bits set gives its network; invalid text gives undefined. */
  lenient(text: string): ParsedPrefix | undefined {
    const hit = this.map.get(text);
    if (hit) return hit;
    const r = parsePrefixStrict(text);
    if (r.ok) {
      this.map.set(text, r.prefix);
      return r.prefix;
    }
    return r.reason === 'host-bits' ? this.get(r.network) : undefined;
  }

  get(text: string): ParsedPrefix {
    let p = this.map.get(text);
    if (!p) {
      const r = parsePrefixStrict(text);
      if (!r.ok) throw new Error(`internal: non-canonical prefix ${text}: ${r.message}`);
      p = r.prefix;
      this.map.set(text, p);
    }
    return p;
  }
}

export function comparePrefixes(a: ParsedPrefix, b: ParsedPrefix): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.key !== b.key) return a.key - b.key;
  if (a.family === 6 && a.start !== b.start) return a.start < b.start ? -1 : 1;
  return a.length - b.length;
}

/** Cuts the inclusive range [start, end] into the fewest aligned CIDR blocks. */
function rangeToPrefixes(family: Family, start: bigint, end: bigint, out: ParsedPrefix[]): void {
  const bits = BITS[family];
  while (start <= end) {
    // Largest block aligned at `start` that does not pass `end`.
    let length = bits;
    while (length > 0) {
      const size = blockSize(family, length - 1);
      if (start % size !== 0n || start + size - 1n > end) break;
      length--;
    }
    const size = blockSize(family, length);
    out.push(makePrefix(family, start, start + size - 1n, length, `${bigintToAddress(family, start)}/${length}`));
    start += size;
  }
}

/** IPv4 version on plain numbers (exact below 2^53). */
function rangeToPrefixesV4(start: number, end: number, out: ParsedPrefix[]): void {
  while (start <= end) {
    let length = 32;
    while (length > 0) {
      const size = 2 ** (33 - length);
      if (start % size !== 0 || start + size - 1 > end) break;
      length--;
    }
    const size = 2 ** (32 - length);
    out.push(makePrefix(4, BigInt(start), BigInt(start + size - 1), length, `${v4Text(start)}/${length}`));
    start += size;
  }
}

/**
 * Merges prefixes into the fewest prefixes covering exactly their union, sorted (IPv4 first, then by
 * address). Works on intervals: a /8 stays one interval, never 16 million addresses.
 */
export function mergeParsed(prefixes: readonly ParsedPrefix[]): ParsedPrefix[] {
  if (prefixes.length <= 1) return prefixes.slice();
  const sorted = prefixes.slice().sort(comparePrefixes);
  const out: ParsedPrefix[] = [];
  let i = 0;
  while (i < sorted.length) {
    const first = sorted[i];
    let count = 1;
    let j = i + 1;
    if (first.family === 4) {
      let end = first.endKey;
      while (j < sorted.length && sorted[j].family === 4 && sorted[j].key <= end + 1) {
        if (sorted[j].endKey > end) end = sorted[j].endKey;
        count++;
        j++;
      }
      if (count === 1 || end === first.endKey) out.push(first); // alone, or everything else was inside it
      else rangeToPrefixesV4(first.key, end, out);
    } else {
      let end = first.end;
      while (j < sorted.length && sorted[j].family === first.family && sorted[j].start <= end + 1n) {
        if (sorted[j].end > end) end = sorted[j].end;
        count++;
        j++;
      }
      if (count === 1 || end === first.end) out.push(first);
      else rangeToPrefixes(first.family, first.start, end, out);
    }
    i = j;
  }
  return out;
}

/** Merge canonical prefix texts; returns canonical sorted texts. */
export function mergePrefixes(cache: PrefixCache, texts: Iterable<string>): string[] {
  const parsed: ParsedPrefix[] = [];
  for (const t of texts) parsed.push(cache.get(t));
  return mergeParsed(parsed).map((p) => p.text);
}

export function prefixContains(outer: ParsedPrefix, inner: ParsedPrefix): boolean {
  if (outer.family !== inner.family) return false;
  if (outer.family === 4) return outer.key <= inner.key && inner.endKey <= outer.endKey;
  return outer.start <= inner.start && inner.end <= outer.end;
}

export function prefixesOverlap(a: ParsedPrefix, b: ParsedPrefix): boolean {
  return a.family === b.family && a.start <= b.end && b.start <= a.end;
}

export function containsAddress(p: ParsedPrefix, family: Family, value: bigint): boolean {
  return p.family === family && p.start <= value && value <= p.end;
}

/** Host prefix text for a plain address. */
export function hostPrefixOf(address: string): string | undefined {
  const a = parseAddress(address);
  if (!a) return undefined;
  return `${a.text}/${BITS[a.family]}`;
}

/** True if every prefix of `inner` lies inside some prefix of `outer` (prefixes nest or are disjoint). */
export function allCovered(outer: readonly ParsedPrefix[], inner: readonly ParsedPrefix[]): boolean {
  return inner.every((p) => outer.some((o) => prefixContains(o, p)));
}
