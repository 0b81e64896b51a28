// PURE: turns a short topology description into the full layout (namespace and interface names,
// addresses, and the `ip` batch lines that build it). No I/O here, so the layout is checked by a
// unit test without root, and testbed.ts only has to apply it.
import ipaddr from 'ipaddr.js';
import { CrosslinkError, type ErrorDetail } from '../../lib/errors.js';

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
  name: 'underlay';
  netns: string;
}

/** Something the testbed can run commands in. */
export type TestbedNode = Box | Host | ControllerHost | Lan | Underlay;

export interface Topology {
  prefix: string;
  underlay: Underlay;
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
  /** Underlay port (in the underlay namespace) for each attached node, by node name. */
  underlayPorts: Map<string, { interface: string; address: string; address6: string }>;
}

const NAME = /^[a-z][a-z0-9-]{0,30}$/;
const PREFIX = /^[a-z][a-z0-9]{1,9}$/;

/** Underlay link k: 172.31.k.0/24 and fd31:0:k::/64; the router is .1, the attached node .2. */
function underlayLink(k: number): { router: string; node: string; router6: string; node6: string } {
  const hex = k.toString(16);
  return { router: `172.31.${k}.1`, node: `172.31.${k}.2`, router6: `fd31:0:${hex}::1`, node6: `fd31:0:${hex}::2` };
}

interface ParsedCidr {
  address: string;
  prefixLength: number;
  subnet: string;
}

function parseCidr(value: unknown, family: 4 | 6, path: string, errors: ErrorDetail[]): ParsedCidr | undefined {
  if (typeof value !== 'string' || !ipaddr.isValidCIDR(value)) {
    errors.push({ path, message: `expected an IPv${family} address with prefix length, got ${JSON.stringify(value)}` });
    return undefined;
  }
  const [addr, len] = ipaddr.parseCIDR(value);
  if ((addr.kind() === 'ipv4' ? 4 : 6) !== family) {
    errors.push({ path, message: `expected an IPv${family} address, got ${value}` });
    return undefined;
  }
  const network = addr.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(value) : ipaddr.IPv6.networkAddressFromCIDR(value);
  return { address: addr.toString(), prefixLength: len, subnet: `${network.toString()}/${len}` };
}

function checkAddress(value: string | undefined, family: 4 | 6, path: string, errors: ErrorDetail[]): void {
  if (value === undefined) return;
  if (!ipaddr.isValid(value) || (ipaddr.parse(value).kind() === 'ipv4' ? 4 : 6) !== family) {
    errors.push({ path, message: `expected an IPv${family} address, got ${JSON.stringify(value)}` });
  }
}

/** Validates the description and computes the whole layout. Throws CrosslinkError('config_invalid') listing every problem. */
export function planTopology(desc: TestbedDescription, prefix: string): Topology {
  const errors: ErrorDetail[] = [];
  if (!PREFIX.test(prefix)) errors.push({ path: 'prefix', message: `must match ${PREFIX} (it prefixes interface names of at most 15 characters)` });
  if (!Array.isArray(desc.boxes)) errors.push({ path: 'boxes', message: 'expected a list of boxes' });
  if (desc.boxes.length > 254) errors.push({ path: 'boxes', message: 'at most 254 boxes (one underlay /24 each)' });

  const ns = (name: string): string => `${prefix}-${name}`;
  const seen = new Set<string>();
  const checkName = (name: unknown, path: string): void => {
    if (typeof name !== 'string' || !NAME.test(name)) errors.push({ path, message: `name must match ${NAME}` });
    else if (name === 'wan' || name === 'underlay' || name.startsWith('lan-')) errors.push({ path, message: `"${name}" is reserved` });
    else if (seen.has(name)) errors.push({ path, message: `"${name}" is used twice` });
    else seen.add(name);
  };

  const underlay: Underlay = { kind: 'underlay', name: 'underlay', netns: ns('wan') };
  const underlayPorts = new Map<string, { interface: string; address: string; address6: string }>();
  const underlayLines = ['link set lo up'];
  const veths: string[] = [];
  const batches: { netns: string; phase: 1 | 2; lines: string[] }[] = [];

  const attachToUnderlay = (node: string, nodeNs: string, k: number): ReturnType<typeof underlayLink> => {
    const link = underlayLink(k);
    const port = `u${k}`;
    veths.push(`link add ${port} netns ${underlay.netns} type veth peer name wan netns ${nodeNs}`);
    underlayLines.push(`addr add ${link.router}/24 dev ${port}`, `addr add ${link.router6}/64 dev ${port} nodad`, `link set ${port} up`);
    underlayPorts.set(node, { interface: port, address: link.node, address6: link.node6 });
    return link;
  };
  const wanLines = (link: ReturnType<typeof underlayLink>): string[] => [
    'link set lo up',
    `addr add ${link.node}/24 dev wan`, `addr add ${link.node6}/64 dev wan nodad`, 'link set wan up',
    `route add default via ${link.router}`, `route add ::/0 via ${link.router6}`,
  ];

  let controller: ControllerHost | undefined;
  if (desc.controller) {
    const name = typeof desc.controller === 'string' ? desc.controller : 'controller';
    checkName(name, 'controller');
    const netns = ns(name);
    const link = attachToUnderlay(name, netns, 0);
    controller = { kind: 'controller', name, netns, interface: 'wan', address: link.node, address6: link.node6, gateway: link.router, gateway6: link.router6 };
    batches.push({ netns, phase: 2, lines: wanLines(link) });
  }

  // LANs: declared ones first, then any a box or host names.
  const lans = new Map<string, Lan>();
  const lanPorts = new Map<string, number>();
  const addLan = (name: string, path: string, spec?: LanSpec): Lan => {
    let lan = lans.get(name);
    if (!lan) {
      if (typeof name !== 'string' || !NAME.test(name)) errors.push({ path, message: `LAN name must match ${NAME}` });
      lan = { kind: 'lan', name, netns: ns(`lan-${name}`), bridge: 'br0' };
      lans.set(name, lan);
      lanPorts.set(name, 0);
    }
    if (spec) {
      checkAddress(spec.gateway, 4, `${path}.gateway`, errors);
      checkAddress(spec.gateway6, 6, `${path}.gateway6`, errors);
      if (spec.gateway) lan.gateway = spec.gateway;
      if (spec.gateway6) lan.gateway6 = spec.gateway6;
    }
    return lan;
  };
  const plugIntoLan = (lan: Lan, nodeNs: string, ifname: string): void => {
    const j = lanPorts.get(lan.name) ?? 0;
    lanPorts.set(lan.name, j + 1);
    veths.push(`link add p${j} netns ${lan.netns} type veth peer name ${ifname} netns ${nodeNs}`);
  };
  (desc.lans ?? []).forEach((l, i) => {
    if (lans.has(l.name)) errors.push({ path: `lans[${i}].name`, message: `LAN "${l.name}" is declared twice` });
    addLan(l.name, `lans[${i}].name`, l);
  });

  const boxes: Box[] = [];
  const firstBoxOnLan = new Map<string, BoxLan>();
  desc.boxes.forEach((b, i) => {
    const path = `boxes[${i}]`;
    checkName(b.name, `${path}.name`);
    if (!Array.isArray(b.lans) || b.lans.length === 0) errors.push({ path: `${path}.lans`, message: 'a box needs at least one LAN side' });
    const index = i + 1;
    const netns = ns(b.name);
    const link = attachToUnderlay(b.name, netns, index);
    const lines = wanLines(link);
    const boxLans: BoxLan[] = [];
    (b.lans ?? []).forEach((side, s) => {
      const sp = `${path}.lans[${s}]`;
      const lan = addLan(side.lan, `${sp}.lan`);
      if (boxLans.some((x) => x.lan === side.lan)) errors.push({ path: `${sp}.lan`, message: `box is already on LAN "${side.lan}"` });
      const v4 = parseCidr(side.address, 4, `${sp}.address`, errors);
      const v6 = side.address6 === undefined ? undefined : parseCidr(side.address6, 6, `${sp}.address6`, errors);
      if (!v4) return;
      const ifname = `lan${s}`;
      plugIntoLan(lan, netns, ifname);
      const boxLan: BoxLan = { lan: side.lan, interface: ifname, address: v4.address, prefixLength: v4.prefixLength, subnet: v4.subnet };
      lines.push(`addr add ${v4.address}/${v4.prefixLength} dev ${ifname}`);
      if (v6) {
        Object.assign(boxLan, { address6: v6.address, prefixLength6: v6.prefixLength, subnet6: v6.subnet });
        lines.push(`addr add ${v6.address}/${v6.prefixLength} dev ${ifname} nodad`);
      }
      lines.push(`link set ${ifname} up`);
      boxLans.push(boxLan);
      if (!firstBoxOnLan.has(side.lan)) firstBoxOnLan.set(side.lan, boxLan);
    });
    boxes.push({
      kind: 'box', name: b.name, netns, index, wanInterface: 'wan', wanAddress: link.node, wanAddress6: link.node6,
      wanGateway: link.router, wanGateway6: link.router6, wgInterface: `${prefix}w${index}`, lans: boxLans,
    });
    batches.push({ netns, phase: 2, lines });
  });

  const hosts: Host[] = [];
  (desc.hosts ?? []).forEach((h, i) => {
    const path = `hosts[${i}]`;
    checkName(h.name, `${path}.name`);
    if (!lans.has(h.lan)) {
      errors.push({ path: `${path}.lan`, message: `no box or LAN declares LAN "${h.lan}"` });
      return;
    }
    const lan = addLan(h.lan, `${path}.lan`);
    const v4 = parseCidr(h.address, 4, `${path}.address`, errors);
    const v6 = h.address6 === undefined ? undefined : parseCidr(h.address6, 6, `${path}.address6`, errors);
    checkAddress(h.gateway, 4, `${path}.gateway`, errors);
    checkAddress(h.gateway6, 6, `${path}.gateway6`, errors);
    if (!v4) return;
    const netns = ns(h.name);
    plugIntoLan(lan, netns, 'eth0');
    const boxLan = firstBoxOnLan.get(h.lan);
    const gateway = h.gateway ?? lan.gateway ?? boxLan?.address;
    const gateway6 = v6 ? (h.gateway6 ?? lan.gateway6 ?? boxLan?.address6) : undefined;
    const lines = ['link set lo up', `addr add ${v4.address}/${v4.prefixLength} dev eth0`];
    if (v6) lines.push(`addr add ${v6.address}/${v6.prefixLength} dev eth0 nodad`);
    lines.push('link set eth0 up');
    if (gateway) lines.push(`route add default via ${gateway}`);
    if (gateway6) lines.push(`route add ::/0 via ${gateway6}`);
    batches.push({ netns, phase: 2, lines });
    hosts.push({
      kind: 'host', name: h.name, netns, lan: h.lan, interface: 'eth0', address: v4.address, prefixLength: v4.prefixLength,
      subnet: v4.subnet, ...(v6 ? { address6: v6.address, subnet6: v6.subnet } : {}),
      ...(gateway ? { gateway } : {}), ...(gateway6 ? { gateway6 } : {}),
    });
  });

  if (errors.length > 0) {
    throw new CrosslinkError('config_invalid', `testbed description is invalid: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, errors);
  }

  for (const lan of lans.values()) {
    const lines = ['link set lo up', 'link add br0 type bridge mcast_snooping 0', 'link set br0 up'];
    for (let j = 0; j < (lanPorts.get(lan.name) ?? 0); j++) lines.push(`link set p${j} master br0`, `link set p${j} up`);
    batches.push({ netns: lan.netns, phase: 1, lines });
  }
  batches.unshift({ netns: underlay.netns, phase: 1, lines: underlayLines });

  const namespaces = [underlay.netns, ...(controller ? [controller.netns] : []), ...[...lans.values()].map((l) => l.netns),
    ...boxes.map((b) => b.netns), ...hosts.map((h) => h.netns)];
  // No DAD: addresses are usable at once instead of after a second or two of "tentative".
  const noDad = ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'];
  const forwarding = ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.default.forwarding=1'];
  const routers = new Set([underlay.netns, ...boxes.map((b) => b.netns)]);
  const sysctls = namespaces.map((n) => ({ netns: n, settings: routers.has(n) ? [...noDad, ...forwarding] : noDad }));

  return {
    prefix, underlay, ...(controller ? { controller } : {}), lans: [...lans.values()], boxes, hosts,
    namespaces, sysctls, veths, batches, underlayPorts,
  };
}
