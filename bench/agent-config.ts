// The benchmark's agent config, shared by bench:agent and bench:desired: box A with `peers` peers
// (peer 0 is box B, a real box in bench:agent) carrying `routes` LAN prefixes between them, and
// firewalls of n tuples. Keys are the caller's: real ones where WireGuard gets them, stand-ins
// where only their form is checked.
import { create } from '@bufbuild/protobuf';
import {
  AgentConfigSchema,
  PeerSchema,
  type AgentConfig,
  type Firewall,
  type FlowRule,
  type Peer,
} from '../proto/gen/crosslink/v1/agent_pb.js';
import { firewall, flow } from '../agent/host/firewall.fixture.js';

export const UNDERLAY_A = '192.168.77.1';
export const UNDERLAY_B = '192.168.77.2';
export const LAN_A = '10.10.0.0/24';
export const LAN_B = '10.20.0.0/24';
export const CONN_PORT = 443;
export const IPERF_PORT = 5201;

const lanPrefix = (k: number) => `10.${128 + (k >> 8)}.${k & 255}.0/24`;
const overlayOf = (i: number) => `100.64.${(i + 2) >> 8}.${(i + 2) & 255}/32`;

export interface BenchConfigOptions {
  peers: number;
  routes: number;
  /** Box B's public key. */
  peerBKey: string;
  /** Public key of fake peer i (1 <= i <= peers). */
  peerKey: (i: number) => string;
}

export function benchConfig(o: BenchConfigOptions) {
  const routesPerPeer = Math.max(1, Math.round(o.routes / o.peers));
  let generation = 0;

  const peerB = (): Peer => {
    const lans = Array.from({ length: routesPerPeer }, (_, m) => `10.20.${m}.0/24`);
    return create(PeerSchema, {
      name: 'box-b',
      publicKey: o.peerBKey,
      endpoint: `${UNDERLAY_B}:51820`,
      persistentKeepaliveSeconds: 25,
      allowedIps: ['100.64.0.2/32', ...lans],
      overlayIp: '100.64.0.2',
    });
  };
  const fakePeer = (i: number, endpointPort = 51820): Peer => {
    const lans = Array.from({ length: routesPerPeer }, (_, m) => lanPrefix(i * routesPerPeer + m));
    // Keepalive off: 999 unreachable peers would otherwise start handshaking at once.
    return create(PeerSchema, {
      name: `peer-${i}`,
      publicKey: o.peerKey(i),
      endpoint: `198.18.${i >> 8}.${i & 255}:${endpointPort}`,
      persistentKeepaliveSeconds: 0,
      allowedIps: [overlayOf(i), ...lans],
      overlayIp: overlayOf(i).split('/')[0],
    });
  };
  /** `n` tuples: the three flows the bench sends (LAN A -> LAN B icmp, tcp/`connPort`, tcp/5201)
   *  and n-3 others (distinct /32 sources over 100 destination /24s, as in GUIDE §6), split over
   *  the directions. */
  const firewallWith = (n: number, connPort = CONN_PORT): Firewall => {
    const outbound: FlowRule[] = [
      flow('bench-ping', [LAN_A], [LAN_B], 'icmp'),
      flow('bench-conn', [LAN_A], [LAN_B], 'tcp', [connPort]),
      flow('bench-iperf', [LAN_A], [LAN_B], 'tcp', [IPERF_PORT]),
    ];
    const inbound: FlowRule[] = [];
    for (let i = 0; i < n - 3; i++) {
      const src = `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;
      const dst = `10.${50 + ((i % 100) >> 8)}.${i % 100}.0/24`;
      (i % 2 === 0 ? outbound : inbound).push(flow(`r${i}`, [src], [dst], 'tcp', [443]));
    }
    return firewall({ outbound, inbound, localPrefixes: [LAN_A] });
  };
  const makeConfig = (peers: Peer[], fw: Firewall): AgentConfig => {
    generation++;
    const routes = peers.flatMap((p) => p.allowedIps.filter((a) => !a.startsWith('100.64.')));
    return create(AgentConfigSchema, {
      generation: BigInt(generation),
      contentHash: `bench-${generation}`,
      agentName: 'box-a',
      overlayAddress: '100.64.0.1/16',
      peers,
      routes,
      firewall: fw,
    });
  };
  const basePeers = (): Peer[] => [peerB(), ...Array.from({ length: o.peers - 1 }, (_, i) => fakePeer(i + 1))];
  return { peerB, fakePeer, firewallWith, makeConfig, basePeers };
}
