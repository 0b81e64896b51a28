// DesiredState: what the box must look like, derived from the controller's AgentConfig plus the
// agent's local settings (interface name, listen port, key file, MTU). Pure: no I/O, no clock.
// Everything here is canonical and sorted, so plan() can compare it with what the host reports
// without caring how the controller or the adapters spelled things.
import { createHash } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { CrosslinkError, type ErrorDetail } from '../../lib/errors.js';
import { FirewallSchema, type AgentConfig, type Firewall } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { RelayListen, WireGuardMode } from '../host/ports.js';
import {
  extraAllowedIps,
  failoverPlanOf,
  heldGateways,
  type FailoverPlan,
  type FailoverView,
} from '../failover/groups.js';
import type { LivenessFirewall, ZoneSets } from '../host/firewall-render.js';
import { assignRuleMarks, type RuleMark } from '../host/firewall-names.js';
import { ZoneTable } from '../flows/zone-table.js';
import type { RouteObserved, WgDeviceDesired, WgPeerDesired } from './host-state.js';
import {
  canonicalEndpoint,
  compareText,
  isPrefix,
  strictCanonicalPrefix,
  strictInterfaceAddress,
} from '../host/canonical.js';

// plan.ts may not import from host/ (lint boundary), so the port types it compares pass through here.
export type { WireGuardMode } from '../host/ports.js';
export type {
  FirewallObserved,
  InterfaceAddress,
  LinkObserved,
  RouteObserved,
  WgDeviceDesired,
  WgDeviceObserved,
  WgPeerDesired,
  WgPeerObserved,
} from './host-state.js';

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
  /**
   * This box's clock minus the controller's, when beyond the bound (agent/control/clock-skew.ts):
   * rule windows are rendered on the safer side of both clocks. The one setting that changes at run
   * time: the agent updates it from the heartbeats, then sets the config again. Absent: 0.
   */
  clockSkewMs?: number;
}

export const DEFAULT_MTU = 1420;
export const DEFAULT_LISTEN_PORT = 51820;
export const DEFAULT_INTERFACE = 'crosslink0';

/** What the renderer is told besides the Firewall message (RenderFirewallOptions). */
export interface FirewallRenderOptions {
  wgInterface: string;
  /** The edge liveness port's input rules; absent (a config without serving groups): none. */
  liveness?: LivenessFirewall;
  /** AgentConfig.zones, canonical: drops counted per zone pair. Absent: none. */
  zones?: ZoneSets;
  /** This box's clock minus the controller's, when beyond the bound (firewall-time.ts); 0 or
   *  absent: rule windows on the box's own clock. */
  clockSkewMs?: number;
}

/** Renders the nft ruleset for the Crosslink table (agent/host/firewall-render.ts in production). */
export type FirewallRenderer = ((firewall: Firewall, opts: FirewallRenderOptions) => string) & {
  /** True when this renderer has already validated and rendered an equal firewall with equal
   *  options (render-memo.ts), so checking its 10,000 tuples again can be skipped. */
  isRendered?: (firewall: Firewall, opts: FirewallRenderOptions) => boolean;
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
  firewall: {
    ruleset: string;
    /** sha256 hex of `ruleset` */
    hash: string;
    /** The relay forwards in it, by "source>listen>target", with the listen side conntrack is keyed on. */
    relay?: ReadonlyMap<string, RelayListen>;
    /** The ct mark of each rule's flows (firewall-names.ts), by mark; absent: no rules. */
    ruleMarks?: ReadonlyMap<number, RuleMark>;
  };
  /** The zone of each address the box knows (flow records name both ends' zones); absent: none. */
  zones?: ZoneTable;
  /** Sysctls that must hold these values, sorted by key. */
  sysctls: Array<{ key: string; value: string }>;
  /** Virtual gateway addresses of the subnets this box serves ("10.20.1.1/24"), sorted. Absent
   *  in states built before the field existed: no gateways. */
  gateways?: string[];
  /** Peer public key -> peer name (for reports and status). */
  peerNames: Record<string, string>;
  /** Serving groups (issue 14): set when the config has any. `gateways` then leaves out the
   *  groups' gateways, and withFailover() applies a failover view. */
  failover?: FailoverPlan;
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

/** Sorts `list` in place (compareText order: plain string order, which is also sort()'s own)
 *  and drops repeats; no Set per list (one per peer). */
function sortedUnique(list: string[]): string[] {
  list.sort();
  let kept = 0;
  for (let i = 0; i < list.length; i++) if (i === 0 || list[i] !== list[kept - 1]) list[kept++] = list[i]!;
  list.length = kept;
  return list;
}

const notAPrefix = (path: string, text: string): ErrorDetail => ({ path, message: `"${text}" is not a prefix` });

function validateFirewall(fw: Firewall, errors: ErrorDetail[]): void {
  // Plain loops, and a path only for an error: this runs over every prefix of 10,000 rules.
  for (const dir of ['outbound', 'inbound', 'local'] as const) {
    const rules = fw[dir];
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      for (let j = 0; j < r.sources.length; j++) {
        if (!isPrefix(r.sources[j]!)) errors.push(notAPrefix(`firewall.${dir}[${i}].sources[${j}]`, r.sources[j]!));
      }
      for (let j = 0; j < r.destinations.length; j++) {
        if (!isPrefix(r.destinations[j]!))
          errors.push(notAPrefix(`firewall.${dir}[${i}].destinations[${j}]`, r.destinations[j]!));
      }
      if (!PROTOCOLS.has(r.protocol))
        errors.push({ path: `firewall.${dir}[${i}].protocol`, message: `unknown protocol "${r.protocol}"` });
      for (let j = 0; j < r.ports.length; j++) {
        const p = r.ports[j]!;
        if (p.first < 1 || p.last > 65535 || p.first > p.last) {
          errors.push({ path: `firewall.${dir}[${i}].ports[${j}]`, message: `bad port range ${p.first}-${p.last}` });
        }
      }
    }
  }
  fw.masquerade.forEach((s, j) => {
    if (!isPrefix(s)) errors.push(notAPrefix(`firewall.masquerade[${j}]`, s));
  });
  fw.localPrefixes.forEach((s, j) => {
    if (!isPrefix(s)) errors.push(notAPrefix(`firewall.local_prefixes[${j}]`, s));
  });
  fw.mapTo.forEach((m, j) => {
    if (!isPrefix(m.real)) errors.push(notAPrefix(`firewall.map_to[${j}].real`, m.real));
    else if (!isPrefix(m.mapped)) errors.push(notAPrefix(`firewall.map_to[${j}].mapped`, m.mapped));
    else if (m.real.includes(':') !== m.mapped.includes(':') || m.real.split('/')[1] !== m.mapped.split('/')[1])
      errors.push({
        path: `firewall.map_to[${j}]`,
        message: `${m.real} and ${m.mapped} differ in family or length: a 1:1 translation needs both the same`,
      });
  });
}

/** An IP-literal endpoint as a relay listen side; undefined for a name or no endpoint. */
function listenOf(text: string): RelayListen | undefined {
  const c = canonicalEndpoint(text);
  const m = c === null ? null : /^\[([^\]]+)\]:(\d+)$|^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(c);
  if (!m) return undefined;
  return m[1] !== undefined
    ? { family: 6, address: m[1], port: Number(m[2]) }
    : { family: 4, address: m[3] ?? '', port: Number(m[4]) };
}

/** The relay forwards by key; the renderer has checked every endpoint already. */
function relayListens(fw: Firewall): Map<string, RelayListen> {
  const out = new Map<string, RelayListen>();
  for (const r of fw.relay) {
    const l = listenOf(r.listen);
    if (l) out.set(`${r.source}>${r.listen}>${r.target}`, l);
  }
  return out;
}

/** Canonical prefixes of `list` into `out`; one that does not parse is an error at `${path}[j]`. */
function canonicalPrefixes(list: readonly string[], path: string, errors: ErrorDetail[], out?: string[]): void {
  for (let j = 0; j < list.length; j++) {
    const c = strictCanonicalPrefix(list[j]!);
    if (c === null) errors.push(notAPrefix(`${path}[${j}]`, list[j]!));
    else out?.push(c);
  }
}

/** The liveness port's firewall for a config with serving groups (undefined without: its ruleset
 *  stays as it was before serving groups existed). */
/** What the firewall must let in for failover at the edges: the echo from the overlay, and the
 *  advertisements on the LANs of the groups this box may serve. Undefined without serving groups. */
function livenessFirewall(plan: FailoverPlan | null, overlay: string | null): LivenessFirewall | undefined {
  if (!plan) return undefined;
  const pool = overlay === null ? null : strictCanonicalPrefix(overlay);
  const lanPrefixes = plan.groups.filter((g) => g.rank >= 0).flatMap((g) => g.prefixes);
  return {
    port: plan.liveness.port,
    overlayPrefixes: pool === null ? [] : [pool],
    lanPrefixes: sortedUnique(lanPrefixes),
  };
}

/** AgentConfig.zones with canonical prefixes; a prefix that does not parse is an error. */
function zonesOf(config: AgentConfig, errors: ErrorDetail[]): ZoneSets {
  return config.zones.map((z, i) => {
    const prefixes: string[] = [];
    canonicalPrefixes(z.prefixes, `zones[${i}].prefixes`, errors, prefixes);
    return { zone: z.zone, prefixes };
  });
}

/** The marks the renderer gives the firewall's rules (the flow log names a flow's rule by it). */
function ruleMarksOf(fw: Firewall): { ruleMarks?: ReadonlyMap<number, RuleMark> } {
  const names = {
    outbound: fw.outbound.map((r) => r.rule),
    inbound: fw.inbound.map((r) => r.rule),
    local: fw.local.map((r) => r.rule),
  };
  const marks = assignRuleMarks(names);
  return marks.length > 0 ? { ruleMarks: new Map(marks.map((m) => [m.mark, m])) } : {};
}

/** sha256 hex of a ruleset (DesiredState.firewall.hash); ~0.3 ms at 10,000 tuples, so not memoised. */
function rulesetHash(ruleset: string): string {
  return createHash('sha256').update(ruleset).digest('hex');
}

/**
 * AgentConfig + settings -> DesiredState. Throws InvalidConfigError (terminal: do not retry) naming
 * every field that does not parse.
 */
export function desiredState(
  config: AgentConfig,
  settings: AgentSettings,
  renderFirewall: FirewallRenderer,
): DesiredState {
  const clockSkewMs = settings.clockSkewMs ?? 0;
  const errors: ErrorDetail[] = [];

  const overlay = strictInterfaceAddress(config.overlayAddress);
  if (overlay === null)
    errors.push({
      path: 'overlay_address',
      message: `"${config.overlayAddress}" is not an address with prefix length`,
    });

  const seenKeys = new Set<string>();
  const peerNames: Record<string, string> = {};
  const peers: WgPeerDesired[] = [];
  for (let i = 0; i < config.peers.length; i++) {
    const p = config.peers[i]!;
    const at = `peers[${i}]`;
    if (!WG_KEY.test(p.publicKey)) errors.push({ path: `${at}.public_key`, message: 'not a base64 WireGuard key' });
    else if (seenKeys.has(p.publicKey))
      errors.push({ path: `${at}.public_key`, message: 'the same key is given to two peers' });
    seenKeys.add(p.publicKey);
    let endpoint = '';
    if (p.endpoint !== '') {
      const e = canonicalEndpoint(p.endpoint);
      if (e === null) errors.push({ path: `${at}.endpoint`, message: `"${p.endpoint}" is not host:port` });
      else endpoint = e;
    }
    if (p.persistentKeepaliveSeconds > 65535)
      errors.push({ path: `${at}.persistent_keepalive_seconds`, message: 'above 65535' });
    const allowed: string[] = [];
    canonicalPrefixes(p.allowedIps, `${at}.allowed_ips`, errors, allowed);
    peers.push({
      publicKey: p.publicKey,
      endpoint,
      allowedIps: sortedUnique(allowed),
      persistentKeepaliveSeconds: p.persistentKeepaliveSeconds,
    });
    peerNames[p.publicKey] = p.name;
  }

  const routePrefixes: string[] = [];
  canonicalPrefixes(config.routes, 'routes', errors, routePrefixes);
  const fw = config.firewall ?? create(FirewallSchema);
  const groupedGateways = new Set<string>();
  const failover = failoverPlanOf(config, errors, groupedGateways);
  const liveness = livenessFirewall(failover, overlay);
  const zones = zonesOf(config, errors);
  const renderOpts: FirewallRenderOptions = {
    wgInterface: settings.interfaceName,
    ...(liveness ? { liveness } : {}),
    ...(zones.length > 0 ? { zones } : {}),
    ...(clockSkewMs !== 0 ? { clockSkewMs } : {}),
  };
  if (!renderFirewall.isRendered?.(fw, renderOpts)) validateFirewall(fw, errors);
  config.localSubnets.forEach((s, i) => canonicalPrefixes(s.prefixes, `local_subnets[${i}].prefixes`, errors));
  const gateways: string[] = [];
  config.localSubnets.forEach((s, i) =>
    s.gateways.forEach((g, j) => {
      const c = strictInterfaceAddress(g);
      if (c === null)
        errors.push({
          path: `local_subnets[${i}].gateways[${j}]`,
          message: `"${g}" is not an address with prefix length`,
        });
      else if (!groupedGateways.has(c)) gateways.push(c);
    }),
  );

  if (errors.length > 0) throw new InvalidConfigError(errors);

  let ruleset: string;
  try {
    ruleset = renderFirewall(fw, renderOpts);
  } catch (e) {
    throw new InvalidConfigError([{ path: 'firewall', message: `cannot be rendered: ${(e as Error).message}` }]);
  }

  // IPv6 forwarding is switched on only when the config carries IPv6: turning it on makes Linux stop
  // accepting router advertisements (accept_ra=1), which could cut an IPv4-only box's own v6 uplink.
  const hasV6 = (list: readonly string[]) => list.some((p) => p.includes(':'));
  const usesIpv6 =
    overlay!.includes(':') ||
    hasV6(routePrefixes) ||
    hasV6(fw.localPrefixes) ||
    peers.some((p) => hasV6(p.allowedIps)) ||
    fw.relay.some((r) => r.target.startsWith('[')) ||
    (failover?.groups.some((g) => hasV6(g.prefixes)) ?? false);
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
      peers: peers.sort((a, b) => compareText(a.publicKey, b.publicKey)),
    },
    routes: sortedUnique(routePrefixes).map((p) => ({ prefix: p, dev: settings.interfaceName })),
    firewall: {
      ruleset,
      hash: rulesetHash(ruleset),
      ...(fw.relay.length > 0 ? { relay: relayListens(fw) } : {}),
      ...ruleMarksOf(fw),
    },
    sysctls: sysctls.sort((a, b) => compareText(a.key, b.key)),
    peerNames,
    ...(zones.length > 0 ? { zones: new ZoneTable(zones) } : {}),
    gateways: sortedUnique(gateways),
    ...(failover ? { failover } : {}),
  };
}

/**
 * The desired state under a failover view: each group this box sends to is added to the allowed IPs
 * of the candidate the view names (the first one without a view), and the gateways of the groups
 * the view says this box holds are added to its gateways. Without serving groups: `d` itself.
 */
export function withFailover(d: DesiredState, view: FailoverView | null): DesiredState {
  const plan = d.failover;
  if (!plan) return d;
  const extra = extraAllowedIps(plan, view);
  const held = heldGateways(plan, view);
  if (extra.size === 0 && held.length === 0) return d;
  const peers = d.wireguard.peers.map((p) => {
    const more = extra.get(p.publicKey);
    return more ? { ...p, allowedIps: sortedUnique([...p.allowedIps, ...more]) } : p;
  });
  return {
    ...d,
    wireguard: { ...d.wireguard, peers },
    gateways: held.length > 0 ? sortedUnique([...(d.gateways ?? []), ...held]) : d.gateways,
  };
}
