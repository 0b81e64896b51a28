// The agent's narrow ports onto the host. Linux adapters (agent/host/linux/) run wg, ip and nft;
// the in-memory fake (agent/host/fake-host.ts) passes the same contract suite (host.contract.ts).
// Everything here is owned by Crosslink: one interface, routes marked with CROSSLINK_RT_PROTO,
// one nft table. Adapters never touch anything else on the box. The state they read and write is
// the reconciler's (agent/reconcile/host-state.ts).
import type {
  FirewallCounter,
  FirewallObserved,
  InterfaceAddress,
  LinkObserved,
  RouteChanges,
  RouteObserved,
  WgDeviceDesired,
  WgDeviceObserved,
} from '../reconcile/host-state.js';

/** Routing protocol number that marks Crosslink's routes (`ip route ... proto 147`). */
export const CROSSLINK_RT_PROTO = 147;
/** nftables table (family inet) that Crosslink owns. */
export const CROSSLINK_NFT_TABLE = 'crosslink';

export type WireGuardMode = 'kernel' | 'userspace';

export interface WireGuardPort {
  /** null when the interface does not exist or is not WireGuard. */
  observe(ifname: string): Promise<WgDeviceObserved | null>;
  /** Creates the interface (kernel link or wireguard-go). No-op if it exists. */
  create(ifname: string, mode: WireGuardMode): Promise<void>;
  /** Makes the device equal to `desired` with `wg syncconf` (unchanged peers keep their sessions). */
  sync(ifname: string, desired: WgDeviceDesired): Promise<void>;
  /**
   * Optional: does the CPU work of a later sync() of this very `desired` object now (renders the
   * file), so that sync() starts its command at once. The reconciler calls it while the box is
   * busy with another command (the firewall load). Writes nothing to the host.
   */
  prepare?(ifname: string, desired: WgDeviceDesired): void;
  /** Removes the interface (and stops wireguard-go). No-op if absent. */
  remove(ifname: string): Promise<void>;
}

export interface LinkPort {
  observe(ifname: string): Promise<LinkObserved>;
  setUp(ifname: string, mtu: number): Promise<void>;
  addAddress(ifname: string, cidr: string): Promise<void>;
  delAddress(ifname: string, cidr: string): Promise<void>;
  /** Every global address on every interface except loopback (link-local IPv6 left out), sorted by
   *  interface then address. Used to place virtual gateway addresses on the right LAN. Optional:
   *  without it the reconciler leaves gateway addresses alone. */
  observeAll?(): Promise<InterfaceAddress[]>;
  /** Adds a virtual gateway address (a subnet's `gateway`) to a LAN interface and announces it so
   *  LAN hosts move their neighbour entry to this box: gratuitous ARP for IPv4, an unsolicited
   *  neighbour advertisement for IPv6. Removing it is `delAddress`. */
  addGateway?(ifname: string, cidr: string): Promise<void>;
}

export interface RoutePort {
  /** Routes with protocol CROSSLINK_RT_PROTO only (both families), sorted by prefix. */
  observe(): Promise<RouteObserved[]>;
  /** Applies all changes in one batch (`ip -force -batch FILE`); adds are issued before deletes. */
  apply(changes: RouteChanges): Promise<void>;
  /** Optional: does the CPU work of a later apply() of this very `changes` object now (the batch
   *  text), as WireGuardPort.prepare. Writes nothing to the host. */
  prepare?(changes: RouteChanges): void;
}

export interface FirewallReplaceOptions {
  /** Called once the commit command is running (the box then waits on the kernel), or not at all:
   *  the caller's chance to do CPU work that would otherwise delay the next commands. */
  whileCommitting?: () => void;
}

export interface FirewallPort {
  observe(): Promise<FirewallObserved>;
  /** Replaces the whole Crosslink table atomically (`nft -f`) with `ruleset` (nft syntax, made by
   *  the renderer), and returns the fingerprint of the table as now installed. */
  replace(ruleset: string, opts?: FirewallReplaceOptions): Promise<string>;
  /** Deletes the Crosslink table. No-op if absent. */
  remove(): Promise<void>;
  /** Named counters of the table (dropped_outbound, dropped_inbound, dropped_local), for status and
   *  metrics. Empty when the table is absent. Optional: callers must cope with its absence. */
  counters?(): Promise<Record<string, FirewallCounter>>;
}

/** A relay's "address:port" that other boxes send to (a RelayForward's listen side). */
export interface RelayListen {
  family: 4 | 6;
  address: string;
  port: number;
}

/** Connection tracking: forgets UDP flows to a relay port so the next datagram takes the current NAT
 *  map; and forgets the flows a rule no longer in force admitted, so their next packet is judged anew. */
export interface ConntrackPort {
  forgetUdp(listens: readonly RelayListen[]): Promise<void>;
  /** Deletes the entries (both families) whose ct mark is one of `marks`. */
  forgetMarks(marks: readonly number[]): Promise<void>;
  /** The distinct ct marks of the entries whose mark is in Crosslink's range (base/mask). */
  listMarks(base: number, mask: number): Promise<number[]>;
}

export interface SysctlPort {
  get(key: string): Promise<string>;
  set(key: string, value: string): Promise<void>;
}

/** Everything the reconciler may touch. */
export interface Host {
  wireguard: WireGuardPort;
  links: LinkPort;
  routes: RoutePort;
  firewall: FirewallPort;
  sysctl: SysctlPort;
  /** Relays, and every box when rules go (their flows are forgotten); absent: neither happens (a
   *  relayed pair may need a conntrack timeout to pass, a removed rule's flows run on). */
  conntrack?: ConntrackPort;
}
