// Prefix arithmetic for the policy engine, on [start, end] bigint intervals. Prefixes are never
// expanded into addresses: merging works on intervals and cuts them back into the fewest CIDR blocks.
import {
  canonicalText,
  formatIPv4,
  formatIPv6,
  hasHostBits,
  parseAddress as scan,
  parsePrefix,
  rangeOf,
  type Family,
} from '../../lib/prefix.js';

export type { Family };

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

function bigintToAddress(family: Family, v: bigint): string {
  return family === 4 ? formatIPv4(Number(v)) : formatIPv6(v);
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

function blockSize(family: Family, length: number): bigint {
  return 1n << BigInt(BITS[family] - length);
}

/** Parses a plain address (no prefix length) strictly: IPv4 only as four decimal parts. */
export function parseAddress(text: string): { family: Family; value: bigint; text: string } | undefined {
  const t = text.trim();
  const a = scan(t);
  if (!a) return undefined;
  return a.family === 4
    ? { family: 4, value: BigInt(a.addr), text: t }
    : { family: 6, value: a.addr, text: formatIPv6(a.addr) };
}

export type PrefixParse =
  | { ok: true; prefix: ParsedPrefix }
  | { ok: false; reason: 'syntax'; message: string }
  | { ok: false; reason: 'host-bits'; message: string; network: string };

/** Parses "ADDR/LEN" strictly. Host bits set is an error that names the network address. */
export function parsePrefixStrict(text: string): PrefixParse {
  const r = parsePrefix(text);
  if (!r.ok) return { ok: false, reason: 'syntax', message: r.message };
  const canonical = canonicalText(r.prefix, text);
  if (hasHostBits(r.prefix)) {
    return {
      ok: false,
      reason: 'host-bits',
      message: `"${text}" has host bits set; the network address is ${canonical}`,
      network: canonical,
    };
  }
  const { start, end } = rangeOf(r.prefix);
  return { ok: true, prefix: makePrefix(r.prefix.family, BigInt(start), BigInt(end), r.prefix.len, canonical) };
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
    out.push(makePrefix(4, BigInt(start), BigInt(start + size - 1), length, `${formatIPv4(start)}/${length}`));
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
  for (let first = sorted[0]; first; first = sorted[i]) {
    let count = 1;
    let j = i + 1;
    if (first.family === 4) {
      let end = first.endKey;
      for (let next = sorted[j]; next && next.family === 4 && next.key <= end + 1; next = sorted[++j]) {
        if (next.endKey > end) end = next.endKey;
        count++;
      }
      if (count === 1 || end === first.endKey)
        out.push(first); // alone, or everything else was inside it
      else rangeToPrefixesV4(first.key, end, out);
    } else {
      let end = first.end;
      for (let next = sorted[j]; next && next.family === first.family && next.start <= end + 1n; next = sorted[++j]) {
        if (next.end > end) end = next.end;
        count++;
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
