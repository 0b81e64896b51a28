// Canonical text and ordering for prefixes, interface addresses and endpoints: the one module the
// desired state (agent/reconcile), the renderers, the fake host and the Linux adapters all use, so
// that "observed" and "desired" compare equal byte for byte.
//
// Two flavours over one memo of results:
// - strict (strictCanonicalPrefix, strictInterfaceAddress, canonicalEndpoint, isPrefix, ...): what a
//   config may say. "/len" required, no zone ids, IPv4 only as four decimal parts; null when the text
//   does not parse.
// - lenient (canonicalPrefix, parsePrefix, canonicalPrefixList, canonicalInterfaceAddress, ...): what
//   a host may print ("ip -json route" gives host routes without /32). Throws CrosslinkError.
// Every text the strict parse accepts, the lenient one accepts with the same canonical text (the
// tests check this), so canonicalPrefix() answers from the strict memo first: the adapters
// canonicalise the very prefixes desiredState() canonicalised a moment before, and find them there.
import ipaddr from 'ipaddr.js';
import { CrosslinkError } from '../../lib/errors.js';

// ---------------------------------------------------------------------------------------------
// Lenient parsing: what a host may print. Throws CrosslinkError for anything else.

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

// ---------------------------------------------------------------------------------------------
// Strict: what a config may say. Null for anything else.

/** Strictly parses an address (no zone id, IPv4 only as four decimal parts). */
function parseStrictAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  if (text.includes('%')) return null;
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (!text.includes(':') || !ipaddr.IPv6.isValid(text)) return null;
  return ipaddr.IPv6.parse(text);
}

function parseStrictCidr(text: string): { addr: ipaddr.IPv4 | ipaddr.IPv6; len: number } | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) return null;
  const addr = parseStrictAddress(m[1]!);
  const len = Number(m[2]);
  if (!addr || len > (addr.kind() === 'ipv4' ? 32 : 128)) return null;
  return { addr, len };
}

// A config repeats most of its prefixes and endpoints from the last one (a peer joins: 6 new
// prefixes out of 11,000), and the host adapters canonicalise the same prefixes again (the wg
// config, the route batch, wg dumps, route events), so results are remembered by their input text.
// Bounded: a map that grows past MEMO_LIMIT entries starts again empty.
const MEMO_LIMIT = 65_536;
/** Strict prefix results; canonicalPrefix() reads it too (a non-null answer is also the lenient one). */
const prefixMemo = new Map<string, string | null>();
const endpointMemo = new Map<string, string | null>();
/** Lenient results for texts the strict parse rejects ("10.0.0.1" from `ip -json route`, zone ids). */
const lenientPrefixMemo = new Map<string, string>();

function remember<V>(memo: Map<string, V>, text: string, value: V): V {
  if (memo.size >= MEMO_LIMIT) memo.clear();
  memo.set(text, value);
  return value;
}

// Plain dotted-quad IPv4 without leading zeros (what isValidFourPartDecimal accepts, octets checked
// as well): read by a scanner rather than ipaddr.js, which is ~10x slower and allocates an object
// per call, or a regular expression with captures. Anything else takes the general path.
const V4_ENDPOINT = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2}):(\d{1,5})$/;

/** The address scanV4Prefix() read last (a number, 0 to 2^32 - 1). */
let scannedAddress = 0;

/** Reads "a.b.c.d/len" (octets 0-255 without leading zeros, len 1-3 digits <= 32) without building
 *  anything: len, with the address in scannedAddress; -1 for any other text. */
function scanV4Prefix(text: string): number {
  let at = 0;
  let n = 0;
  for (let i = 0; i < 4; i++) {
    if (i > 0 && text.charCodeAt(at++) !== 46) return -1; // '.'
    const first = text.charCodeAt(at);
    let v = 0;
    let digits = 0;
    for (let c = first; digits < 4 && c >= 48 && c <= 57; c = text.charCodeAt(at + ++digits)) v = v * 10 + (c - 48);
    if (digits === 0 || digits > 3 || (digits > 1 && first === 48) || v > 255) return -1;
    n = n * 256 + v;
    at += digits;
  }
  if (text.charCodeAt(at++) !== 47) return -1; // '/'
  let len = 0;
  let digits = 0;
  for (let c = text.charCodeAt(at); digits < 4 && c >= 48 && c <= 57; c = text.charCodeAt(at + ++digits)) len = len * 10 + (c - 48);
  if (digits === 0 || digits > 3 || at + digits !== text.length || len > 32) return -1;
  scannedAddress = n;
  return len;
}

/** The canonical text of a prefix scanV4Prefix() reads, or undefined for any other text. */
function fastV4Prefix(text: string): string | undefined {
  const len = scanV4Prefix(text);
  if (len < 0) return undefined;
  const n = scannedAddress;
  const size = 2 ** (32 - len);
  const net = n - (n % size);
  // Already canonical (the usual case) when it names the network, its length without a 0 in front.
  if (net === n && text.length - text.lastIndexOf('/') - 1 === (len < 10 ? 1 : 2)) return text;
  return `${Math.floor(net / 16777216)}.${Math.floor(net / 65536) % 256}.${Math.floor(net / 256) % 256}.${net % 256}/${len}`;
}

/** The four octets of a V4_ENDPOINT match as one number, or -1 when an octet is > 255. */
function v4Number(m: RegExpExecArray): number {
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return -1;
    n = n * 256 + o;
  }
  return n;
}

function slowStrictPrefix(text: string): string | null {
  const p = parseStrictCidr(text);
  if (!p) return null;
  const net = p.addr.kind() === 'ipv4'
    ? ipaddr.IPv4.networkAddressFromCIDR(`${p.addr.toString()}/${p.len}`)
    : ipaddr.IPv6.networkAddressFromCIDR(`${p.addr.toString()}/${p.len}`);
  return `${net.toString()}/${p.len}`;
}

/** strictCanonicalPrefix(text) !== null, for validation: the usual IPv4 case is only scanned (a
 *  firewall names 20,000 prefixes that the renderer parses again anyway); anything else asks
 *  strictCanonicalPrefix. */
export function isPrefix(text: string): boolean {
  return scanV4Prefix(text) >= 0 || strictCanonicalPrefix(text) !== null;
}

/** "10.20.1.7/24" -> "10.20.1.0/24" (host bits cleared), or null when it does not parse strictly
 *  ("10.0.0.1" without a length, "fe80::1%eth0/64", "010.0.0.0/8" are null). */
export function strictCanonicalPrefix(text: string): string | null {
  const known = prefixMemo.get(text);
  if (known !== undefined) return known;
  const fast = fastV4Prefix(text);
  return remember(prefixMemo, text, fast !== undefined ? fast : slowStrictPrefix(text));
}

/** "100.64.0.7/10" stays "100.64.0.7/10" (an interface address keeps its host bits); null when it
 *  does not parse strictly (a length is required). */
export function strictInterfaceAddress(text: string): string | null {
  const p = parseStrictCidr(text);
  return p ? `${p.addr.toString()}/${p.len}` : null;
}

/** "host:port" / "[v6]:port"; IP literals canonical, names kept. Null when malformed. */
export function canonicalEndpoint(text: string): string | null {
  const known = endpointMemo.get(text);
  if (known !== undefined) return known;
  return remember(endpointMemo, text, fastV4Endpoint(text) ?? slowCanonicalEndpoint(text));
}

function fastV4Endpoint(text: string): string | undefined {
  const m = V4_ENDPOINT.exec(text);
  if (!m || v4Number(m) < 0) return undefined;
  const port = Number(m[5]);
  if (port < 1 || port > 65535) return undefined;
  const c = `${m[1]}.${m[2]}.${m[3]}.${m[4]}:${port}`;
  return c === text ? text : c;
}

function slowCanonicalEndpoint(text: string): string | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  const host = m[1]!;
  const addr = parseStrictAddress(host);
  if (addr) return addr.kind() === 'ipv6' ? `[${addr.toString()}]:${port}` : `${addr.toString()}:${port}`;
  if (text.startsWith('[')) return null;
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) return null;
  return `${host.toLowerCase()}:${port}`;
}

/** True when the endpoint's host is an IP literal (so `wg show` reports it back verbatim). */
export function isLiteralEndpoint(endpoint: string): boolean {
  const m = /^\[([^\]]+)\]:\d+$/.exec(endpoint) ?? /^([^:]+):\d+$/.exec(endpoint);
  return !!m && parseStrictAddress(m[1]!) !== null;
}

/** True when `address` ("10.20.1.2/24") lies inside the network of `gateway` ("10.20.1.1/24"). */
export function isInNetworkOf(address: string, gateway: string): boolean {
  const a = parseStrictCidr(address);
  const g = parseStrictCidr(gateway);
  if (!a || !g || a.addr.kind() !== g.addr.kind()) return false;
  return a.addr.match(g.addr, g.len);
}

/** Plain string (UTF-16 code unit) order, which is also Array.prototype.sort()'s own: the order of
 *  the desired state's lists (peers by key, routes, allowed IPs, sysctls). Not numeric prefix order:
 *  for that, comparePrefixes / sortByPrefix. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Lenient canonical text and order (parsePrefix above), answering from the strict memo first.

/** "10.1.0.7/24" -> "10.1.0.0/24"; "2001:DB8:0::/48" -> "2001:db8::/48"; "10.0.0.1" -> "10.0.0.1/32".
 *  The strict answer when there is one (remembered, and most likely remembered already: desiredState()
 *  canonicalised the same prefixes); otherwise parsePrefix(), remembered apart. */
export function canonicalPrefix(text: string): string {
  const strict = strictCanonicalPrefix(text);
  if (strict !== null) return strict;
  let c = lenientPrefixMemo.get(text);
  if (c === undefined) c = remember(lenientPrefixMemo, text, parsePrefix(text).text); // throws for an invalid prefix: nothing is remembered
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
