// diffConfigs(): human-readable per-agent changes for dry runs.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { syntheticInventory } from './check.js';
import { compilePolicy } from './compile.js';
import { diffConfigs, formatConfigDiffs } from './diff.js';
import type { Inventory, Policy } from './types.js';
import { parsePolicy } from './validate.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const r = parsePolicy(readFileSync(join(root, 'examples', 'leeds.yaml'), 'utf8'));
if (!r.policy) throw new Error(JSON.stringify(r.errors));
const policy = r.policy;
const inventory = syntheticInventory(policy);
const before = compilePolicy(policy, inventory).configs;

const cases: Array<{ name: string; policy?: Policy; inventory?: Inventory; want: Record<string, string[]> }> = [
  { name: 'no change', want: {} },
  {
    name: 'a port added to a rule',
    policy: {
      ...policy,
      rules: policy.rules.map((x) =>
        x.name === 'hub-nhs-to-council-casework'
          ? { ...x, ports: [...x.ports, { protocol: 'tcp' as const, first: 8443, last: 8443 }] }
          : x,
      ),
    },
    want: {
      'lcc-civic-hall': ['~ inbound rule hub-nhs-to-council-casework tcp: ports tcp/443 -> tcp/443,tcp/8443'],
      'nhs-shared-hub': ['~ outbound rule hub-nhs-to-council-casework tcp: ports tcp/443 -> tcp/443,tcp/8443'],
    },
  },
  {
    name: 'a rule removed: peer, route and rules go',
    policy: { ...policy, rules: policy.rules.filter((x) => x.name !== 'hub-nhs-to-council-casework') },
    want: {
      'lcc-civic-hall': [
        '- peer nhs-shared-hub allowed-ips 10.40.1.0/24, 100.64.0.7/32',
        '- route 10.40.1.0/24',
        '- inbound rule hub-nhs-to-council-casework tcp/443: 10.40.1.0/24 -> 10.50.1.0/24',
      ],
      'nhs-shared-hub': [
        '- peer lcc-civic-hall allowed-ips 10.50.1.0/24, 100.64.0.4/32',
        '- route 10.50.1.0/24',
        '- outbound rule hub-nhs-to-council-casework tcp/443: 10.40.1.0/24 -> 10.50.1.0/24',
      ],
    },
  },
  {
    name: 'a new source subnet in a rule',
    policy: {
      ...policy,
      subnets: [
        ...policy.subnets,
        {
          name: 'armley-annex' as never,
          cidrs: ['10.31.2.0/24'],
          zone: 'n3',
          via: ['gp-armley' as never],
          masquerade: false,
        },
      ],
      rules: policy.rules.map((x) =>
        x.name === 'gp-to-care-records' ? { ...x, from: [...x.from, 'armley-annex'] } : x,
      ),
    },
    inventory: {
      agents: inventory.agents.map((a) =>
        a.name === 'gp-armley' ? { ...a, advertised: [...a.advertised, '10.31.2.0/24'] } : a,
      ),
    },
    want: {
      'gp-armley': [
        '+ local subnet armley-annex 10.31.2.0/24 [n3]',
        '~ outbound rule gp-to-care-records tcp: sources +10.31.2.0/24',
      ],
      'lth-sjuh': [
        '~ peer gp-armley: allowed-ips +10.31.2.0/24',
        '+ route 10.31.2.0/24',
        '~ inbound rule gp-to-care-records tcp: sources +10.31.2.0/24',
      ],
      // The standby has the primary's rules (edge failover): the same change.
      'lth-sjuh-standby': [
        '~ peer gp-armley: allowed-ips +10.31.2.0/24',
        '+ route 10.31.2.0/24',
        '~ inbound rule gp-to-care-records tcp: sources +10.31.2.0/24',
      ],
    },
  },
  {
    name: 'failover: the standby gains what the primary loses',
    inventory: { agents: inventory.agents.map((a) => (a.name === 'lth-sjuh' ? { ...a, isHealthy: false } : a)) },
    want: {},
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const after = compilePolicy(c.policy ?? policy, c.inventory ?? inventory).configs;
    const d = diffConfigs(before, after);
    if (c.name.startsWith('failover')) {
      // Both boxes already have everything; the controller's judgement only reorders the groups
      // (and the path probes go to the box that serves now).
      const lines = Object.fromEntries(d.map((x) => [x.agent, x.lines]));
      t.same(lines['gp-armley'], [
        '- serving group care-records 10.20.1.0/24, fd00:20:1::/64: lth-sjuh > lth-sjuh-standby',
        '- serving group lth-dns 10.20.2.0/28: lth-sjuh > lth-sjuh-standby',
        '+ serving group care-records 10.20.1.0/24, fd00:20:1::/64: lth-sjuh-standby > lth-sjuh',
        '+ serving group lth-dns 10.20.2.0/28: lth-sjuh-standby > lth-sjuh',
      ]);
      t.notOk(
        lines['lth-sjuh']?.some((l) => / peer | local subnet |rule /.test(l)),
        'the primary keeps its peers, subnets and rules',
      );
      t.ok(
        lines['lth-sjuh']?.some((l) => l.startsWith('- probe ')),
        'its path probes move',
      );
      t.ok(
        lines['lth-sjuh-standby']?.some((l) => l.startsWith('+ probe ')),
        'to the standby',
      );
      return;
    }
    t.same(Object.fromEntries(d.map((x) => [x.agent, x.lines])), c.want);
    t.ok(d.every((x) => x.change === 'changed'));
  });
}

t.test('added and removed agents, and the text rendering', async (t) => {
  const d = diffConfigs(new Map(), before);
  t.equal(d.length, 7);
  t.ok(d.every((x) => x.change === 'added'));
  const gone = diffConfigs(before, new Map([...before].filter(([n]) => n !== 'gp-armley')));
  t.same(
    gone.map((x) => [x.agent, x.change]),
    [['gp-armley', 'removed']],
  );
  t.match(gone[0]?.lines[0], /^- peer lth-sjuh allowed-ips/);
  t.equal(formatConfigDiffs([]), 'no changes\n');
  t.match(formatConfigDiffs(gone), /^gp-armley \(removed\)\n {2}- peer lth-sjuh/);
});
