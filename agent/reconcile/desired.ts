// DesiredState: what the box must look like, derived from the controller's AgentConfig plus the
// agent's local settings (interface name, listen port, key file, MTU). Pure: no I/O, no clock.
// Everything here is canonical and sorted, so plan() can compare it with what the host reports
// without caring how the controller or the adapters spelled things.
import { createHash } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { CrosslinkError, type ErrorDetail } from '../../lib/errors.js';
import { FirewallSchema, type AgentConfig, type Firewall } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { RouteObserved, WgDeviceDesired, WgPeerDesired, WireGuardMode } from '../host/ports.js';
import { canonicalEndpoint, canonicalInterfaceAddress, canonicalPrefix, comparePrefixes } from './canonical.js';

// plan.ts may not import from host/ (lint boundary), so the port types it compares pass through here.
export type { FirewallObserved, InterfaceAddress, LinkObserved, RouteObserved, WgDeviceDesired, WgDeviceObserved, WgPeerDesired, WgPeerObserved, WireGuardMode } from '../host/ports.js';

/** Local settings of this box; they never come from the controller. */
export interface AgentSettings {
  /** WireGuard interface Crosslink owns, e.g. "crosslink0". */
  interfaceName: string;
  /** UDP port WireGuard listens on. */
  listenPort: number;
  /** Path of the 0600 file with the private key (for `wg syncconf`). */
  privateKeyFile: string;
  /** The public key that belongs to that private key; a device showing another key is re-synced. */
  publicKey: string;
  mtu: number;
  wireguardMode: WireGuardMode;
}

export const DEFAULT_MTU = 1420;
export const DEFAULT_LISTEN_PORT = 51820;
export const DEFAULT_INTERFACE = 'crosslink0';

/** Renders the nft ruleset for the Crosslink table (agent/host/firewall-render.ts in production). */
export type FirewallRenderer = ((firewall: Firewall, opts: { wgInterface: string }) => string) & {
  /** True when this renderer has already validated and rendered an equal firewall for this
   *  interface (render-memo.ts), so checking its 10,000 tuples again can be skipped. */
  isRendered?: (firewall: Firewall, opts: { wgInterface: string }) => boolean;
};

export const SYSCTL_IPV4_FORWARD = 'net.ipv4.ip_forward';
export const SYSCTL_IPV6_FORWARD = 'net.ipv6.conf.all.forwarding';

export interface DesiredState {
  generation: bigint;
  contentHash: string;
  interfaceName: string;
  wireguardMode: WireGuardMode;
  mtu: number;
  /** Addresses on the interface (the overlay address with the pool's prefix length), sorted. */
  addresses: string[];
  /** The device: peers sorted by public key, each with canonical sorted allowed IPs. */
  wireguard: WgDeviceDesired & { publicKey: string };
  /** Routes into the interface, sorted by prefix. */
  routes: RouteObserved[];
  firewall: { ruleset: string; /** sha256 hex of `ruleset` */ hash: string };
  /** Sysctls that must hold these values, sorted by key. */
  sysctls: Array<{ key: string; value: string }>;
  /** Virtual gateway addresses of the subnets this box serves ("10.20.1.1/24"), sorted. Absent
   *  in states built before the field existed: no gateways. */
  gateways?: string[];
  /** Peer public key -> peer name (for reports and status). */
  peerNames: Record<string, string>;
}

/** An AgentConfig this agent cannot apply as it stands; retrying will not help. */
export class InvalidConfigError extends CrosslinkError {
  constructor(details: ErrorDetail[]) {
    super('config_invalid', `config is invalid: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
    this.name = 'InvalidConfigError';
  }
}

const WG_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const PROTOCOLS = new Set(['tcp', 'udp', 'icmp', 'any']);

function validateFirewall(fw: Firewall, errors: ErrorDetail[], prefix: (path: string, text: string) => string | null): void {
  for (const dir of ['outbound', 'inbound', 'local'] as const) {
    fw[dir].forEach((r, i) => {
      const at = `firewall.${dir}[${i}]`;
      r.sources.forEach((s, j) => prefix(`${at}.sources[${j}]`, s));
      r.destinations.forEach((s, j) => prefix(`${at}.destinations[${j}]`, s));
      if (!PROTOCOLS.has(r.protocol)) errors.push({ path: `${at}.protocol`, message: `unknown protocol "${r.protocol}"` });
      r.ports.forEach((p, j) => {
        if (p.first < 1 || p.last > 65535 || p.first > p.last) {
          errors.push({ path: `${at}.ports[${j}]`, message: `bad port range ${p.first}-${p.last}` });
        }
      });
    });
  }
  fw.masquerade.forEach((s, j) => prefix(`firewall.masquerade[${j}]`, s));
  fw.localPrefixes.forEach((s, j) => prefix(`firewall.local_prefixes[${j}]`, s));
}

/**
 * AgentConfig + settings -> DesiredState. Throws InvalidConfigError (terminal: do not retry) naming
 * every field that does not parse.
 */
export function desiredState(config: AgentConfig, settings: AgentSettings, renderFirewall: FirewallRenderer): DesiredState {
  const errors: ErrorDetail[] = [];
  const prefix = (path: string, text: string): string | null => {
    const c = canonicalPrefix(text);
    if (c === null) errors.push({ path, message: `"${text}" is not a prefix` });
    return c;
  };

  const overlay = canonicalInterfaceAddress(config.overlayAddress);
  if (overlay === null) errors.push({ path: 'overlay_address', message: `"${config.overlayAddress}" is not an address with prefix length` });

  const seenKeys = new Set<string>();
  const peerNames: Record<string, string> = {};
  const peers: WgPeerDesired[] = [];
  config.peers.forEach((p, i) => {
    const at = `peers[${i}]`;
    if (!WG_KEY.test(p.publicKey)) errors.push({ path: `${at}.public_key`, message: 'not a base64 WireGuard key' });
    else if (seenKeys.has(p.publicKey)) errors.push({ path: `${at}.public_key`, message: 'the same key is given to two peers' });
    seenKeys.add(p.publicKey);
    let endpoint = '';
    if (p.endpoint !== '') {
      const e = canonicalEndpoint(p.endpoint);
      if (e === null) errors.push({ path: `${at}.endpoint`, message: `"${p.endpoint}" is not host:port` });
      else endpoint = e;
    }
    if (p.persistentKeepaliveSeconds > 65535) errors.push({ path: `${at}.persistent_keepalive_seconds`, message: 'above 65535' });
    const allowed = p.allowedIps.map((a, j) => prefix(`${at}.allowed_ips[${j}]`, a)).filter((a): a is string => a !== null);
    peers.push({
      publicKey: p.publicKey,
      endpoint,
      allowedIps: [...new Set(allowed)].sort(comparePrefixes),
      persistentKeepaliveSeconds: p.persistentKeepaliveSeconds,
    });
    peerNames[p.publicKey] = p.name;
  });

  const routePrefixes = config.routes.map((r, i) => prefix(`routes[${i}]`, r)).filter((r): r is string => r !== null);
  const fw = config.firewall ?? create(FirewallSchema);
  if (!renderFirewall.isRendered?.(fw, { wgInterface: settings.interfaceName })) validateFirewall(fw, errors, prefix);
  config.localSubnets.forEach((s, i) => s.prefixes.forEach((p, j) => prefix(`local_subnets[${i}].prefixes[${j}]`, p)));
  const gateways: string[] = [];
  config.localSubnets.forEach((s, i) => s.gateways.forEach((g, j) => {
    const c = canonicalInterfaceAddress(g);
    if (c === null) errors.push({ path: `local_subnets[${i}].gateways[${j}]`, message: `"${g}" is not an address with prefix length` });
    else gateways.push(c);
  }));

  if (errors.length > 0) throw new InvalidConfigError(errors);

  let ruleset: string;
  try {
    ruleset = renderFirewall(fw, { wgInterface: settings.interfaceName });
  } catch (e) {
    throw new InvalidConfigError([{ path: 'firewall', message: `cannot be rendered: ${(e as Error).message}` }]);
  }

  // IPv6 forwarding is switched on only when the config carries IPv6: turning it on makes Linux stop
  // accepting router advertisements (accept_ra=1), which could cut an IPv4-only box's own v6 uplink.
  const usesIpv6 = [overlay!, ...routePrefixes, ...fw.localPrefixes, ...peers.flatMap((p) => p.allowedIps)].some((p) => p.includes(':'));
  const sysctls = [{ key: SYSCTL_IPV4_FORWARD, value: '1' }];
  if (usesIpv6) sysctls.push({ key: SYSCTL_IPV6_FORWARD, value: '1' });

  return {
    generation: config.generation,
    contentHash: config.contentHash,
    interfaceName: settings.interfaceName,
    wireguardMode: settings.wireguardMode,
    mtu: settings.mtu,
    addresses: [overlay!],
    wireguard: {
      privateKeyFile: settings.privateKeyFile,
      publicKey: settings.publicKey,
      listenPort: settings.listenPort,
      peers: peers.sort((a, b) => comparePrefixes(a.publicKey, b.publicKey)),
    },
    routes: [...new Set(routePrefixes)].sort(comparePrefixes).map((p) => ({ prefix: p, dev: settings.interfaceName })),
    firewall: { ruleset, hash: createHash('sha256').update(ruleset).digest('hex') },
    sysctls: sysctls.sort((a, b) => comparePrefixes(a.key, b.key)),
    peerNames,
    gateways: [...new Set(gateways)].sort(comparePrefixes),
  };
}
