// Serving groups (issue 14, failover at the edges): who the candidates are and in which order, what
// senders and candidates get, and that a subnet with one candidate compiles as before.
import t from 'tap';
import { contentHash } from './hash.js';
import type { AgentConfig } from '../../../proto/gen/crosslink/v1/agent_pb.js';
import { compilePolicy, PolicyCompiler, type CompileResult } from '../compile.js';
import type { AgentName, Inventory, InventoryAgent, Policy } from '../types.js';
import { validatePolicy } from '../validate.js';

/** gp (10.30.1.0/24) opens the records (10.20.1.0/24, via p, s, x); the records send to gp; x is a
 *  third candidate. With `isRelayed`, gp sits on psn-wan only and reaches the others through hub. */
function world(opts: { via?: string[]; isRelayed?: boolean } = {}): Policy {
  const underlays = (u: string[]) => (opts.isRelayed ? { underlays: u } : {});
  const raw = {
    version: 1,
    ...(opts.isRelayed ? { underlays: { 'n3-wan': {}, 'psn-wan': {} } } : {}),
    zones: { n3: {} },
    agents: {
      gp: { zones: ['n3'], ...underlays(['psn-wan']) },
      p: { zones: ['n3'], ...underlays(['n3-wan']) },
      s: { zones: ['n3'], ...underlays(['n3-wan']) },
      x: { zones: ['n3'], ...underlays(['n3-wan']) },
      hub: { zones: ['n3'], ...underlays(['n3-wan', 'psn-wan']), ...(opts.isRelayed ? { relay: true } : {}) },
    },
    subnets: {
      records: {
        cidr: ['10.20.1.0/24', 'fd00:20:1::/64'],
        zone: 'n3',
        via: opts.via ?? ['p', 's'],
        gateway: '10.20.1.1',
      },
      'gp-lan': { cidr: '10.30.1.0/24', zone: 'n3', via: ['gp'] },
    },
    rules: [
      {
        name: 'gp-to-records',
        from: 'gp-lan',
        to: 'records',
        ports: ['tcp/443'],
        probes: [{ to: '10.20.1.10', port: 443, proto: 'tcp' }],
      },
      {
        name: 'records-to-gp',
        from: 'records',
        to: 'gp-lan',
        ports: ['tcp/2575'],
        probes: [{ to: '10.30.1.10', port: 2575, proto: 'tcp' }],
      },
    ],
  };
  const v = validatePolicy(raw);
  if (!v.policy) throw new Error(JSON.stringify(v.errors));
  return v.policy;
}

function inventory(policy: Policy, patch: Record<string, Partial<InventoryAgent> | null> = {}): Inventory {
  const agents: InventoryAgent[] = [];
  policy.agents.forEach((a, i) => {
    const p = patch[a.name];
    if (p === null) return;
    const under = a.underlays ?? [];
    agents.push({
      name: a.name,
      publicKey: `key-${a.name}`,
      endpoint: `10.255.${under[0] === 'psn-wan' ? 2 : 1}.${i + 1}:51820`,
      ...(under.length > 0
        ? {
            endpoints: under.map((u) => ({
              underlay: u,
              endpoint: `10.255.${u === 'n3-wan' ? 1 : 2}.${i + 1}:51820`,
            })),
            isRelay: a.name === 'hub',
          }
        : {}),
      overlayAddress: `100.64.0.${i + 1}/10`,
      advertised: policy.subnets.filter((s) => s.via.includes(a.name)).flatMap((s) => s.cidrs),
      isHealthy: true,
      ...p,
    });
  });
  return { agents };
}

const cfg = (r: CompileResult, name: string): AgentConfig => {
  const c = r.configs.get(name as AgentName);
  if (!c) throw new Error(`no config for ${name}`);
  return c;
};

interface OrderCase {
  name: string;
  via: string[];
  patch: Record<string, Partial<InventoryAgent> | null>;
  /** gp's group candidates; null: no group. */
  candidates: string[] | null;
  servedBy: string | undefined;
  /** The unserved reason of records; undefined: it is served. */
  unserved?: string;
  /** Why the controller cannot confirm the group (no candidate healthy); undefined: it can. */
  unconfirmed?: string;
}

const orderCases: OrderCase[] = [
  { name: 'all healthy: via order', via: ['p', 's', 'x'], patch: {}, candidates: ['p', 's', 'x'], servedBy: 'p' },
  {
    name: 'unhealthy primary goes last, the rest keep via order',
    via: ['p', 's', 'x'],
    patch: { p: { isHealthy: false } },
    candidates: ['s', 'x', 'p'],
    servedBy: 's',
  },
  {
    name: 'two unhealthy: healthy first, then the unhealthy in via order',
    via: ['p', 's', 'x'],
    patch: { p: { isHealthy: false }, s: { isHealthy: false } },
    candidates: ['x', 'p', 's'],
    servedBy: 'x',
  },
  {
    name: 'a box not advertising all of it is no candidate',
    via: ['p', 's', 'x'],
    patch: { s: { advertised: ['10.20.1.0/24'] } },
    candidates: ['p', 'x'],
    servedBy: 'p',
  },
  {
    name: 'a box not enrolled is no candidate',
    via: ['p', 's', 'x'],
    patch: { p: null },
    candidates: ['s', 'x'],
    servedBy: 's',
  },
  {
    name: 'one candidate left: no group',
    via: ['p', 's'],
    patch: { s: null },
    candidates: null,
    servedBy: 'p',
  },
  // The controller judging every candidate unhealthy (it lost their streams, or is cut off from
  // them) does not take the group from the edges: they decide on their own echo, primary first.
  {
    name: 'no healthy candidate: the group stays in via order, served by its primary',
    via: ['p', 's'],
    patch: { p: { isHealthy: false }, s: { isHealthy: false } },
    candidates: ['p', 's'],
    servedBy: 'p',
    unconfirmed: 'p is unhealthy; s is unhealthy',
  },
  {
    name: 'no healthy candidate of three: via order',
    via: ['p', 's', 'x'],
    patch: { p: { isHealthy: false }, s: { isHealthy: false }, x: { isHealthy: false } },
    candidates: ['p', 's', 'x'],
    servedBy: 'p',
    unconfirmed: 'p is unhealthy; s is unhealthy; x is unhealthy',
  },
  {
    name: 'no healthy candidate: via order, not name order',
    via: ['x', 'p', 's'],
    patch: { p: { isHealthy: false }, s: { isHealthy: false }, x: { isHealthy: false } },
    candidates: ['x', 'p', 's'],
    servedBy: 'x',
    unconfirmed: 'x is unhealthy; p is unhealthy; s is unhealthy',
  },
  {
    name: 'no healthy candidate, one box not advertising: the others stay a group',
    via: ['p', 's', 'x'],
    patch: { p: { isHealthy: false }, s: { advertised: ['10.20.1.0/24'] }, x: { isHealthy: false } },
    candidates: ['p', 'x'],
    servedBy: 'p',
    unconfirmed: 'p is unhealthy; s does not advertise fd00:20:1::/64; x is unhealthy',
  },
  {
    name: 'one healthy among unhealthy: confirmed, the healthy one first',
    via: ['p', 's', 'x'],
    patch: { p: { isHealthy: false }, x: { isHealthy: false } },
    candidates: ['s', 'p', 'x'],
    servedBy: 's',
  },
  {
    name: 'the only candidate unhealthy: unserved, no group',
    via: ['p'],
    patch: { p: { isHealthy: false } },
    candidates: null,
    servedBy: undefined,
    unserved: 'p is unhealthy',
  },
  {
    name: 'one candidate left and it unhealthy: unserved, no group',
    via: ['p', 's'],
    patch: { p: { isHealthy: false }, s: null },
    candidates: null,
    servedBy: undefined,
    unserved: 'p is unhealthy; s is not enrolled',
  },
  {
    name: 'one unhealthy candidate, the other not advertising: unserved, no group',
    via: ['p', 's'],
    patch: { p: { isHealthy: false }, s: { advertised: [] } },
    candidates: null,
    servedBy: undefined,
    unserved: 'p is unhealthy; s does not advertise 10.20.1.0/24',
  },
];

for (const c of orderCases) {
  t.test(`candidates: ${c.name}`, async (t) => {
    const policy = world({ via: c.via });
    const r = compilePolicy(policy, inventory(policy, c.patch));
    t.equal(r.servedBy.get('records' as never), c.servedBy, 'served by the first healthy candidate, else the first');
    t.same(r.candidates.get('records' as never) ?? null, c.candidates, 'candidates in the result');
    t.equal(r.unserved.find((u) => u.subnet === 'records')?.reason, c.unserved, 'unserved, and why');
    t.equal(r.unconfirmed.find((u) => u.subnet === 'records')?.reason, c.unconfirmed, 'unconfirmed, and why');
    const g = cfg(r, 'gp').servingGroups.find((x) => x.name === 'records');
    t.same(g?.candidates ?? null, c.candidates, 'group candidates on the sender');
    if (c.candidates)
      for (const name of c.candidates)
        t.same(
          cfg(r, name).servingGroups.map((x) => [x.name, x.candidates, x.subnets]),
          [['records', c.candidates, ['records']]],
          `${name} lists the group with its subnets`,
        );
  });
}

t.test('sender: every candidate a peer, the prefixes routed but in no allowed_ips', async (t) => {
  const policy = world({ via: ['p', 's', 'x'] });
  const r = compilePolicy(policy, inventory(policy), {
    liveness: { intervalMs: 150, multiplier: 5, holdDownMs: 30_000, port: 51821 },
  });
  const gp = cfg(r, 'gp');
  t.same(
    gp.peers.map((p) => [p.name, p.allowedIps]),
    [
      ['p', ['100.64.0.3/32']],
      ['s', ['100.64.0.4/32']],
      ['x', ['100.64.0.5/32']],
    ],
  );
  t.same(gp.routes, ['10.20.1.0/24', 'fd00:20:1::/64']);
  t.same(
    gp.servingGroups.map((g) => [g.name, g.prefixes, g.candidates, g.subnets]),
    [['records', ['10.20.1.0/24', 'fd00:20:1::/64'], ['p', 's', 'x'], []]],
  );
  t.same(
    [gp.liveness?.intervalMs, gp.liveness?.multiplier, gp.liveness?.holdDownMs, gp.liveness?.port],
    [150, 5, 30_000, 51821],
    'liveness from the options',
  );
  t.equal(cfg(r, 'hub').liveness, undefined, 'no liveness without a group');
  // Candidates echo each other: peers with their host prefix only (no flow between them).
  t.same(
    cfg(r, 's').peers.map((p) => [p.name, p.allowedIps]),
    [
      ['gp', ['10.30.1.0/24', '100.64.0.1/32']],
      ['p', ['100.64.0.3/32']],
      ['x', ['100.64.0.5/32']],
    ],
  );
});

t.test('standby: local subnet, gateway, inbound and outbound rules; probes stay on the server', async (t) => {
  const policy = world();
  const r = compilePolicy(policy, inventory(policy));
  const p = cfg(r, 'p');
  const s = cfg(r, 's');
  const rules = (c: AgentConfig) => ({
    inbound: c.firewall?.inbound.map((x) => [x.rule, x.sources, x.destinations]),
    outbound: c.firewall?.outbound.map((x) => [x.rule, x.sources, x.destinations]),
    localPrefixes: c.firewall?.localPrefixes,
    local: c.localSubnets.map((l) => [l.name, l.gateways]),
  });
  t.same(rules(s), rules(p), 'the standby has the primary rules, local subnet and gateway');
  t.same(rules(s).inbound, [['gp-to-records', ['10.30.1.0/24'], ['10.20.1.0/24', 'fd00:20:1::/64']]]);
  t.same(
    p.probes.map((x) => x.name),
    ['records-to-gp/0'],
  );
  t.same(s.probes, [], 'no path probes on the standby');
  t.same(s.routes, ['10.30.1.0/24'], 'the standby routes gp; never its own subnet');
});

t.test('a subnet with one candidate compiles exactly as before serving groups', async (t) => {
  const policy = world({ via: ['p'] });
  const r = compilePolicy(policy, inventory(policy));
  for (const c of r.configs.values()) {
    t.same(c.servingGroups, [], `${c.agentName}: no groups`);
    t.equal(c.liveness, undefined, `${c.agentName}: no liveness`);
  }
  t.same(
    cfg(r, 'gp').peers.map((p) => [p.name, p.allowedIps]),
    [['p', ['10.20.1.0/24', '100.64.0.3/32', 'fd00:20:1::/64']]],
  );
  // Zones (added later) are hashed only when present: without them, the hashes from before both.
  t.same(
    [...r.configs].map(([n, c]) => [n, contentHash({ ...c, zones: [] })]),
    SINGLE_CANDIDATE_HASHES,
    'same content hashes as before (zones left out)',
  );
  t.ok(
    [...r.configs].every(([, c]) => c.zones.length === 0 || c.contentHash !== contentHash({ ...c, zones: [] })),
    'the zones are part of the hash when present',
  );
});

t.test('relay paths to a standby are registered on the relay', async (t) => {
  const policy = world({ isRelayed: true });
  const r = compilePolicy(policy, inventory(policy));
  const gp = cfg(r, 'gp');
  for (const name of ['p', 's']) {
    const peer = gp.peers.find((x) => x.name === name);
    t.same(
      peer?.paths.map((x) => x.relay),
      ['hub'],
      `gp reaches ${name} through hub`,
    );
    t.ok(
      cfg(r, 'hub').firewall?.relay.some((f) => f.fromAgent === 'gp' && f.toAgent === name),
      `hub forwards gp -> ${name}`,
    );
    t.ok(
      cfg(r, 'hub').firewall?.relay.some((f) => f.fromAgent === name && f.toAgent === 'gp'),
      `hub forwards ${name} -> gp`,
    );
  }
  t.same(
    r.indirectPairs.map((x) => [x.a, x.b, x.path.kind]),
    [
      ['gp', 'p', 'relay'],
      ['gp', 's', 'relay'],
    ],
  );
});

t.test('a health flip changes only the group order and the server', async (t) => {
  const policy = world({ via: ['p', 's', 'x'] });
  const compiler = new PolicyCompiler();
  const inv = inventory(policy);
  const before = compiler.compile(policy, inv);
  const snapshot = new Map([...before.configs].map(([n, c]) => [n as string, structuredClone(c)]));
  const after = compiler.update({ inventory: inventory(policy, { p: { isHealthy: false } }) });
  t.same(after.changed, ['gp', 'p', 's', 'x'], 'the boxes that list the group');
  for (const name of after.changed) {
    const was = snapshot.get(name);
    const now = cfg(after, name);
    if (!was) throw new Error(`no config for ${name}`);
    t.same(
      now.servingGroups.map((g) => g.candidates),
      [['s', 'x', 'p']],
      `${name}: new order`,
    );
    const strip = (c: AgentConfig) => ({ ...c, contentHash: '', servingGroups: [], probes: [] });
    t.same(strip(now), strip(was), `${name}: nothing else but probes moved`);
  }
  t.same(
    cfg(after, 's').probes.map((x) => x.name),
    ['records-to-gp/0'],
    'probes moved to the new server',
  );
  t.same(cfg(after, 'p').probes, []);
});

t.test('no healthy candidate: every candidate keeps the subnet; incremental equals full', async (t) => {
  const policy = world({ via: ['p', 's', 'x'] });
  const compiler = new PolicyCompiler();
  const steps: Array<[string, Record<string, Partial<InventoryAgent> | null>]> = [
    ['all healthy', {}],
    ['p unhealthy', { p: { isHealthy: false } }],
    ['p, s unhealthy', { p: { isHealthy: false }, s: { isHealthy: false } }],
    ['all unhealthy', { p: { isHealthy: false }, s: { isHealthy: false }, x: { isHealthy: false } }],
    ['all unhealthy, x gone', { p: { isHealthy: false }, s: { isHealthy: false }, x: null }],
    ['p alone, unhealthy', { p: { isHealthy: false }, s: null, x: null }],
    ['all unhealthy again', { p: { isHealthy: false }, s: { isHealthy: false }, x: { isHealthy: false } }],
    ['x back', { p: { isHealthy: false }, s: { isHealthy: false } }],
    ['all healthy again', {}],
  ];
  compiler.compile(policy, inventory(policy));
  for (const [name, patch] of steps) {
    const inv = inventory(policy, patch);
    const inc = compiler.update({ inventory: inv });
    const full = compilePolicy(policy, inv);
    t.same(
      [...inc.configs].map(([n, c]) => [n, c.contentHash]),
      [...full.configs].map(([n, c]) => [n, c.contentHash]),
      `${name}: same configs`,
    );
    t.same(
      [inc.unserved, inc.unconfirmed, [...inc.servedBy], [...inc.candidates]],
      [full.unserved, full.unconfirmed, [...full.servedBy], [...full.candidates]],
      `${name}: same serving`,
    );
  }
  const r = compilePolicy(
    policy,
    inventory(policy, { p: { isHealthy: false }, s: { isHealthy: false }, x: { isHealthy: false } }),
  );
  for (const name of ['p', 's', 'x'])
    t.same(
      cfg(r, name).localSubnets.map((l) => [l.name, l.gateways]),
      [['records', ['10.20.1.1/24']]],
      `${name} keeps the subnet and may take its gateway`,
    );
  t.same(
    cfg(r, 'p').probes.map((x) => x.name),
    ['records-to-gp/0'],
    'probes on the primary',
  );
  t.same(
    cfg(r, 'gp').peers.map((p) => p.name),
    ['p', 's', 'x'],
    'the sender peers with every candidate',
  );
});

/** The content hashes the compiler gave `world({ via: ['p'] })` before serving groups (64de62b). */
const SINGLE_CANDIDATE_HASHES: Array<[string, string]> = [
  ['gp', '52e156cb6fd10e94491568ae9a80d77fde11c87cf94d5a4fb388f18b151bf3c0'],
  ['hub', '16426b78df4ba6ceed549a3b1330b92ae91d25727bbef99617321a280862c9fe'],
  ['p', '84d1c3ad30a24db8376e7ebdb993aa47723816d249d60be427f42ccd4982e45b'],
  ['s', '9033db9180febea25d9045803481645187ee5fdda89ffd04a754cba7b988b442'],
  ['x', '879591a2a2edc6945bb349396b4883a502b0bee8b891077a8fa8d058c0bb249f'],
];

t.test('a subnet of adjacent prefixes is served by a box that advertises them one by one', async (t) => {
  const policy = world({ via: ['p'] });
  const sub = policy.subnets.find((s) => s.via.includes('p' as AgentName))!;
  sub.cidrs = ['10.128.0.0/24', '10.128.1.0/24', '10.128.2.0/24', '10.128.3.0/24'];
  const inv = inventory(policy);
  const p = inv.agents.find((a) => a.name === 'p')!;
  p.advertised = [...sub.cidrs];
  const r = compilePolicy(policy, inv);
  t.same(r.unserved, [], 'served: the four /24s cover the /22 the subnet merges to');
  p.advertised = sub.cidrs.slice(0, 3);
  t.match(
    compilePolicy(policy, inv).unserved,
    [{ reason: /p does not advertise 10\.128\.0\.0\/22/ }],
    'three of four: not served',
  );
});
