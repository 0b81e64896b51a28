// The Leeds example as a testbed: one box per agent of examples/leeds.yaml and the hosts its header
// comment lists, at those addresses. Shared by the demo, the end-to-end scenarios and the benchmark.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestbedDescription } from '../testbed/topology.js';
import { repoRoot, type FleetAgentSpec } from './fleet.js';

/** examples/leeds.yaml in this checkout. */
export function leedsPolicyFile(): string {
  return join(repoRoot(), 'examples', 'leeds.yaml');
}

/**
 * Boxes are named after the agents. The hospital's two boxes share the care-records LAN and the
 * DNS LAN (a primary and a standby, at .2 and .3); hosts there route via the subnets' virtual
 * gateway (.1, `gateway` in the policy), which the serving box holds, so replies follow a failover.
 * The shared hub has one LAN per network. Other LAN hosts route via their box.
 */
export function leedsTopology(prefix?: string, opts: { isOneUnderlay?: boolean } = {}): TestbedDescription {
  const desc = twoNetworks(prefix);
  if (!opts.isOneUnderlay) return desc;
  // One shared underlay, as every deployment before named underlays: no relay needed.
  const { underlays: _u, ...rest } = desc;
  return { ...rest, boxes: desc.boxes.map(({ underlays: _b, ...b }) => b) };
}

/**
 * examples/leeds.yaml as a policy for one shared underlay (`leedsTopology(p, { isOneUnderlay: true })`):
 * the `underlays:` section and the agents' underlays and relay keys left out. The failover and
 * health scenarios use it: they test failover and health, and keep the single-underlay shape of
 * every existing deployment covered; relays have their own scenario (relay.test.ts).
 */
export function leedsOneUnderlayPolicy(): string {
  const text = readFileSync(leedsPolicyFile(), 'utf8');
  return text
    .replace(/^underlays:\n(?:[ #].*\n|\n)*?(?=^\S)/m, '')
    .split('\n')
    .filter((l) => !/^\s+(underlays|relay):/.test(l))
    .join('\n');
}

function twoNetworks(prefix?: string): TestbedDescription {
  return {
    ...(prefix ? { prefix } : {}),
    controller: true,
    // N3/HSCN and the PSN: two underlay networks with no route between them. The controller host
    // and the shared building's box are cabled to both; every other box to one.
    underlays: ['n3-wan', 'psn-wan'],
    lans: [
      { name: 'care-records', gateway: '10.20.1.1', gateway6: 'fd00:20:1::1' },
      { name: 'lth-dns', gateway: '10.20.2.1' },
    ],
    boxes: [
      {
        name: 'lth-sjuh',
        underlays: ['n3-wan'],
        lans: [
          { lan: 'care-records', address: '10.20.1.2/24', address6: 'fd00:20:1::2/64' },
          { lan: 'lth-dns', address: '10.20.2.2/28' },
        ],
      },
      {
        name: 'lth-sjuh-standby',
        underlays: ['n3-wan'],
        lans: [
          { lan: 'care-records', address: '10.20.1.3/24', address6: 'fd00:20:1::3/64' },
          { lan: 'lth-dns', address: '10.20.2.3/28' },
        ],
      },
      { name: 'gp-chapeltown', underlays: ['n3-wan'], lans: [{ lan: 'gp-chapeltown-lan', address: '10.30.1.1/24' }] },
      { name: 'gp-armley', underlays: ['n3-wan'], lans: [{ lan: 'gp-armley-lan', address: '10.31.1.1/24' }] },
      { name: 'lcc-civic-hall', underlays: ['psn-wan'], lans: [{ lan: 'civic-hall-lan', address: '10.50.1.1/24' }] },
      {
        name: 'lcc-adult-social-care',
        underlays: ['psn-wan'],
        lans: [{ lan: 'adult-social-care', address: '10.60.1.1/24', address6: 'fd00:60:1::1/64' }],
      },
      {
        name: 'nhs-shared-hub',
        underlays: ['n3-wan', 'psn-wan'],
        lans: [
          { lan: 'hub-n3', address: '10.40.1.1/24' },
          { lan: 'hub-psn', address: '10.41.1.1/24' },
        ],
      },
    ],
    hosts: [
      { name: 'care-record', lan: 'care-records', address: '10.20.1.10/24', address6: 'fd00:20:1::10/64' },
      { name: 'hl7-engine', lan: 'care-records', address: '10.20.1.20/24' },
      { name: 'dns-resolver', lan: 'lth-dns', address: '10.20.2.5/28' },
      { name: 'gp-chapeltown-ws', lan: 'gp-chapeltown-lan', address: '10.30.1.10/24' },
      { name: 'gp-armley-system', lan: 'gp-armley-lan', address: '10.31.1.10/24' },
      { name: 'hub-nhs-ws', lan: 'hub-n3', address: '10.40.1.10/24' },
      { name: 'hub-printer', lan: 'hub-n3', address: '10.40.1.50/24' },
      { name: 'hub-council-ws', lan: 'hub-psn', address: '10.41.1.10/24' },
      { name: 'civic-hall-server', lan: 'civic-hall-lan', address: '10.50.1.20/24' },
      { name: 'social-care-ws', lan: 'adult-social-care', address: '10.60.1.10/24', address6: 'fd00:60:1::10/64' },
    ],
  };
}

/** One agent per box, named like the box, advertising the box's LAN subnets; the shared hub relays. */
export const LEEDS_AGENTS: FleetAgentSpec[] = [
  'lth-sjuh',
  'lth-sjuh-standby',
  'gp-chapeltown',
  'gp-armley',
  'lcc-civic-hall',
  'lcc-adult-social-care',
  'nhs-shared-hub',
].map((box) => (box === 'nhs-shared-hub' ? { box, relay: true } : { box }));
