// Canonical text and ordering for prefixes, interface addresses and endpoints: the one module the
// desired state (agent/reconcile), the renderers, the fake host and the Linux adapters all use, so
// that "observed" and "desired" compare equal byte for byte. Parsing is lib/prefix.ts's.
//
// Two flavours:
// - strict (strictCanonicalPrefix, strictInterfaceAddress, canonicalEndpoint, isPrefix, ...): what a
//   config may say. "/len" required, no zone ids, IPv4 only as four decimal parts; null when the text
//   does not parse.
// - lenient (canonicalPrefix, parsePrefix, canonicalPrefixList, canonicalInterfaceAddress, ...): what
//   a host may print ("ip -json route" gives host routes without /32). Throws CrosslinkError.
// Every text the strict parse accepts, the lenient one accepts with the same canonical text (the
// tests check this). No memo: parsing costs less than remembering mattered (docs/performance.md,
// "Prefix scanner").
import { CrosslinkError } from '../../lib/errors.js';
import {
  canonicalText,
  contains,
  formatAddress,
  formatPrefix,
  parseAddress,
  parsePrefix as parse,
  rangeOf,
  type Prefix,
} from '../../lib/prefix.js';

/** A prefix with its range as fixed-width hex, the firewall renderer's sort and containment keys. */
export interface ParsedPrefix {
  /** Canonical text, e.g. "10.1.0.0/24", "2001:db8::/48". */
  text: string;
  family: 4 | 6;
  len: number;
  /** First and last address as fixed-width lowercase hex (8 or 32 digits): string order = numeric order. */
  startHex: string;
  endHex: string;
}

const hex = (v: number | bigint, digits: number): string => v.toString(16).padStart(digits, '0');

/** Lenient parse; throws CrosslinkError saying what is wrong. */
function lenient(text: string, what: string): Prefix {
  const r = parse(text, true);
  if (r.ok) return r.prefix;
  const message = `invalid ${what}: ${r.message}`;
  throw new CrosslinkError('config_invalid', message, [{ message }]);
}

/** Parses a prefix ("10.1.0.7/24" is masked to "10.1.0.0/24"; a bare address is a host prefix). */
export function parsePrefix(text: string): ParsedPrefix {
  const p = lenient(text, 'prefix');
  const r = rangeOf(p);
  const digits = p.family === 4 ? 8 : 32;
  return {
    text: canonicalText(p, text),
    family: p.family,
    len: p.len,
    startHex: hex(r.start, digits),
    endHex: hex(r.end, digits),
  };
}

function strict(text: string): Prefix | undefined {
  const r = parse(text);
  return r.ok ? r.prefix : undefined;
}

/** strictCanonicalPrefix(text) !== null, for validation. */
export function isPrefix(text: string): boolean {
  return parse(text).ok;
}

/** "10.20.1.7/24" -> "10.20.1.0/24" (host bits cleared), or null when it does not parse strictly
 *  ("10.0.0.1" without a length, "fe80::1%eth0/64", "010.0.0.0/8" are null). */
export function strictCanonicalPrefix(text: string): string | null {
  const p = strict(text);
  return p ? canonicalText(p, text) : null;
}

/** "100.64.0.7/10" stays "100.64.0.7/10" (an interface address keeps its host bits); null when it
 *  does not parse strictly (a length is required). */
export function strictInterfaceAddress(text: string): string | null {
  const p = strict(text);
  return p ? formatPrefix(p) : null;
}

const ENDPOINT_V6 = /^\[([^\]]+)\]:(\d{1,5})$/;
const ENDPOINT = /^([^:[\]]+):(\d{1,5})$/;

/** "host:port" / "[v6]:port"; IP literals canonical, names kept. Null when malformed. */
export function canonicalEndpoint(text: string): string | null {
  const m = ENDPOINT_V6.exec(text) ?? ENDPOINT.exec(text);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  const host = m[1]!; // the group is not optional
  const addr = parseAddress(host);
  if (addr) {
    const c = addr.family === 6 ? `[${formatAddress(addr)}]:${port}` : `${formatAddress(addr)}:${port}`;
    return c === text ? text : c;
  }
  if (text.startsWith('[')) return null;
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) return null;
  return `${host.toLowerCase()}:${port}`;
}

/** True when the endpoint's host is an IP literal (so `wg show` reports it back verbatim). */
export function isLiteralEndpoint(endpoint: string): boolean {
  const m = /^\[([^\]]+)\]:\d+$/.exec(endpoint) ?? /^([^:]+):\d+$/.exec(endpoint);
  return !!m && parseAddress(m[1]!) !== undefined;
}

/** True when `address` ("10.20.1.2/24") lies inside the network of `gateway` ("10.20.1.1/24"). */
export function isInNetworkOf(address: string, gateway: string): boolean {
  const a = strict(address);
  const g = strict(gateway);
  return (
    !!a &&
    !!g &&
    contains(g, a.family === 4 ? { family: 4, addr: a.addr, len: 32 } : { family: 6, addr: a.addr, len: 128 })
  );
}

/** Plain string (UTF-16 code unit) order, which is also Array.prototype.sort()'s own: the order of
 *  the desired state's lists (peers by key, routes, allowed IPs, sysctls). Not numeric prefix order:
 *  for that, comparePrefixes / sortByPrefix. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Lenient canonical text and order.

/** "10.1.0.7/24" -> "10.1.0.0/24"; "2001:DB8:0::/48" -> "2001:db8::/48"; "10.0.0.1" -> "10.0.0.1/32". */
export function canonicalPrefix(text: string): string {
  return canonicalText(lenient(text, 'prefix'), text);
}

/** An interface address keeps its host bits: "100.64.0.7/10" stays, "2001:DB8::1/64" -> "2001:db8::1/64". */
export function canonicalInterfaceAddress(text: string): string {
  return formatPrefix(lenient(text, 'address'));
}

/** Sort key: IPv4 before IPv6, then numeric address, then shorter prefix first (plain string order). */
export function prefixSortKey(text: string): string {
  const p = lenient(text, 'prefix');
  return `${p.family}${hex(p.addr, p.family === 4 ? 8 : 32)}/${String(p.len).padStart(3, '0')}`;
}

export function comparePrefixes(a: string, b: string): number {
  const ka = prefixSortKey(a);
  const kb = prefixSortKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Sorts items by a prefix-valued field, computing each key once. */
export function sortByPrefix<T>(
  items: readonly T[],
  prefixOf: (item: T) => string,
  tieBreak?: (item: T) => string,
): T[] {
  return items
    .map((item) => ({ item, key: prefixSortKey(prefixOf(item)) + '\u0000' + (tieBreak ? tieBreak(item) : '') }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((x) => x.item);
}

/** Canonical, de-duplicated, sorted. */
export function canonicalPrefixList(list: readonly string[]): string[] {
  return sortByPrefix([...new Set(list.map(canonicalPrefix))], (p) => p);
}
