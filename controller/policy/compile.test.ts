// Compiler: golden files for the Leeds example (UPDATE_GOLDEN=1 rewrites them), and table-driven
// cases for serving, failover, masquerade, local rules, probes and incremental recompiles.
import { existsSync, mkdirSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toJson } from '@bufbuild/protobuf';
import t from 'tap';
import { AgentConfigSchema, type AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { syntheticInventory } from './check.js';
import { compilePolicy, PolicyCompiler } from './compile.js';
import { isAwaitingEnrolment, isUnservedBecauseOf } from './unserved.js';
import type { Inventory, InventoryAgent, Policy } from './types.js';
import { parsePolicy } from './validate.js';
import { contains, parsePrefix } from '../../lib/prefix.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const goldenDir = join(root, 'test', 'golden', 'policy', 'leeds');

function leeds(): Policy {
  const r = parsePolicy(readFileSync(join(root, 'examples', 'leeds.yaml'), 'utf8'));
  if (!r.policy) throw new Error(JSON.stringify(r.errors));
  return r.policy;
}

function render(cfg: AgentConfig): string {
  return `${JSON.stringify(toJson(AgentConfigSchema, cfg, { alwaysEmitImplicit: true }), null, 2)}\n`;
}

t.test('golden: every agent of examples/leeds.yaml', async (t) => {
  const result = compilePolicy(leeds(), syntheticInventory(leeds()));
  const isUpdate = process.env.UPDATE_GOLDEN === '1';
  if (isUpdate) {
    mkdirSync(goldenDir, { recursive: true });
    for (const f of readdirSync(goldenDir)) unlinkSync(join(goldenDir, f));
  }
  for (const [name, cfg] of result.configs) {
    const file = join(goldenDir, `${name}.json`);
    if (isUpdate) writeFileSync(file, render(cfg));
    t.ok(existsSync(file), `${name}.json exists (run with UPDATE_GOLDEN=1 to create)`);
    if (existsSync(file)) t.equal(render(cfg), readFileSync(file, 'utf8'), `${name} matches its golden file`);
  }
  t.same(
    readdirSync(goldenDir).sort(),
    [...result.configs.keys()].map((n) => `${n}.json`).sort(),
    'no stale golden files',
  );
  t.same(result.unserved, [], 'everything served');
});

// The zones a box is told cover both ends of every rule it enforces, and name each prefix's own
// subnet's zone (the flow records and drop counters rely on it).
t.test('zones: every rule prefix of a box lies in the zone of its subnet', async (t) => {
  const policy = leeds();
  const result = compilePolicy(policy, syntheticInventory(policy));
  for (const [name, cfg] of result.configs) {
    const zoneOf = (prefix: string): string | undefined => {
      const p = parsePrefix(prefix);
      if (!p.ok) return undefined;
      for (const z of cfg.zones)
        for (const zp of z.prefixes) {
          const q = parsePrefix(zp);
          if (q.ok && contains(q.prefix, p.prefix)) return z.zone;
        }
      return undefined;
    };
    const fw = cfg.firewall!;
    for (const r of [...fw.outbound, ...fw.inbound, ...fw.local])
      for (const p of [...r.sources, ...r.destinations])
        t.ok(zoneOf(p) !== undefined, `${name}: ${r.rule}: ${p} is in a zone`);
    for (const l of cfg.localSubnets)
      for (const p of l.prefixes) t.equal(zoneOf(p), l.zone, `${name}: ${l.name} (${p}) in zone ${l.zone}`);
    t.same(
      cfg.zones.map((z) => z.zone),
      [...new Set(cfg.zones.map((z) => z.zone))].sort(),
      `${name}: zones sorted, each once`,
    );
  }
});

function inv(policy: Policy, patch: (a: InventoryAgent) => InventoryAgent | undefined = (a) => a): Inventory {
  return {
    agents: syntheticInventory(policy)
      .agents.map(patch)
      .filter((a): a is InventoryAgent => a !== undefined),
  };
}

/** The box's endpoint moves: its bare endpoint and, with named underlays, its first one. */
function moveEndpoint(a: InventoryAgent, endpoint: string): InventoryAgent {
  const endpoints = a.endpoints?.map((e, i) => (i === 0 ? { ...e, endpoint } : e));
  return { ...a, endpoint, ...(endpoints ? { endpoints } : {}) };
}

const peerNames = (c: AgentConfig | undefined): string[] => (c?.peers ?? []).map((p) => p.name);

interface ServingCase {
  name: string;
  patch: (a: InventoryAgent) => InventoryAgent | undefined;
  servedBy: string | undefined;
  unservedReason?: RegExp;
  /** Why no candidate of its serving group is healthy; undefined: one is (or no group). */
  unconfirmedReason?: RegExp;
  gpPeers: string[];
  /** The care records' serving group as gp-armley gets it (candidates in order); null: none. */
  gpGroup: string[] | null;
  /** The peer whose allowed IPs carry 10.20.1.0/24 on gp-armley (no group); undefined: none. */
  gpCarrier?: string;
}

const servingCases: ServingCase[] = [
  {
    name: 'primary healthy: lth-sjuh serves the care records; both are candidates, primary first',
    patch: (a) => a,
    servedBy: 'lth-sjuh',
    gpPeers: ['lth-sjuh', 'lth-sjuh-standby'],
    gpGroup: ['lth-sjuh', 'lth-sjuh-standby'],
  },
  {
    name: 'primary unhealthy: the standby serves, and goes first in the group',
    patch: (a) => (a.name === 'lth-sjuh' ? { ...a, isHealthy: false } : a),
    servedBy: 'lth-sjuh-standby',
    gpPeers: ['lth-sjuh', 'lth-sjuh-standby'],
    gpGroup: ['lth-sjuh-standby', 'lth-sjuh'],
  },
  {
    name: 'primary not advertising the subnet: the standby serves it alone',
    patch: (a) => (a.name === 'lth-sjuh' ? { ...a, advertised: ['10.20.2.0/28'] } : a),
    servedBy: 'lth-sjuh-standby',
    gpPeers: ['lth-sjuh', 'lth-sjuh-standby'],
    gpGroup: null,
    gpCarrier: 'lth-sjuh-standby',
  },
  {
    // The controller cut off from both (or lost their streams): the edges still decide.
    name: 'both down to the controller: the group stays in via order, unconfirmed, not unserved',
    patch: (a) => (a.name.startsWith('lth-sjuh') ? { ...a, isHealthy: false } : a),
    servedBy: 'lth-sjuh',
    unconfirmedReason: /^lth-sjuh is unhealthy; lth-sjuh-standby is unhealthy$/,
    gpPeers: ['lth-sjuh', 'lth-sjuh-standby'],
    gpGroup: ['lth-sjuh', 'lth-sjuh-standby'],
  },
  {
    name: 'primary down, standby not enrolled: unserved, with the reason, and not routed',
    patch: (a) => (a.name === 'lth-sjuh-standby' ? undefined : a.name === 'lth-sjuh' ? { ...a, isHealthy: false } : a),
    servedBy: undefined,
    unservedReason: /^lth-sjuh is unhealthy; lth-sjuh-standby is not enrolled$/,
    gpPeers: [],
    gpGroup: null,
  },
  {
    name: 'primary not enrolled: the standby serves it alone',
    patch: (a) => (a.name === 'lth-sjuh' ? undefined : a),
    servedBy: 'lth-sjuh-standby',
    gpPeers: ['lth-sjuh-standby'],
    gpGroup: null,
    gpCarrier: 'lth-sjuh-standby',
  },
];

for (const c of servingCases) {
  t.test(`serving: ${c.name}`, async (t) => {
    const policy = leeds();
    const r = compilePolicy(policy, inv(policy, c.patch));
    t.equal(r.servedBy.get('care-records' as never), c.servedBy);
    const u = r.unserved.find((x) => x.subnet === 'care-records');
    if (c.unservedReason) t.match(u?.reason, c.unservedReason);
    else t.notOk(u, 'served');
    const unconfirmed = r.unconfirmed.find((x) => x.subnet === 'care-records');
    if (c.unconfirmedReason) t.match(unconfirmed?.reason, c.unconfirmedReason);
    else t.notOk(unconfirmed, 'confirmed, or no group');
    const gp = r.configs.get('gp-armley' as never);
    t.same(peerNames(gp), c.gpPeers, 'gp-armley peers');
    const group = gp?.servingGroups.find((g) => g.name === 'care-records');
    t.same(group?.candidates ?? null, c.gpGroup, 'the serving group gp-armley gets');
    if (group) t.same(group.prefixes, ['10.20.1.0/24', 'fd00:20:1::/64']);
    const carriers = (gp?.peers ?? []).filter((p) => p.allowedIps.includes('10.20.1.0/24')).map((p) => p.name);
    t.same(carriers, c.gpCarrier ? [c.gpCarrier] : [], 'a group is in no allowed IPs; a lone server carries it');
    if (!c.servedBy) t.notOk(gp?.routes.includes('10.20.1.0/24'), 'no route to an unserved subnet');
    else t.ok(gp?.routes.includes('10.20.1.0/24'), 'routed into the overlay whoever serves');
  });
}

t.test('least privilege: a standby learns what it may serve; GPs never learn the council', async (t) => {
  const policy = leeds();
  const r = compilePolicy(policy, inv(policy));
  const senders = ['gp-armley', 'gp-chapeltown', 'lcc-adult-social-care', 'nhs-shared-hub'];
  t.same(peerNames(r.configs.get('lth-sjuh' as never)), [...senders.slice(0, 3), 'lth-sjuh-standby', 'nhs-shared-hub']);
  t.same(
    peerNames(r.configs.get('lth-sjuh-standby' as never)),
    [...senders.slice(0, 3), 'lth-sjuh', 'nhs-shared-hub'],
    'the standby: the same senders as the primary, and the primary (to echo with)',
  );
  t.same(peerNames(r.configs.get('gp-chapeltown' as never)), ['lth-sjuh', 'lth-sjuh-standby']);
  const standby = r.configs.get('lth-sjuh-standby' as never) as AgentConfig;
  t.same(
    standby.peers.find((p) => p.name === 'lth-sjuh')?.allowedIps,
    ['100.64.0.5/32'],
    'a sibling candidate: its overlay address only',
  );
  t.same(standby.probes, [], 'path probes run on the serving box only');
  t.ok(standby.firewall!.inbound.length > 0, 'the standby has the inbound rules before traffic comes');
  t.same(
    standby.firewall?.inbound,
    r.configs.get('lth-sjuh' as never)?.firewall?.inbound,
    'the same inbound rules as the primary',
  );
  const hub = r.configs.get('nhs-shared-hub' as never) as AgentConfig;
  t.same(peerNames(hub), ['lcc-civic-hall', 'lth-sjuh', 'lth-sjuh-standby']);
  t.same(
    hub.peers.find((p) => p.name === 'lth-sjuh')?.allowedIps,
    ['100.64.0.5/32'],
    'AllowedIPs: the overlay /32; the grouped subnets move with the serving groups',
  );
  t.same(
    hub.servingGroups.map((g) => [g.name, g.prefixes]),
    [
      ['care-records', ['10.20.1.0/24', 'fd00:20:1::/64']],
      ['lth-dns', ['10.20.2.0/28']],
    ],
    'the flows only',
  );
  t.equal(hub.liveness?.port, 0, 'liveness: the agent defaults unless the controller sets them');
  t.same(r.configs.get('lcc-civic-hall' as never)?.servingGroups, [], 'no groups: no liveness');
  t.notOk(r.configs.get('lcc-civic-hall' as never)?.liveness);
});

t.test('shared hub: local rule between its two LANs, masquerade on the PSN LAN', async (t) => {
  const policy = leeds();
  const hub = compilePolicy(policy, inv(policy)).configs.get('nhs-shared-hub' as never) as AgentConfig;
  t.same(
    hub.firewall?.local.map((r) => [r.rule, r.protocol, r.sources, r.destinations]),
    [
      ['hub-council-to-nhs-printers', 'icmp', ['10.41.1.0/24'], ['10.40.1.0/24']],
      ['hub-council-to-nhs-printers', 'tcp', ['10.41.1.0/24'], ['10.40.1.0/24']],
    ],
  );
  t.same(hub.firewall?.masquerade, ['10.41.1.0/24']);
  t.same(hub.firewall?.localPrefixes, ['10.40.1.0/24', '10.41.1.0/24']);
  t.same(
    hub.localSubnets.map((s) => [s.name, s.zone, s.masquerade]),
    [
      ['hub-n3-lan', 'n3', false],
      ['hub-psn-lan', 'psn', true],
    ],
  );
});

t.test('probes go to the agent serving the source subnet', async (t) => {
  const policy = leeds();
  const r = compilePolicy(policy, inv(policy));
  const asc = r.configs.get('lcc-adult-social-care' as never) as AgentConfig;
  t.same(
    asc.probes.map((p) => [p.name, p.target, p.protocol, p.port, p.expectDeny, p.sourcePrefix]),
    [
      ['social-care-to-care-records/0', '10.20.1.10', 'tcp', 443, false, '10.60.1.0/24'],
      ['social-care-to-care-records/1', '10.20.1.10', 'tcp', 22, true, '10.60.1.0/24'],
    ],
  );
  const sjuh = r.configs.get('lth-sjuh' as never) as AgentConfig;
  t.same(
    sjuh.probes.map((p) => p.name),
    ['hl7-results-to-gps/0'],
  );
  t.same(r.configs.get('lth-sjuh-standby' as never)?.probes, [], 'the idle standby runs none');
});

t.test('content hash: stable, sensitive, generation left at 0', async (t) => {
  const policy = leeds();
  const a = compilePolicy(policy, inv(policy));
  const b = compilePolicy(leeds(), inv(leeds()));
  for (const [name, cfg] of a.configs) {
    t.match(cfg.contentHash, /^[0-9a-f]{64}$/);
    t.equal(cfg.contentHash, b.configs.get(name)?.contentHash, `${name} same hash on recompile`);
    t.equal(cfg.generation, 0n);
  }
  const c = compilePolicy(
    policy,
    inv(policy, (x) => (x.name === 'gp-armley' ? moveEndpoint(x, '192.0.2.9:51820') : x)),
  );
  t.not(
    c.configs.get('lth-sjuh' as never)?.contentHash,
    a.configs.get('lth-sjuh' as never)?.contentHash,
    'peer endpoint change changes the hash',
  );
  t.equal(
    c.configs.get('gp-chapeltown' as never)?.contentHash,
    a.configs.get('gp-chapeltown' as never)?.contentHash,
    'unrelated agent unchanged',
  );
});

interface IncrementalCase {
  name: string;
  change: (p: Policy, i: Inventory) => { policy?: Policy; inventory?: Inventory };
  /** Agents expected in `changed`. */
  changed: string[];
}

const incrementalCases: IncrementalCase[] = [
  {
    name: 'a port added to one rule touches only its two ends',
    change: (p) => ({
      policy: {
        ...p,
        rules: p.rules.map((r) =>
          r.name === 'hub-nhs-to-council-casework'
            ? { ...r, ports: [...r.ports, { protocol: 'tcp' as const, first: 8443, last: 8443 }] }
            : r,
        ),
      },
    }),
    changed: ['lcc-civic-hall', 'nhs-shared-hub'],
  },
  {
    name: 'primary fails: the standby takes over; every peer of the care records moves',
    change: (_p, i) => ({
      inventory: { agents: i.agents.map((a) => (a.name === 'lth-sjuh' ? { ...a, isHealthy: false } : a)) },
    }),
    changed: ['gp-armley', 'gp-chapeltown', 'lcc-adult-social-care', 'lth-sjuh', 'lth-sjuh-standby', 'nhs-shared-hub'],
  },
  {
    name: "an endpoint change reaches the agent's peers only",
    change: (_p, i) => ({
      inventory: {
        agents: i.agents.map((a) => (a.name === 'lcc-civic-hall' ? moveEndpoint(a, '198.51.100.7:51820') : a)),
      },
    }),
    changed: ['nhs-shared-hub'],
  },
  {
    name: 'a rule removed',
    change: (p) => ({ policy: { ...p, rules: p.rules.filter((r) => r.name !== 'hl7-discharge-to-social-care') } }),
    // The standby had the rule too: it is a candidate of the care records.
    changed: ['lcc-adult-social-care', 'lth-sjuh', 'lth-sjuh-standby'],
  },
  {
    name: 'nothing changed',
    change: (p, i) => ({ policy: { ...p }, inventory: { agents: [...i.agents] } }),
    changed: [],
  },
];

for (const c of incrementalCases) {
  t.test(`incremental: ${c.name}`, async (t) => {
    const policy = leeds();
    const inventory = inv(policy);
    const compiler = new PolicyCompiler();
    compiler.compile(policy, inventory);
    const change = c.change(policy, inventory);
    const r = compiler.update(change);
    t.same(r.changed, c.changed, 'changed agents');
    const full = compilePolicy(change.policy ?? policy, change.inventory ?? inventory);
    t.same(
      [...r.configs].map(([n, x]) => [n, x.contentHash]),
      [...full.configs].map(([n, x]) => [n, x.contentHash]),
      'equals a full compile',
    );
    t.ok(r.recomputedAgents <= 7, `recomputed ${r.recomputedAgents}`);
  });
}

t.test('unserved reasons: which box is at fault, and whether the boxes merely have not enrolled', async (t) => {
  t.equal(isAwaitingEnrolment('a is not enrolled'), true);
  t.equal(isAwaitingEnrolment('a is not enrolled; b is not enrolled'), true);
  t.equal(isAwaitingEnrolment('a is not enrolled; b is unhealthy'), false);
  t.equal(isAwaitingEnrolment('a does not advertise fd20:8::/64'), false);
  t.equal(isUnservedBecauseOf('b', 'a is not enrolled; b is unhealthy'), true);
  t.equal(isUnservedBecauseOf('a', 'ab does not advertise 10.0.0.0/24'), false, 'a name is matched whole');
  t.equal(isUnservedBecauseOf('cc-edge', 'cc-edge does not advertise fd20:8::/64'), true);
});
