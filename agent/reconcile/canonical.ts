// Canonical text for addresses, prefixes and endpoints, so the desired state and what the host
// reports compare equal when they mean the same thing. Pure.
import ipaddr from 'ipaddr.js';

/** Strictly parses an address (no zone id, IPv4 only as four decimal parts). */
function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  if (text.includes('%')) return null;
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (!text.includes(':') || !ipaddr.IPv6.isValid(text)) return null;
  return ipaddr.IPv6.parse(text);
}

function parseCidr(text: string): { addr: ipaddr.IPv4 | ipaddr.IPv6; len: number } | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) return null;
  const addr = parseAddress(m[1]!);
  const len = Number(m[2]);
  if (!addr || len > (addr.kind() === 'ipv4' ? 32 : 128)) return null;
  return { addr, len };
}

// A config repeats most of its prefixes and endpoints from the last one (a peer joins: 6 new
// prefixes out of 11,000), so results are remembered by their input text. Bounded: a map that
// grows past MEMO_LIMIT entries starts again empty.
const MEMO_LIMIT = 65_536;
const prefixMemo = new Map<string, string | null>();
const endpointMemo = new Map<string, string | null>();

function remember(memo: Map<string, string | null>, text: string, value: string | null): string | null {
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

function slowCanonicalPrefix(text: string): string | null {
  const p = parseCidr(text);
  if (!p) return null;
  const net = p.addr.kind() === 'ipv4'
    ? ipaddr.IPv4.networkAddressFromCIDR(`${p.addr.toString()}/${p.len}`)
    : ipaddr.IPv6.networkAddressFromCIDR(`${p.addr.toString()}/${p.len}`);
  return `${net.toString()}/${p.len}`;
}

/** canonicalPrefix(text) !== null, for validation: the usual IPv4 case is only scanned (a firewall
 *  names 20,000 prefixes that the renderer parses again anyway); anything else asks canonicalPrefix. */
export function isPrefix(text: string): boolean {
  return scanV4Prefix(text) >= 0 || canonicalPrefix(text) !== null;
}

/** "10.20.1.7/24" -> "10.20.1.0/24" (host bits cleared), or null when it does not parse. */
export function canonicalPrefix(text: string): string | null {
  const known = prefixMemo.get(text);
  if (known !== undefined) return known;
  const fast = fastV4Prefix(text);
  return remember(prefixMemo, text, fast !== undefined ? fast : slowCanonicalPrefix(text));
}

/** "100.64.0.7/10" stays "100.64.0.7/10" (an interface address keeps its host bits). */
export function canonicalInterfaceAddress(text: string): string | null {
  const p = parseCidr(text);
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
  const addr = parseAddress(host);
  if (addr) return addr.kind() === 'ipv6' ? `[${addr.toString()}]:${port}` : `${addr.toString()}:${port}`;
  if (text.startsWith('[')) return null;
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) return null;
  return `${host.toLowerCase()}:${port}`;
}

/** True when the endpoint's host is an IP literal (so `wg show` reports it back verbatim). */
export function isLiteralEndpoint(endpoint: string): boolean {
  const m = /^\[([^\]]+)\]:\d+$/.exec(endpoint) ?? /^([^:]+):\d+$/.exec(endpoint);
  return !!m && parseAddress(m[1]!) !== null;
}

/** True when `address` ("10.20.1.2/24") lies inside the network of `gateway` ("10.20.1.1/24"). */
export function isInNetworkOf(address: string, gateway: string): boolean {
  const a = parseCidr(address);
  const g = parseCidr(gateway);
  if (!a || !g || a.addr.kind() !== g.addr.kind()) return false;
  return a.addr.match(g.addr, g.len);
}

export function comparePrefixes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

