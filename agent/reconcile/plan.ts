// plan(desired, observed) -> steps. PURE (lint forbids I/O here): the loop observes the host, calls
// plan, and applies the steps. The same desired state against a host that already matches it
// yields no steps, so a reconcile with nothing to do issues no write command.
import { compareText, isInNetworkOf, isLiteralEndpoint } from '../host/canonical.js';
import type {
  DesiredState,
  FirewallObserved,
  InterfaceAddress,
  LinkObserved,
  RouteObserved,
  WgDeviceDesired,
  WgDeviceObserved,
  WgPeerDesired,
  WgPeerObserved,
  WireGuardMode,
} from './desired.js';

/** What the reconciler remembers about its own last firewall write. */
export interface FirewallRecord {
  /** Hash of the ruleset we wrote. */
  hash: string;
  /** Fingerprint the host reported right after that write. */
  fingerprint: string;
}

export interface ObservedState {
  /** null: the interface does not exist (or is not WireGuard). */
  wireguard: WgDeviceObserved | null;
  link: LinkObserved;
  /** Routes with Crosslink's protocol number only. */
  routes: RouteObserved[];
  firewall: FirewallObserved;
  /** null: nothing written since this process started (or since teardown). */
  firewallRecord: FirewallRecord | null;
  /** Current values of the sysctls named in the desired state ("" when unreadable). */
  sysctls: Record<string, string>;
  /** Every address on the box's interfaces (for virtual gateways). Absent: gateways left alone. */
  interfaceAddresses?: InterfaceAddress[];
  /**
   * Gateway addresses this agent has held or been asked to hold (remembered from desired states):
   * only these are ever removed, never an address someone else configured. null or absent:
   * gateway addresses are left as they are (e.g. after a restart, until the controller confirms
   * that this box still serves, so a rebooted primary does not grab a gateway its standby holds).
   */
  gatewayOwnership?: string[] | null;
}

export type Step =
  | { kind: 'wireguard.create'; ifname: string; mode: WireGuardMode }
  | { kind: 'link.up'; ifname: string; mtu: number }
  | { kind: 'address.add'; ifname: string; cidr: string }
  | { kind: 'address.del'; ifname: string; cidr: string }
  | {
      kind: 'firewall.replace';
      ruleset: string;
      hash: string;
      reason: 'missing' | 'changed' | 'drift';
      relay?: DesiredState['firewall']['relay'];
      /** The ct marks of the rules in force with this ruleset (the flows of others are forgotten). */
      marks?: ReadonlySet<number>;
    }
  | { kind: 'wireguard.sync'; ifname: string; device: WgDeviceDesired }
  | { kind: 'routes'; add: RouteObserved[]; del: RouteObserved[] }
  | { kind: 'sysctl.set'; key: string; value: string }
  /** ifname "" means no LAN interface has an address in the gateway's network: the step fails. */
  | { kind: 'gateway.add'; ifname: string; cidr: string }
  | { kind: 'gateway.del'; ifname: string; cidr: string };

export type StepKind = Step['kind'];

/** One line per step for logs and tests; never contains a key or the ruleset text. */
export function describeStep(s: Step): string {
  switch (s.kind) {
    case 'wireguard.create':
      return `create ${s.ifname} (${s.mode})`;
    case 'link.up':
      return `up ${s.ifname} mtu ${s.mtu}`;
    case 'address.add':
      return `address add ${s.cidr} dev ${s.ifname}`;
    case 'address.del':
      return `address del ${s.cidr} dev ${s.ifname}`;
    case 'firewall.replace':
      return `firewall replace (${s.reason})`;
    case 'wireguard.sync':
      return `wg sync ${s.ifname} (${s.device.peers.length} peers, port ${s.device.listenPort})`;
    case 'routes':
      return `routes add ${s.add.map((r) => r.prefix).join(',') || '-'} del ${s.del.map((r) => r.prefix).join(',') || '-'}`;
    case 'sysctl.set':
      return `sysctl ${s.key}=${s.value}`;
    case 'gateway.add':
      return `gateway add ${s.cidr} dev ${s.ifname || '(no LAN in its network)'}`;
    case 'gateway.del':
      return `gateway del ${s.cidr} dev ${s.ifname}`;
  }
}

// Link-local IPv6 addresses appear on TUN devices by themselves; they are the kernel's, not ours.
const isLinkLocal = (cidr: string) => /^fe[89ab][0-9a-f]:/i.test(cidr);

function samePeer(d: WgPeerDesired, o: WgPeerObserved): boolean {
  if (d.persistentKeepaliveSeconds !== o.persistentKeepaliveSeconds) return false;
  if (!sameSet(d.allowedIps, o.allowedIps)) return false;
  // An empty desired endpoint leaves whatever the peer roamed from alone. A host name cannot be
  // compared with the address `wg show` reports, so it counts as set once any endpoint is known.
  if (d.endpoint === '') return true;
  if (isLiteralEndpoint(d.endpoint)) return d.endpoint === o.endpoint;
  return o.endpoint !== '';
}

/** Equal as sets; both lists are free of duplicates (canonical). Runs for every peer on every
 *  reconcile, so no sorting or allocation for the usual handful of prefixes. */
function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  if (a.length <= 16) return b.every((x) => a.includes(x));
  const set = new Set(a);
  return b.every((x) => set.has(x));
}

/** True when the live device differs from the desired one in anything `wg syncconf` sets. */
export function wireguardDiffers(
  desired: WgDeviceDesired & { publicKey: string },
  observed: WgDeviceObserved,
): boolean {
  if (observed.listenPort !== desired.listenPort || observed.publicKey !== desired.publicKey) return true;
  if (observed.peers.length !== desired.peers.length) return true;
  const byKey = new Map(observed.peers.map((p) => [p.publicKey, p]));
  return desired.peers.some((d) => {
    const o = byKey.get(d.publicKey);
    return !o || !samePeer(d, o);
  });
}

const routeKey = (r: RouteObserved) => `${r.prefix} ${r.dev}`;
const byRoute = (a: RouteObserved, b: RouteObserved) => compareText(a.prefix, b.prefix) || compareText(a.dev, b.dev);

export function plan(desired: DesiredState, observed: ObservedState): Step[] {
  const steps: Step[] = [];
  const ifname = desired.interfaceName;
  const isNew = observed.wireguard === null;

  if (isNew) steps.push({ kind: 'wireguard.create', ifname, mode: desired.wireguardMode });

  // A freshly created interface is down with the default MTU and no addresses, whatever the
  // observation (taken before creation) said.
  const link: LinkObserved = isNew ? { exists: false, isUp: false, mtu: 0, addresses: [] } : observed.link;
  if (!link.isUp || link.mtu !== desired.mtu) steps.push({ kind: 'link.up', ifname, mtu: desired.mtu });

  const have = new Set(link.addresses);
  const want = new Set(desired.addresses);
  for (const cidr of [...desired.addresses].sort(compareText))
    if (!have.has(cidr)) steps.push({ kind: 'address.add', ifname, cidr });
  for (const cidr of [...link.addresses].sort(compareText)) {
    if (!want.has(cidr) && !isLinkLocal(cidr)) steps.push({ kind: 'address.del', ifname, cidr });
  }

  // The firewall goes in before peers, routes and forwarding, so no packet crosses the box while
  // the policy is not yet enforced.
  const fw = firewallReason(desired, observed);
  if (fw) {
    const relay = desired.firewall.relay;
    steps.push({
      kind: 'firewall.replace',
      ruleset: desired.firewall.ruleset,
      hash: desired.firewall.hash,
      reason: fw,
      ...(relay ? { relay } : {}),
      marks: new Set(desired.firewall.ruleMarks?.keys() ?? []),
    });
  }

  // Only when something differs: `wg syncconf` keeps unchanged peers' sessions, but a no-op must
  // still issue no write.
  if (isNew || wireguardDiffers(desired.wireguard, observed.wireguard!)) {
    const { publicKey: _publicKey, ...device } = desired.wireguard;
    steps.push({ kind: 'wireguard.sync', ifname, device });
  }

  const haveRoutes = new Set(observed.routes.map(routeKey));
  const wantRoutes = new Set(desired.routes.map(routeKey));
  const add = desired.routes.filter((r) => !haveRoutes.has(routeKey(r))).sort(byRoute);
  const del = observed.routes.filter((r) => !wantRoutes.has(routeKey(r))).sort(byRoute);
  if (add.length > 0 || del.length > 0) steps.push({ kind: 'routes', add, del });

  for (const { key, value } of desired.sysctls) {
    if ((observed.sysctls[key] ?? '').trim() !== value) steps.push({ kind: 'sysctl.set', key, value });
  }

  steps.push(...gatewaySteps(desired, observed));
  return steps;
}

/**
 * Virtual gateways last: the box takes over a LAN's return path only once its firewall, peers,
 * routes and forwarding are in place. A gateway goes on the interface that has an address of its
 * own in the gateway's network; addresses this agent never owned are never removed.
 */
function gatewaySteps(desired: DesiredState, observed: ObservedState): Step[] {
  const ownership = observed.gatewayOwnership;
  if (observed.interfaceAddresses === undefined || ownership === null || ownership === undefined) return [];
  const want = desired.gateways ?? [];
  const owned = new Set([...ownership, ...want]);
  const lan = observed.interfaceAddresses.filter((a) => a.ifname !== desired.interfaceName);
  const steps: Step[] = [];
  for (const a of lan) {
    // Also on the wrong interface (the LAN moved): remove there, add on the right one.
    if (owned.has(a.cidr) && (!want.includes(a.cidr) || placeFor(a.cidr, lan, owned) !== a.ifname))
      steps.push({ kind: 'gateway.del', ifname: a.ifname, cidr: a.cidr });
  }
  for (const cidr of want) {
    const ifname = placeFor(cidr, lan, owned);
    if (ifname !== '' && lan.some((a) => a.cidr === cidr && a.ifname === ifname)) continue;
    steps.push({ kind: 'gateway.add', ifname, cidr });
  }
  return steps;
}

/** The interface with an address of its own (not a gateway) in the gateway's network; "" if none. */
function placeFor(gateway: string, lan: readonly InterfaceAddress[], owned: ReadonlySet<string>): string {
  return lan.find((a) => !owned.has(a.cidr) && isInNetworkOf(a.cidr, gateway))?.ifname ?? '';
}

function firewallReason(desired: DesiredState, observed: ObservedState): 'missing' | 'changed' | 'drift' | null {
  if (!observed.firewall.exists) return 'missing';
  const rec = observed.firewallRecord;
  if (rec === null || rec.hash !== desired.firewall.hash) return 'changed';
  if (rec.fingerprint !== observed.firewall.fingerprint) return 'drift';
  return null;
}
