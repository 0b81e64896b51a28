// The testbed's layout types: the short description a test writes and the full plan planTopology makes of it.

/** One LAN side of an edge box. */
export interface BoxLanSpec {
  /** Name of the LAN segment (a bridge in its own namespace); boxes naming the same LAN share it. */
  lan: string;
  /** The box's address on this LAN with its prefix length, e.g. "10.10.1.1/24". */
  address: string;
  /** Optional IPv6 address with prefix length, e.g. "fd10:1::1/64". */
  address6?: string;
}

export interface BoxSpec {
  /** Lower-case letters, digits and '-'; unique among boxes, hosts and the controller. */
  name: string;
  /** One or more LAN sides. */
  lans: BoxLanSpec[];
  /** The underlay networks the box is cabled to (names from TestbedDescription.underlays); absent: the first. */
  underlays?: string[];
}

export interface HostSpec {
  name: string;
  /** The LAN the host is plugged into. */
  lan: string;
  /** With prefix length, e.g. "10.10.1.10/24". */
  address: string;
  address6?: string;
  /** Default route. Absent: the LAN's gateway, else the address of the first box on the LAN. */
  gateway?: string;
  gateway6?: string;
}

/** Optional: only needed to give a LAN a gateway that is not a box's own address (e.g. a shared VIP). */
export interface LanSpec {
  name: string;
  gateway?: string;
  gateway6?: string;
}

export interface TestbedDescription {
  /** Namespace-name prefix, `[a-z][a-z0-9]{1,9}`. Absent: "xl" + 4 random characters. */
  prefix?: string;
  /** A controller host on the underlay: true (named "controller"), a name, or absent/false for none. */
  controller?: boolean | string;
  /**
   * Underlay networks, each its own router namespace with no route to the others (N3 and the PSN).
   * Absent: one underlay named "default". The controller host is cabled to every one.
   */
  underlays?: string[];
  lans?: LanSpec[];
  boxes: BoxSpec[];
  hosts?: HostSpec[];
}

export interface BoxLan {
  lan: string;
  /** Interface name inside the box namespace: lan0, lan1, ... in the order given. */
  interface: string;
  /** Without prefix length. */
  address: string;
  prefixLength: number;
  /** Network prefix, e.g. "10.10.1.0/24". */
  subnet: string;
  address6?: string;
  prefixLength6?: number;
  subnet6?: string;
}

/** One cable from a box or the controller to an underlay network. */
export interface UnderlayLink {
  underlay: string;
  /** Interface name in the node's namespace: "wan" for its first underlay, then "wan1", "wan2", ... */
  interface: string;
  address: string;
  address6: string;
  gateway: string;
  gateway6: string;
}

export interface Box {
  kind: 'box';
  name: string;
  netns: string;
  /** 1-based; also the third octet of the underlay address. */
  index: number;
  wanInterface: 'wan';
  /** Underlay address without prefix length (172.31.<index>.2). */
  wanAddress: string;
  wanAddress6: string;
  /** The underlay router's address on this box's link. */
  wanGateway: string;
  wanGateway6: string;
  /** WireGuard interface name for this box: unique on the machine, since wireguard-go's sockets are shared. */
  wgInterface: string;
  lans: BoxLan[];
  /** Every underlay the box is cabled to; the first is the one wanAddress names. */
  underlays: UnderlayLink[];
}

export interface Host {
  kind: 'host';
  name: string;
  netns: string;
  lan: string;
  interface: 'eth0';
  address: string;
  prefixLength: number;
  subnet: string;
  address6?: string;
  subnet6?: string;
  /** Absent when the host has no default route. */
  gateway?: string;
  gateway6?: string;
}

export interface ControllerHost {
  kind: 'controller';
  name: string;
  netns: string;
  interface: 'wan';
  /** Underlay address without prefix length (172.31.0.2). */
  address: string;
  address6: string;
  gateway: string;
  gateway6: string;
  /** One per underlay (the controller host is cabled to every one); the first is `address`. */
  underlays: UnderlayLink[];
}

export interface Lan {
  kind: 'lan';
  name: string;
  netns: string;
  bridge: 'br0';
  gateway?: string;
  gateway6?: string;
}

export interface Underlay {
  kind: 'underlay';
  /** "underlay" for the first (as node references have always named it), else the underlay's own name. */
  name: string;
  /** The underlay network's name ("default" when the description names none). */
  network: string;
  netns: string;
  /** 0-based; picks the address block 172.(31-i).k.0/24, fd31:i:k::/64. */
  index: number;
}

/** Something the testbed can run commands in. */
export type TestbedNode = Box | Host | ControllerHost | Lan | Underlay;

export interface Topology {
  prefix: string;
  /** The first underlay network. */
  underlay: Underlay;
  underlays: Underlay[];
  controller?: ControllerHost;
  lans: Lan[];
  boxes: Box[];
  hosts: Host[];
  /** Every namespace, in creation order. */
  namespaces: string[];
  /** Per namespace: sysctl settings applied before any interface is created. */
  sysctls: { netns: string; settings: string[] }[];
  /** `ip -batch` lines run in the current namespace: veth pairs created directly inside two namespaces. */
  veths: string[];
  /**
   * `ip -n NS -batch` lines per namespace: addresses, links up, routes. Phase 1 (underlay router and
   * LAN bridges) runs before phase 2 (boxes, hosts, controller), so every veth has its far end up.
   */
  batches: { netns: string; phase: 1 | 2; lines: string[] }[];
  /** Underlay ports (in the underlay router namespaces) for each attached node, by node name; first underlay first. */
  underlayPorts: Map<string, UnderlayPort[]>;
}

/** The underlay router's side of one node's cable. */
export interface UnderlayPort {
  underlay: string;
  /** The router namespace. */
  netns: string;
  interface: string;
  /** The attached node's addresses. */
  address: string;
  address6: string;
}
