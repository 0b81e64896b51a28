// Named configs and helpers shared by the agent's tests (not loaded by the agent itself).
import { create, toJsonString } from '@bufbuild/protobuf';
import {
  AgentConfigSchema,
  FirewallSchema,
  FlowRuleSchema,
  PeerSchema,
  PortRangeSchema,
  type AgentConfig,
  type Firewall,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import { FakeHost } from '../host/fake-host.js';
import { wgPublicKey } from '../host/wg-key.js';
import type { AgentSettings, FirewallRenderer } from './desired.js';

/** A valid-looking WireGuard key whose 32 bytes are all `n`. */
export const keyOf = (n: number) => Buffer.alloc(32, n).toString('base64');

/** The private key SETTINGS.publicKey belongs to (what fakeHost() reads from SETTINGS.privateKeyFile). */
export const PRIVATE_KEY = Buffer.alloc(32, 0x41).toString('base64');

export const SETTINGS: AgentSettings = {
  interfaceName: 'xl-test0',
  listenPort: 51820,
  privateKeyFile: '/var/lib/crosslink/private.key',
  publicKey: wgPublicKey(PRIVATE_KEY),
  mtu: 1420,
  wireguardMode: 'userspace',
};

/** Stand-in for the nft renderer: deterministic text that changes whenever the firewall does (a
 *  table nft would load: the firewall is a comment in it). */
export const stubRenderFirewall: FirewallRenderer = (fw: Firewall, { wgInterface }) =>
  `table inet crosslink {\n\t# ${wgInterface} ${toJsonString(FirewallSchema, fw)}\n}\n`;

/** The fake host the reconciler's tests run against, holding SETTINGS' private key. */
export const fakeHost = (): FakeHost => new FakeHost({ readPrivateKey: () => Promise.resolve(`${PRIVATE_KEY}\n`) });

const peer = (n: number, allowed: string[], endpoint = `192.0.2.${n}:51820`) =>
  create(PeerSchema, {
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

const firewall = (masquerade: string[] = []) =>
  create(FirewallSchema, {
    outbound: [
      create(FlowRuleSchema, {
        rule: 'gp-to-council',
        sources: ['10.20.1.0/24'],
        destinations: ['172.16.5.0/24'],
        protocol: 'tcp',
        ports: [create(PortRangeSchema, { first: 443, last: 443 })],
      }),
    ],
    inbound: [
      create(FlowRuleSchema, {
        rule: 'council-ping',
        sources: ['172.16.5.0/24'],
        destinations: ['10.20.1.0/24'],
        protocol: 'icmp',
      }),
    ],
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
