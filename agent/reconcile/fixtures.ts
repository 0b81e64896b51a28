// Named configs and helpers shared by the agent's tests (not loaded by the agent itself).
import { create, toJsonString } from '@bufbuild/protobuf';
import {
  AgentConfigSchema, FirewallSchema, FlowRuleSchema, PeerSchema, PortRangeSchema, type AgentConfig, type Firewall,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import { HostCommandError } from '../../lib/errors.js';
import type { FirewallObserved, Host, LinkObserved, RouteObserved, WgDeviceDesired, WgDeviceObserved, WgPeerObserved, WireGuardMode } from '../host/ports.js';
import { compareText, isLiteralEndpoint } from '../host/canonical.js';
import type { AgentSettings, FirewallRenderer } from './desired.js';

/** A valid-looking WireGuard key whose 32 bytes are all `n`. */
export const keyOf = (n: number) => Buffer.alloc(32, n).toString('base64');

export const SETTINGS: AgentSettings = {
  interfaceName: 'xl-test0',
  listenPort: 51820,
  privateKeyFile: '/var/lib/crosslink/private.key',
  publicKey: keyOf(1),
  mtu: 1420,
  wireguardMode: 'userspace',
};

/** Stand-in for the nft renderer: deterministic text that changes whenever the firewall does. */
export const stubRenderFirewall: FirewallRenderer = (fw: Firewall, { wgInterface }) =>
  `table inet crosslink # ${wgInterface} ${toJsonString(FirewallSchema, fw)}\n`;

const peer = (n: number, allowed: string[], endpoint = `192.0.2.${n}:51820`) => create(PeerSchema, {
  name: `peer-${n}`,
  publicKey: keyOf(n + 10),
  endpoint,
  persistentKeepaliveSeconds: 25,
  allowedIps: allowed,
  overlayIp: allowed[0]!.split('/')[0]!,
});

export function config(gen: number, partial: Partial<Omit<AgentConfig, '$typeName'>> = {}): AgentConfig {
  return create(AgentConfigSchema, {
    generation: BigInt(gen),
    contentHash: `hash-${gen}`,
    agentName: 'leeds-gw',
    overlayAddress: '100.64.0.7/10',
    ...partial,
  });
}

const firewall = (masquerade: string[] = []) => create(FirewallSchema, {
  outbound: [create(FlowRuleSchema, {
    rule: 'gp-to-council', sources: ['10.20.1.0/24'], destinations: ['172.16.5.0/24'], protocol: 'tcp',
    ports: [create(PortRangeSchema, { first: 443, last: 443 })],
  })],
  inbound: [create(FlowRuleSchema, { rule: 'council-ping', sources: ['172.16.5.0/24'], destinations: ['10.20.1.0/24'], protocol: 'icmp' })],
  localPrefixes: ['10.20.1.0/24'],
  masquerade,
});

/** The named states the transition tests walk between ("torn down" is reached with teardown()). */
export const NAMED: Record<string, AgentConfig> = {
  empty: config(1),
  onePeer: config(2, { peers: [peer(1, ['100.64.0.8/32'])] }),
  threePeers: config(3, {
    peers: [peer(1, ['100.64.0.8/32']), peer(2, ['100.64.0.9/32'], ''), peer(3, ['100.64.0.10/32', 'fd00:3::/48'])],
  }),
  peersRoutesFirewall: config(4, {
    peers: [peer(1, ['100.64.0.8/32', '172.16.5.0/24']), peer(2, ['100.64.0.9/32', '172.16.9.0/24'])],
    routes: ['172.16.5.0/24', '172.16.9.0/24'],
    firewall: firewall(),
  }),
  masquerade: config(5, {
    peers: [peer(1, ['100.64.0.8/32', '172.16.5.0/24'])],
    routes: ['172.16.5.0/24'],
    firewall: firewall(['10.20.1.0/24']),
  }),
};

/**
 * A small in-memory host for the reconciler's tests, until (and besides) agent/host/fake: records
 * every write, and can be told to fail a method with a HostCommandError.
 */
export class MiniFakeHost implements Host {
  devices = new Map<string, { publicKey: string; listenPort: number; peers: WgPeerObserved[] }>();
  linkState = new Map<string, { isUp: boolean; mtu: number; addresses: string[] }>();
  routeTable: RouteObserved[] = [];
  table: string | null = null;
  sysctls: Record<string, string> = { 'net.ipv4.ip_forward': '0', 'net.ipv6.conf.all.forwarding': '0' };
  writes: string[] = [];
  /** method name ("wireguard.sync", "routes.apply", ...) -> error thrown while set. */
  failing = new Map<string, HostCommandError>();

  constructor(private readonly publicKeyOf: (privateKeyFile: string) => string = () => SETTINGS.publicKey) {}

  private write(method: string, text: string): void {
    const err = this.failing.get(method);
    if (err) throw err;
    this.writes.push(text);
  }

  private needLink(ifname: string, argv: string[]) {
    const l = this.linkState.get(ifname);
    if (!l) throw new HostCommandError(argv, 1, `Cannot find device "${ifname}"\n`);
    return l;
  }

  wireguard = {
    observe: async (ifname: string): Promise<WgDeviceObserved | null> => {
      const d = this.devices.get(ifname);
      return d ? structuredClone({ ...d, peers: [...d.peers].sort((a, b) => compareText(a.publicKey, b.publicKey)) }) : null;
    },
    create: async (ifname: string, mode: WireGuardMode) => {
      this.write('wireguard.create', `create ${ifname} ${mode}`);
      if (this.devices.has(ifname)) return;
      this.devices.set(ifname, { publicKey: '', listenPort: 0, peers: [] });
      this.linkState.set(ifname, { isUp: false, mtu: 1420, addresses: [] });
    },
    sync: async (ifname: string, desired: WgDeviceDesired) => {
      this.write('wireguard.sync', `wg syncconf ${ifname} peers=${desired.peers.length}`);
      const d = this.devices.get(ifname);
      if (!d) throw new HostCommandError(['wg', 'syncconf', ifname, '/tmp/x.conf'], 1, 'Unable to modify interface: No such device\n');
      const old = new Map(d.peers.map((p) => [p.publicKey, p]));
      d.publicKey = this.publicKeyOf(desired.privateKeyFile);
      d.listenPort = desired.listenPort;
      d.peers = desired.peers.map((p) => ({
        publicKey: p.publicKey,
        // A host name is resolved by wg; the fake "resolves" every name to one documentation address.
        endpoint: p.endpoint === '' ? (old.get(p.publicKey)?.endpoint ?? '') : isLiteralEndpoint(p.endpoint) ? p.endpoint : `198.51.100.1:${p.endpoint.split(':').pop()}`,
        allowedIps: [...p.allowedIps],
        persistentKeepaliveSeconds: p.persistentKeepaliveSeconds,
        latestHandshakeUnix: old.get(p.publicKey)?.latestHandshakeUnix ?? 0,
        rxBytes: old.get(p.publicKey)?.rxBytes ?? 0n,
        txBytes: old.get(p.publicKey)?.txBytes ?? 0n,
      }));
    },
    remove: async (ifname: string) => {
      this.write('wireguard.remove', `remove ${ifname}`);
      this.devices.delete(ifname);
      this.linkState.delete(ifname);
      this.routeTable = this.routeTable.filter((r) => r.dev !== ifname);
    },
  };

  links = {
    observe: async (ifname: string): Promise<LinkObserved> => {
      const l = this.linkState.get(ifname);
      return l ? { exists: true, isUp: l.isUp, mtu: l.mtu, addresses: [...l.addresses].sort(compareText) } : { exists: false, isUp: false, mtu: 0, addresses: [] };
    },
    setUp: async (ifname: string, mtu: number) => {
      this.write('links.setUp', `ip link set ${ifname} up mtu ${mtu}`);
      const l = this.needLink(ifname, ['ip', 'link', 'set', ifname, 'up']);
      l.isUp = true;
      l.mtu = mtu;
    },
    addAddress: async (ifname: string, cidr: string) => {
      this.write('links.addAddress', `ip address add ${cidr} dev ${ifname}`);
      const l = this.needLink(ifname, ['ip', 'address', 'add', cidr, 'dev', ifname]);
      if (l.addresses.includes(cidr)) throw new HostCommandError(['ip', 'address', 'add', cidr, 'dev', ifname], 2, 'RTNETLINK answers: File exists\n');
      l.addresses.push(cidr);
    },
    delAddress: async (ifname: string, cidr: string) => {
      this.write('links.delAddress', `ip address del ${cidr} dev ${ifname}`);
      const l = this.needLink(ifname, ['ip', 'address', 'del', cidr, 'dev', ifname]);
      l.addresses = l.addresses.filter((a) => a !== cidr);
    },
  };

  routes = {
    observe: async (): Promise<RouteObserved[]> => this.routeTable.map((r) => ({ ...r })).sort((a, b) => compareText(a.prefix, b.prefix)),
    apply: async (changes: { add: RouteObserved[]; del: RouteObserved[] }) => {
      this.write('routes.apply', `ip -batch: +${changes.add.length} -${changes.del.length}`);
      for (const r of changes.add) {
        if (!this.linkState.has(r.dev)) throw new HostCommandError(['ip', '-batch', '-'], 1, `Command failed -:1\nCannot find device "${r.dev}"\n`);
      }
      const gone = new Set(changes.del.map((r) => `${r.prefix} ${r.dev}`));
      this.routeTable = [...this.routeTable.filter((r) => !gone.has(`${r.prefix} ${r.dev}`)), ...changes.add.map((r) => ({ ...r }))];
    },
  };

  firewall = {
    observe: async (): Promise<FirewallObserved> => ({ exists: this.table !== null, fingerprint: this.table === null ? '' : fingerprintOf(this.table) }),
    replace: async (ruleset: string) => {
      this.write('firewall.replace', 'nft -f ruleset');
      this.table = ruleset;
      return fingerprintOf(ruleset);
    },
    remove: async () => {
      this.write('firewall.remove', 'nft delete table inet crosslink');
      this.table = null;
    },
  };

  sysctl = {
    get: async (key: string) => {
      if (!(key in this.sysctls)) throw new HostCommandError(['sysctl', '-n', key], 255, `sysctl: cannot stat /proc/sys/${key}\n`);
      return `${this.sysctls[key]}\n`;
    },
    set: async (key: string, value: string) => {
      this.write('sysctl.set', `sysctl -w ${key}=${value}`);
      this.sysctls[key] = value;
    },
  };
}

const fingerprintOf = (text: string) => `fp:${text.length}:${[...text].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7)}`;
