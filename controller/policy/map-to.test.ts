// `map-to`: overlapping address space mapped 1:1. Validation (what may overlap, what a mapped prefix
// may be, errors naming both subnets with the line) and what the compiler gives each box: the
// mapped prefix everywhere except the subnet's own box, which sees its real one and translates.
import t from 'tap';
import { syntheticInventory } from './check.js';
import { compilePolicy, PolicyCompiler } from './compile.js';
import { diffConfig } from './diff.js';
import { evaluate } from './evaluate.js';
import type { AgentName } from './types.js';
import { parsePolicy } from './validate.js';

const HEAD = `version: 1
zones:
  n3: { description: NHS }
agents:
  gp: { zones: [n3] }
  council: { zones: [n3] }
  hub: { zones: [n3] }
`;

const doc = (subnets: string, rules = ''): string => `${HEAD}subnets:\n${subnets}${rules ? `rules:\n${rules}` : ''}`;

const GOOD = doc(
  `  gp-lan: { cidr: 10.1.1.0/24, map-to: 10.201.1.0/24, zone: n3, via: gp }
  council-lan: { cidr: 10.1.1.0/24, map-to: 10.202.1.0/24, zone: n3, via: council }
  hub-lan: { cidr: 10.9.0.0/24, zone: n3, via: hub }
`,
  `  - { name: hub-to-sites, from: hub-lan, to: [gp-lan, council-lan], ports: tcp/443 }
`,
);

t.test('validation', async (t) => {
  const cases: Array<{ name: string; subnets: string; path?: string; line?: number; message?: RegExp }> = [
    {
      name: 'both mapped: accepted',
      subnets: `  a: { cidr: 10.1.1.0/24, map-to: 10.201.1.0/24, zone: n3, via: gp }\n  b: { cidr: 10.1.1.0/24, map-to: 10.202.1.0/24, zone: n3, via: council }\n`,
    },
    {
      name: 'one of two mapped: accepted',
      subnets: `  a: { cidr: 10.1.1.0/24, zone: n3, via: gp }\n  b: { cidr: 10.1.1.0/24, map-to: 10.202.1.0/24, zone: n3, via: council }\n`,
    },
    {
      name: 'IPv6, list form, any length: accepted',
      subnets: `  a: { cidr: [10.1.0.0/16, fd00:1::/64], map-to: [10.210.0.0/16, fd00:201::/64], zone: n3, via: gp }\n  b: { cidr: [10.1.0.0/16, fd00:1::/64], zone: n3, via: council }\n`,
    },
    {
      name: 'neither mapped: refused, names both, suggests map-to',
      subnets: `  a: { cidr: 10.1.1.0/24, zone: n3, via: gp }\n  b: { cidr: 10.1.1.0/24, zone: n3, via: council }\n`,
      path: 'subnets.b.cidr',
      line: 10,
      message: /10\.1\.1\.0\/24 of subnet "b" overlaps 10\.1\.1\.0\/24 of subnet "a" .*map-to/,
    },
    {
      name: 'mapped prefix of another length',
      subnets: `  a: { cidr: 10.1.1.0/24, map-to: 10.201.1.0/24, zone: n3, via: gp }\n  b: { cidr: 10.1.1.0/24, map-to: 10.201.1.128/25, zone: n3, via: council }\n`,
      message: /must have the family and length of 10\.1\.1\.0\/24/,
      path: 'subnets.b.map-to',
      line: 10,
    },
    {
      name: 'mapped prefixes overlap',
      subnets: `  a: { cidr: 10.1.1.0/24, map-to: 10.201.1.0/24, zone: n3, via: gp }\n  b: { cidr: 10.1.1.0/24, map-to: 10.201.1.0/24, zone: n3, via: council }\n`,
      path: 'subnets.b.map-to',
      line: 10,
      message:
        /map-to 10\.201\.1\.0\/24 of subnet "b" overlaps map-to 10\.201\.1\.0\/24 of subnet "a".*choose a map-to prefix no other subnet uses/,
    },
    {
      name: 'mapped onto an unmapped subnet',
      subnets: `  a: { cidr: 10.1.1.0/24, map-to: 10.9.0.0/24, zone: n3, via: gp }\n  hub-lan: { cidr: 10.9.0.0/24, zone: n3, via: hub }\n`,
      message: /subnet "hub-lan" overlaps map-to 10\.9\.0\.0\/24 of subnet "a"/,
    },
    {
      name: "mapped onto a mapped subnet's real space",
      subnets: `  a: { cidr: 10.1.1.0/24, map-to: 10.5.0.0/24, zone: n3, via: gp }\n  b: { cidr: 10.5.0.0/24, map-to: 10.205.0.0/24, zone: n3, via: council }\n`,
      path: 'subnets.a.map-to',
      message: /map-to 10\.5\.0\.0\/24 of subnet "a" overlaps 10\.5\.0\.0\/24, the real space of subnet "b"/,
    },
    {
      name: 'family differs',
      subnets: `  a: { cidr: 10.1.1.0/24, map-to: fd00::/120, zone: n3, via: gp }\n`,
      path: 'subnets.a.map-to',
      line: 9,
      message: /must have the family and length of 10\.1\.1\.0\/24.*IPv4 \/24/,
    },
    {
      name: 'count differs',
      subnets: `  a: { cidr: [10.1.1.0/24, 10.1.2.0/24], map-to: 10.201.1.0/24, zone: n3, via: gp }\n`,
      path: 'subnets.a.map-to',
      message: /one prefix per cidr entry.*2 cidr, 1 map-to/,
    },
    {
      name: 'not a prefix',
      subnets: `  a: { cidr: 10.1.1.0/24, map-to: 10.201.1.0/33, zone: n3, via: gp }\n`,
      path: 'subnets.a.map-to',
      message: /^map-to: /,
    },
    {
      name: 'same real space on one box',
      subnets: `  a: { cidr: 10.1.1.0/24, map-to: 10.201.1.0/24, zone: n3, via: gp }\n  b: { cidr: 10.1.1.0/24, map-to: 10.202.1.0/24, zone: n3, via: gp }\n`,
      message: /overlap in real space and agent "gp" serves both/,
    },
  ];
  for (const c of cases) {
    const r = parsePolicy(doc(c.subnets));
    if (!c.message) {
      t.same(r.errors, undefined, c.name);
      continue;
    }
    const e = r.errors?.find((x) => c.message!.test(x.message));
    t.ok(e, `${c.name}: ${JSON.stringify(r.errors)}`);
    if (c.path !== undefined) t.equal(e?.path, c.path, `${c.name}: path`);
    if (c.line !== undefined) t.equal(e?.line, c.line, `${c.name}: line`);
  }
});

t.test('the overlay sees mapped prefixes; the real ones stay on the subnet', async (t) => {
  const r = parsePolicy(GOOD);
  t.same(r.errors, undefined);
  const gp = r.policy!.subnets.find((s) => s.name === 'gp-lan')!;
  t.same(gp.cidrs, ['10.201.1.0/24']);
  t.same(gp.realCidrs, ['10.1.1.0/24']);
  const hub = r.policy!.subnets.find((s) => s.name === 'hub-lan')!;
  t.equal(hub.realCidrs, undefined);
});

t.test('compile: the own box translates, every other box sees the mapped prefix', async (t) => {
  const policy = parsePolicy(GOOD).policy!;
  const { configs } = compilePolicy(policy, syntheticInventory(policy));
  const hub = configs.get('hub' as AgentName)!;
  const gp = configs.get('gp' as AgentName)!;
  const council = configs.get('council' as AgentName)!;
  // The hub routes and judges by the mapped prefixes; both sites are distinct peers.
  t.same(
    hub.firewall!.outbound.map((r) => [r.sources, r.destinations]),
    [[['10.9.0.0/24'], ['10.201.1.0/24', '10.202.1.0/24']]],
  );
  const allowed = Object.fromEntries(hub.peers.map((p) => [p.name, p.allowedIps.filter((a) => !a.startsWith('100.'))]));
  t.same(allowed.gp, ['10.201.1.0/24']);
  t.same(allowed.council, ['10.202.1.0/24']);
  t.same(hub.firewall!.mapTo, []);
  // Each site's forward chain sees its own LAN by its real prefix, and translates at wg.
  for (const [cfg, mapped] of [
    [gp, '10.201.1.0/24'],
    [council, '10.202.1.0/24'],
  ] as const) {
    t.same(
      cfg.firewall!.inbound.map((r) => [r.sources, r.destinations]),
      [[['10.9.0.0/24'], ['10.1.1.0/24']]],
    );
    t.same(cfg.firewall!.localPrefixes, ['10.1.1.0/24']);
    t.same(
      cfg.firewall!.mapTo.map((m) => [m.real, m.mapped]),
      [['10.1.1.0/24', mapped]],
    );
    t.same(cfg.localSubnets[0]!.prefixes, ['10.1.1.0/24']);
    t.same(
      cfg.zones.map((z) => z.prefixes),
      [['10.1.1.0/24', '10.9.0.0/24']],
    );
  }
});

t.test('whatif works in mapped addresses', async (t) => {
  const policy = parsePolicy(GOOD).policy!;
  const at = (from: string, to: string, port: number): string => evaluate(policy, from, to, 'tcp', port).decision;
  t.equal(at('10.9.0.5', '10.201.1.10', 443), 'allow');
  t.equal(at('10.9.0.5', '10.202.1.10', 443), 'allow');
  t.equal(at('10.9.0.5', '10.202.1.10', 22), 'deny');
  // The real address is nobody's in the overlay.
  t.equal(at('10.9.0.5', '10.1.1.10', 443), 'deny');
});

t.test('compile: a mapped subnet with a standby; its candidates see the real LAN', async (t) => {
  const policy = parsePolicy(
    doc(
      `  gp-lan: { cidr: 10.1.1.0/24, map-to: 10.201.1.0/24, zone: n3, via: [gp, council] }
  hub-lan: { cidr: 10.9.0.0/24, zone: n3, via: hub }
`,
      `  - { name: hub-to-gp, from: hub-lan, to: gp-lan, ports: tcp/443 }
`,
    ),
  ).policy!;
  const { configs } = compilePolicy(policy, syntheticInventory(policy));
  const group = (n: string) => configs.get(n as AgentName)!.servingGroups.map((g) => [g.name, g.prefixes]);
  t.same(group('gp'), [['gp-lan', ['10.1.1.0/24']]]);
  t.same(group('council'), [['gp-lan', ['10.1.1.0/24']]]);
  t.same(group('hub'), [['gp-lan', ['10.201.1.0/24']]]);
  for (const n of ['gp', 'council'])
    t.same(
      configs.get(n as AgentName)!.firewall!.mapTo.map((m) => [m.real, m.mapped]),
      [['10.1.1.0/24', '10.201.1.0/24']],
    );
});

t.test('dry run: a box gaining map-to shows the translation', async (t) => {
  // Before: gp unmapped (council's mapping keeps the two apart).
  const before = parsePolicy(GOOD.replace(', map-to: 10.201.1.0/24', '')).policy!;
  const after = parsePolicy(GOOD).policy!;
  const a = compilePolicy(before, syntheticInventory(before)).configs.get('gp' as AgentName)!;
  const b = compilePolicy(after, syntheticInventory(after)).configs.get('gp' as AgentName)!;
  const lines = diffConfig(a, b);
  t.ok(lines.includes('+ map-to 10.1.1.0/24 as 10.201.1.0/24'), lines.join('; '));
});

t.test('incremental compile: adding map-to gives what a fresh compile gives', async (t) => {
  const before = parsePolicy(GOOD.replace(', map-to: 10.201.1.0/24', '')).policy!;
  const after = parsePolicy(GOOD).policy!;
  const compiler = new PolicyCompiler();
  compiler.compile(before, syntheticInventory(before));
  const incremental = compiler.compile(after, syntheticInventory(after)).configs;
  const fresh = compilePolicy(after, syntheticInventory(after)).configs;
  t.equal(incremental.get('gp' as AgentName)!.firewall!.mapTo.length, 1, 'gp gets its translation');
  for (const n of ['gp', 'council', 'hub'] as const)
    t.equal(incremental.get(n as AgentName)!.contentHash, fresh.get(n as AgentName)!.contentHash, n);
});
