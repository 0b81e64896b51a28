// Small prefix helpers shared by controller and agent (cidr-tools + ipaddr.js underneath).
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export function familyOf(prefixOrAddress: string): Family {
  return prefixOrAddress.includes(':') ? 6 : 4;
}

/** "100.64.0.7/10" -> "100.64.0.7" */
export function addressOf(cidr: string): string {
  const i = cidr.indexOf('/');
  return i < 0 ? cidr : cidr.slice(0, i);
}

/** Host prefix for an address: "/32" for IPv4, "/128" for IPv6. */
export function hostPrefix(address: string): string {
  const a = ipaddr.parse(addressOf(address));
  return `${a.toString()}/${a.kind() === 'ipv4' ? 32 : 128}`;
}
