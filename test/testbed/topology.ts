// PURE: turns a short topology description into the full layout (namespace and interface names,
// addresses, and the `ip` batch lines that build it). No I/O here, so the layout is checked by a
// unit test without root, and testbed.ts only has to apply it.
import ipaddr from 'ipaddr.js';
import { CrosslinkError, type ErrorDetail } from '../../lib/errors.js';
import type {
  LanSpec,
  TestbedDescription,
  BoxLan,
  UnderlayLink,
  Box,
  Host,
  ControllerHost,
  Lan,
  Underlay,
  Topology,
  UnderlayPort,
} from './topology-types.js';

export type {
  BoxLanSpec,
  BoxSpec,
  HostSpec,
  LanSpec,
  TestbedDescription,
  BoxLan,
  UnderlayLink,
  Box,
  Host,
  ControllerHost,
  Lan,
  Underlay,
  TestbedNode,
  Topology,
  UnderlayPort,
} from './topology-types.js';

const NAME = /^[a-z][a-z0-9-]{0,30}$/;
const PREFIX = /^[a-z][a-z0-9]{1,9}$/;

/** Link k of underlay u: 172.(31-u).k.0/24 and fd31:u:k::/64; the router is .1, the attached node .2. */
function underlayLink(u: number, k: number): { router: string; node: string; router6: string; node6: string } {
  const hex = k.toString(16);
  const net = 31 - u;
  return {
    router: `172.${net}.${k}.1`,
    node: `172.${net}.${k}.2`,
    router6: `fd31:${u}:${hex}::1`,
    node6: `fd31:${u}:${hex}::2`,
  };
}

/** The whole address block of underlay u, for routes towards it from a box's second cable. */
function underlayBlock(u: number): { v4: string; v6: string } {
  return { v4: `172.${31 - u}.0.0/16`, v6: `fd31:${u}::/32` };
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
  const network =
    addr.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(value) : ipaddr.IPv6.networkAddressFromCIDR(value);
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
  if (!PREFIX.test(prefix))
    errors.push({
      path: 'prefix',
      message: `must match ${PREFIX} (it prefixes interface names of at most 15 characters)`,
    });
  if (!Array.isArray(desc.boxes)) errors.push({ path: 'boxes', message: 'expected a list of boxes' });
  if (desc.boxes.length > 254) errors.push({ path: 'boxes', message: 'at most 254 boxes (one underlay /24 each)' });

  const ns = (name: string): string => `${prefix}-${name}`;
  const seen = new Set<string>();
  const checkName = (name: unknown, path: string): void => {
    if (typeof name !== 'string' || !NAME.test(name)) errors.push({ path, message: `name must match ${NAME}` });
    else if (name === 'wan' || name === 'underlay' || name.startsWith('lan-'))
      errors.push({ path, message: `"${name}" is reserved` });
    else if (seen.has(name)) errors.push({ path, message: `"${name}" is used twice` });
    else seen.add(name);
  };

  const networkNames = desc.underlays ?? ['default'];
  if (!Array.isArray(networkNames) || networkNames.length === 0 || networkNames.length > 16) {
    errors.push({ path: 'underlays', message: 'expected a list of 1 to 16 underlay names' });
  }
  const underlays: Underlay[] = networkNames.map((network, i) => {
    if (typeof network !== 'string' || !NAME.test(network))
      errors.push({ path: `underlays[${i}]`, message: `name must match ${NAME}` });
    else if (networkNames.indexOf(network) !== i)
      errors.push({ path: `underlays[${i}]`, message: `underlay "${network}" is named twice` });
    return {
      kind: 'underlay',
      name: i === 0 ? 'underlay' : network,
      network,
      netns: desc.underlays ? ns(`wan-${network}`) : ns('wan'),
      index: i,
    };
  });
  const underlay = underlays[0]!;
  const underlayPorts = new Map<string, UnderlayPort[]>();
  const underlayLines = new Map(underlays.map((u) => [u.network, ['link set lo up']]));
  const veths: string[] = [];
  const batches: { netns: string; phase: 1 | 2; lines: string[] }[] = [];

  /** Cables a node to each named underlay (link k of each); returns its links and the `ip` lines for its side. */
  const attachToUnderlays = (
    node: string,
    nodeNs: string,
    k: number,
    networks: string[],
    path: string,
  ): { links: UnderlayLink[]; lines: string[] } => {
    const links: UnderlayLink[] = [];
    const lines = ['link set lo up'];
    networks.forEach((network, j) => {
      const u = underlays.find((x) => x.network === network);
      if (!u) {
        errors.push({
          path: `${path}[${j}]`,
          message: `no underlay named "${network}" (declared: ${networkNames.join(', ')})`,
        });
        return;
      }
      if (networks.indexOf(network) !== j) {
        errors.push({ path: `${path}[${j}]`, message: `underlay "${network}" is named twice` });
        return;
      }
      const link = underlayLink(u.index, k);
      const port = `u${k}`;
      const ifname = links.length === 0 ? 'wan' : `wan${links.length}`;
      veths.push(`link add ${port} netns ${u.netns} type veth peer name ${ifname} netns ${nodeNs}`);
      underlayLines
        .get(network)!
        .push(
          `addr add ${link.router}/24 dev ${port}`,
          `addr add ${link.router6}/64 dev ${port} nodad`,
          `link set ${port} up`,
        );
      const ports = underlayPorts.get(node) ?? [];
      ports.push({ underlay: network, netns: u.netns, interface: port, address: link.node, address6: link.node6 });
      underlayPorts.set(node, ports);
      lines.push(
        `addr add ${link.node}/24 dev ${ifname}`,
        `addr add ${link.node6}/64 dev ${ifname} nodad`,
        `link set ${ifname} up`,
      );
      // The first cable carries the default route; a further cable reaches only its own underlay's block.
      if (links.length === 0) lines.push(`route add default via ${link.router}`, `route add ::/0 via ${link.router6}`);
      else
        lines.push(
          `route add ${underlayBlock(u.index).v4} via ${link.router}`,
          `route add ${underlayBlock(u.index).v6} via ${link.router6}`,
        );
      links.push({
        underlay: network,
        interface: ifname,
        address: link.node,
        address6: link.node6,
        gateway: link.router,
        gateway6: link.router6,
      });
    });
    return { links, lines };
  };

  let controller: ControllerHost | undefined;
  if (desc.controller) {
    const name = typeof desc.controller === 'string' ? desc.controller : 'controller';
    checkName(name, 'controller');
    const netns = ns(name);
    const { links, lines } = attachToUnderlays(name, netns, 0, networkNames, 'underlays');
    const first = links[0];
    if (first) {
      controller = {
        kind: 'controller',
        name,
        netns,
        interface: 'wan',
        address: first.address,
        address6: first.address6,
        gateway: first.gateway,
        gateway6: first.gateway6,
        underlays: links,
      };
    }
    batches.push({ netns, phase: 2, lines });
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
    if (!Array.isArray(b.lans) || b.lans.length === 0)
      errors.push({ path: `${path}.lans`, message: 'a box needs at least one LAN side' });
    const index = i + 1;
    const netns = ns(b.name);
    if (b.underlays !== undefined && (!Array.isArray(b.underlays) || b.underlays.length === 0)) {
      errors.push({ path: `${path}.underlays`, message: 'expected a list of at least one underlay name' });
    }
    const { links, lines } = attachToUnderlays(
      b.name,
      netns,
      index,
      b.underlays?.length ? b.underlays : [underlay.network],
      `${path}.underlays`,
    );
    const link = links[0] ?? { address: '', address6: '', gateway: '', gateway6: '' };
    const boxLans: BoxLan[] = [];
    (b.lans ?? []).forEach((side, s) => {
      const sp = `${path}.lans[${s}]`;
      const lan = addLan(side.lan, `${sp}.lan`);
      if (boxLans.some((x) => x.lan === side.lan))
        errors.push({ path: `${sp}.lan`, message: `box is already on LAN "${side.lan}"` });
      const v4 = parseCidr(side.address, 4, `${sp}.address`, errors);
      const v6 = side.address6 === undefined ? undefined : parseCidr(side.address6, 6, `${sp}.address6`, errors);
      if (!v4) return;
      const ifname = `lan${s}`;
      plugIntoLan(lan, netns, ifname);
      const boxLan: BoxLan = {
        lan: side.lan,
        interface: ifname,
        address: v4.address,
        prefixLength: v4.prefixLength,
        subnet: v4.subnet,
      };
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
      kind: 'box',
      name: b.name,
      netns,
      index,
      wanInterface: 'wan',
      wanAddress: link.address,
      wanAddress6: link.address6,
      wanGateway: link.gateway,
      wanGateway6: link.gateway6,
      wgInterface: `${prefix}w${index}`,
      lans: boxLans,
      underlays: links,
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
      kind: 'host',
      name: h.name,
      netns,
      lan: h.lan,
      interface: 'eth0',
      address: v4.address,
      prefixLength: v4.prefixLength,
      subnet: v4.subnet,
      ...(v6 ? { address6: v6.address, subnet6: v6.subnet } : {}),
      ...(gateway ? { gateway } : {}),
      ...(gateway6 ? { gateway6 } : {}),
    });
  });

  if (errors.length > 0) {
    throw new CrosslinkError(
      'config_invalid',
      `testbed description is invalid: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
      errors,
    );
  }

  for (const lan of lans.values()) {
    const lines = ['link set lo up', 'link add br0 type bridge mcast_snooping 0', 'link set br0 up'];
    for (let j = 0; j < (lanPorts.get(lan.name) ?? 0); j++)
      lines.push(`link set p${j} master br0`, `link set p${j} up`);
    batches.push({ netns: lan.netns, phase: 1, lines });
  }
  batches.unshift(
    ...underlays.map((u) => ({ netns: u.netns, phase: 1 as const, lines: underlayLines.get(u.network)! })),
  );

  const namespaces = [
    ...underlays.map((u) => u.netns),
    ...(controller ? [controller.netns] : []),
    ...[...lans.values()].map((l) => l.netns),
    ...boxes.map((b) => b.netns),
    ...hosts.map((h) => h.netns),
  ];
  // No DAD: addresses are usable at once instead of after a second or two of "tentative".
  const noDad = ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'];
  const forwarding = ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.default.forwarding=1'];
  const routers = new Set([...underlays.map((u) => u.netns), ...boxes.map((b) => b.netns)]);
  const sysctls = namespaces.map((n) => ({ netns: n, settings: routers.has(n) ? [...noDad, ...forwarding] : noDad }));

  return {
    prefix,
    underlay,
    underlays,
    ...(controller ? { controller } : {}),
    lans: [...lans.values()],
    boxes,
    hosts,
    namespaces,
    sysctls,
    veths,
    batches,
    underlayPorts,
  };
}
