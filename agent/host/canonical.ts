// Canonical text and ordering for prefixes and interface addresses, shared by the renderer, the fake
// host and the Linux adapters so that "observed" and "desired" compare equal byte for byte.
import ipaddr from 'ipaddr.js';
import { CrosslinkError } from '../../lib/errors.js';

export interface ParsedPrefix {
  /** Canonical text, e.g. "10.1.0.0/24", "2001:db8::/48". */
  text: string;
  family: 4 | 6;
  len: number;
  /** First and last address as fixed-width lowercase hex (8 or 32 digits): string order = numeric order. */
  startHex: string;
  endHex: string;
}

function bytesToHex(bytes: number[]): string {
  let s = '';
  for (const b of bytes) s += (b < 16 ? '0' : '') + b.toString(16);
  return s;
}

/** Keep the first `len` bits of a hex address, fill the rest with `fill` ('0' or 'f'). */
export function maskHex(hex: string, len: number, fill: '0' | 'f' = '0'): string {
  const full = len >> 2;
  const rem = len & 3;
  if (full >= hex.length) return hex;
  let out = hex.slice(0, full);
  let tail = hex.length - full;
  if (rem > 0) {
    const nib = parseInt(hex[full], 16);
    const keep = (0xf << (4 - rem)) & 0xf;
    out += ((nib & keep) | (fill === 'f' ? ~keep & 0xf : 0)).toString(16);
    tail -= 1;
  }
  return out + fill.repeat(tail);
}

function parseAddressLen(text: string, what: string): { addr: ipaddr.IPv4 | ipaddr.IPv6; len: number } {
  try {
    if (text.includes('/')) {
      const [addr, len] = ipaddr.parseCIDR(text);
      return { addr, len };
    }
    const addr = ipaddr.parse(text);
    return { addr, len: addr.kind() === 'ipv4' ? 32 : 128 };
  } catch (e) {
    throw new CrosslinkError('config_invalid', `invalid ${what} "${text}"`, [{ message: `invalid ${what} "${text}"` }], { cause: e });
  }
}

const V4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

const HEX_BYTE = Array.from({ length: 256 }, (_, b) => (b < 16 ? '0' : '') + b.toString(16));
const hex32 = (n: number): string => HEX_BYTE[n >>> 24]! + HEX_BYTE[(n >>> 16) & 255]! + HEX_BYTE[(n >>> 8) & 255]! + HEX_BYTE[n & 255]!;

/** Reads 1-`maxDigits` decimal digits at `at`: the value * 8 + digits read (0: none, or too many).
 *  A leading zero is flagged with value -1. */
function readDecimal(text: string, at: number, maxDigits: number): number {
  let v = 0;
  let digits = 0;
  for (; at + digits < text.length; digits++) {
    const c = text.charCodeAt(at + digits);
    if (c < 48 || c > 57) break;
    if (digits === maxDigits) return 0;
    v = v * 10 + (c - 48);
  }
  if (digits === 0) return 0;
  return (digits > 1 && text.charCodeAt(at) === 48 ? -1 : v) * 8 + digits;
}

/**
 * The common IPv4 case without ipaddr.js and without a regular expression: four decimal octets
 * (no leading zeros, <= 255), optionally "/" and a length (no leading zero, <= 32); null for
 * anything else, which parsePrefix() hands to ipaddr.js. A scanner rather than a regex with
 * captures: the 20,000 prefixes of a 10,000-tuple firewall are parsed before the JIT has warmed up.
 */
function parseV4Prefix(text: string): ParsedPrefix | null {
  let at = 0;
  let n = 0;
  for (let i = 0; i < 4; i++) {
    if (i > 0) {
      if (text.charCodeAt(at) !== 46) return null; // '.'
      at++;
    }
    const r = readDecimal(text, at, 3);
    if (r <= 0) return null;
    const v = Math.floor(r / 8);
    if (v > 255) return null;
    n = n * 256 + v;
    at += r % 8;
  }
  let len = 32;
  const hasLen = at < text.length;
  if (hasLen) {
    if (text.charCodeAt(at) !== 47) return null; // '/'
    const r = readDecimal(text, at + 1, 2);
    if (r <= 0) return null;
    len = Math.floor(r / 8);
    if (len > 32) return null;
    if (at + 1 + (r % 8) !== text.length) return null;
  }
  const size = 2 ** (32 - len);
  const start = n - (n % size);
  const end = start + size - 1;
  // The text is already canonical when it names the network with its length (the usual case).
  const text4 = hasLen && start === n
    ? text
    : `${Math.floor(start / 16777216)}.${Math.floor(start / 65536) % 256}.${Math.floor(start / 256) % 256}.${start % 256}/${len}`;
  return { text: text4, family: 4, len, startHex: hex32(start), endHex: hex32(end) };
}

/** Parses a prefix ("10.1.0.7/24" is masked to "10.1.0.0/24"; a bare address is a host prefix). */
export function parsePrefix(text: string): ParsedPrefix {
  const fast = parseV4Prefix(text);
  if (fast) return fast;
  const { addr, len } = parseAddressLen(text.trim(), 'prefix');
  const family = addr.kind() === 'ipv4' ? 4 : 6;
  const hex = bytesToHex(addr.toByteArray());
  const startHex = maskHex(hex, len, '0');
  const endHex = maskHex(hex, len, 'f');
  const bytes: number[] = [];
  for (let i = 0; i < startHex.length; i += 2) bytes.push(parseInt(startHex.slice(i, i + 2), 16));
  const net = ipaddr.fromByteArray(bytes);
  return { text: `${net.toString()}/${len}`, family, len, startHex, endHex };
}

/** "10.1.0.7/24" -> "10.1.0.0/24"; "2001:DB8:0::/48" -> "2001:db8::/48"; "10.0.0.1" -> "10.0.0.1/32". */
// Configs repeat the same prefixes (allowed IPs, routes, wg dumps, route events): remember the
// last answers instead of parsing them again on every run.
const CANONICAL_MEMO_LIMIT = 65_536;
const canonicalMemo = new Map<string, string>();

export function canonicalPrefix(text: string): string {
  let c = canonicalMemo.get(text);
  if (c === undefined) {
    c = parsePrefix(text).text; // throws for an invalid prefix: nothing is remembered
    if (canonicalMemo.size >= CANONICAL_MEMO_LIMIT) canonicalMemo.clear();
    canonicalMemo.set(text, c);
  }
  return c;
}

/** An interface address keeps its host bits: "100.64.0.7/10" stays, "2001:DB8::1/64" -> "2001:db8::1/64". */
export function canonicalInterfaceAddress(text: string): string {
  if (parseV4Prefix(text)) return text.includes('/') ? text : `${text}/32`; // already canonical
  const { addr, len } = parseAddressLen(text.trim(), 'address');
  return `${addr.toString()}/${len}`;
}

/** Sort key: IPv4 before IPv6, then numeric address, then shorter prefix first (plain string order). */
export function prefixSortKey(text: string): string {
  const m = V4_RE.exec(text);
  if (m) {
    // Fast path (no ipaddr.js): sorting 5,000 routes must not cost more than listing them.
    const n = ((Number(m[1]) * 256 + Number(m[2])) * 256 + Number(m[3])) * 256 + Number(m[4]);
    return `4${n.toString(16).padStart(8, '0')}/${(m[5] ?? '32').padStart(3, '0')}`;
  }
  const { addr, len } = parseAddressLen(text, 'prefix');
  return `${addr.kind() === 'ipv4' ? 4 : 6}${bytesToHex(addr.toByteArray())}/${String(len).padStart(3, '0')}`;
}

export function comparePrefixes(a: string, b: string): number {
  const ka = prefixSortKey(a);
  const kb = prefixSortKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Sorts items by a prefix-valued field, computing each key once. */
export function sortByPrefix<T>(items: readonly T[], prefixOf: (item: T) => string, tieBreak?: (item: T) => string): T[] {
  return items
    .map((item) => ({ item, key: prefixSortKey(prefixOf(item)) + '\u0000' + (tieBreak ? tieBreak(item) : '') }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((x) => x.item);
}

/** Canonical, de-duplicated, sorted. */
export function canonicalPrefixList(list: readonly string[]): string[] {
  return sortByPrefix([...new Set(list.map(canonicalPrefix))], (p) => p);
}
