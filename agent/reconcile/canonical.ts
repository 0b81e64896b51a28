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

/** "10.20.1.7/24" -> "10.20.1.0/24" (host bits cleared), or null when it does not parse. */
export function canonicalPrefix(text: string): string | null {
  const p = parseCidr(text);
  if (!p) return null;
  const net = p.addr.kind() === 'ipv4'
    ? ipaddr.IPv4.networkAddressFromCIDR(`${p.addr.toString()}/${p.len}`)
    : ipaddr.IPv6.networkAddressFromCIDR(`${p.addr.toString()}/${p.len}`);
  return `${net.toString()}/${p.len}`;
}

/** "100.64.0.7/10" stays "100.64.0.7/10" (an interface address keeps its host bits). */
export function canonicalInterfaceAddress(text: string): string | null {
  const p = parseCidr(text);
  return p ? `${p.addr.toString()}/${p.len}` : null;
}

/** "host:port" / "[v6]:port"; IP literals canonical, names kept. Null when malformed. */
export function canonicalEndpoint(text: string): string | null {
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

