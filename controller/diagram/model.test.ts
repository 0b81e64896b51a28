// buildDiagramModel(): boxes, links, subnets and groups from the policy, the inventory, health, the
// pair paths and the serving map — on Leeds (compiled for real), a generated three-zone policy, and
// the edge cases (no policy, no health, revoked, not consenting to relay).
import t from 'tap';
import { AT_MS, compiledInput, generatedPolicy, leedsPolicy } from './diagram.fixture.js';
import { buildDiagramModel, type DiagramInput } from './model.js';
import type { DiagramModel } from './types.js';

function box(m: DiagramModel, name: string) {
  const b = m.boxes.find((x) => x.name === name);
  if (!b) throw new Error(`no box ${name}`);
  return b;
}
function link(m: DiagramModel, name: string) {
  const l = m.links.find((x) => x.name === name);
  if (!l) throw new Error(`no link ${name}`);
  return l;
}

t.test('Leeds: groups, boxes, relayed links, rules, not-enrolled boxes', async (t) => {
  const m = buildDiagramModel(
    compiledInput(leedsPolicy(), { notEnrolled: ['gp-armley'], states: { 'lcc-civic-hall': 'down' } }),
  );
  t.equal(m.atMs, AT_MS);
  t.equal(m.policyVersion, 7);
  t.same(
    m.groups.map((g) => [g.key, g.label]),
    [
      ['n3', 'N3'],
      ['n3+psn', 'N3 + PSN'],
      ['psn', 'PSN'],
    ],
    'N3 | N3 + PSN | PSN, by the mean policy index of their zones',
  );
  t.same(
    m.zones.map((z) => z.name),
    ['n3', 'psn'],
  );
  t.same(
    m.underlays.map((u) => u.name),
    ['n3-wan', 'psn-wan'],
  );
  t.equal(m.boxes.length, 7);
  t.same(
    m.boxes.map((b) => b.name),
    [...m.boxes.map((b) => b.name)].sort(),
    'boxes sorted by name',
  );
  const hub = box(m, 'nhs-shared-hub');
  t.match(hub, { group: 'n3+psn', zones: ['n3', 'psn'], underlays: ['n3-wan', 'psn-wan'], isRelay: true });
  t.match(box(m, 'lcc-civic-hall'), { state: 'down', isConnected: false, reason: /no handshake/ });
  t.match(box(m, 'gp-armley'), { isEnrolled: false, state: 'unknown', reason: 'in the policy, not enrolled yet' });
  t.same(
    box(m, 'lth-sjuh-standby').subnets.map((s) => [s.name, s.role]),
    [
      ['care-records', 'standby'],
      ['lth-dns', 'standby'],
    ],
  );
  t.same(box(m, 'lth-sjuh').subnets[0], {
    name: 'care-records',
    cidrs: ['10.20.1.0/24', 'fd00:20:1::/64'],
    zone: 'n3',
    role: 'serving',
  });
  t.same(link(m, 'lcc-adult-social-care:lth-sjuh'), {
    name: 'lcc-adult-social-care:lth-sjuh',
    a: 'lcc-adult-social-care',
    b: 'lth-sjuh',
    state: 'ok',
    reason: 'handshake 12 s ago',
    path: 'relay',
    relays: ['nhs-shared-hub'],
    underlays: ['psn-wan', 'n3-wan'],
    rules: ['hl7-discharge-to-social-care', 'social-care-to-care-records'],
  });
  t.match(link(m, 'gp-chapeltown:lth-sjuh'), {
    path: 'direct',
    underlays: ['n3-wan'],
    rules: ['gp-to-care-records', 'hl7-results-to-gps', 'n3-dns'],
  });
  t.match(
    link(m, 'gp-armley:lth-sjuh'),
    { state: 'unknown', path: 'direct', reason: 'planned: gp-armley not enrolled yet', rules: ['gp-to-care-records'] },
    'a policy box that has not enrolled gets its planned links',
  );
  t.same(m.unserved, [{ subnet: 'gp-armley-lan', reason: 'gp-armley is not enrolled' }]);
  t.same(
    m.links.map((l) => l.name),
    [...m.links.map((l) => l.name)].sort(),
    'links sorted by name',
  );
  t.notOk(
    m.links.some((l) => l.name.includes('lcc-civic-hall') && l.name.includes('gp-')),
    'no link without a permitted flow',
  );
});

t.test('edge cases', async (t) => {
  const leeds = leedsPolicy();
  const cases: Array<{ name: string; input: (i: DiagramInput) => DiagramInput; check: (m: DiagramModel) => void }> = [
    {
      name: 'no health snapshot yet: enrolled boxes unknown, links only planned ones',
      input: (i) => ({ ...i, health: null }),
      check: (m) => {
        t.match(box(m, 'lth-sjuh'), { state: 'unknown', reason: 'health not evaluated yet', isEnrolled: true });
        t.ok(m.links.every((l) => l.reason.startsWith('planned')));
      },
    },
    {
      name: 'a relay of the policy that does not consent is not drawn as a relay',
      input: (i) => ({ ...i, agents: i.agents.map((a) => ({ ...a, isRelay: false })) }),
      check: (m) => t.equal(box(m, 'nhs-shared-hub').isRelay, false),
    },
    {
      name: 'no policy: inventory boxes in "no zone", links from health, no rules',
      input: (i) => ({ ...i, policy: null, policyVersion: null, unserved: [] }),
      check: (m) => {
        t.same(
          m.groups.map((g) => [g.key, g.label]),
          [['', 'no zone']],
        );
        t.equal(m.boxes.length, 6, 'the enrolled ones');
        t.match(box(m, 'nhs-shared-hub'), { site: '', zones: [], underlays: ['n3-wan', 'psn-wan'], isRelay: false });
        t.ok(m.links.length > 0 && m.links.every((l) => l.rules.length === 0));
        t.equal(m.policyVersion, null);
      },
    },
    {
      name: 'an enrolled box the policy does not name is drawn in "no zone"',
      input: (i) => ({
        ...i,
        agents: [...i.agents, { name: 'spare-box', underlays: ['n3-wan'], isRelay: false, isRevoked: false }],
      }),
      check: (m) => {
        t.match(box(m, 'spare-box'), { group: '', isEnrolled: true, state: 'unknown' });
        t.equal(m.groups.at(-1)?.key, '', '"no zone" last');
      },
    },
  ];
  for (const c of cases) {
    t.test(c.name, async () =>
      c.check(buildDiagramModel(c.input(compiledInput(leeds, { notEnrolled: ['gp-armley'] })))),
    );
  }
  t.test('a planned link across WANs goes through a relay of the policy', async (t) => {
    const m = buildDiagramModel(compiledInput(leeds, { notEnrolled: ['lcc-adult-social-care'] }));
    t.match(link(m, 'lcc-adult-social-care:lth-sjuh'), {
      state: 'unknown',
      path: 'relay',
      relays: ['nhs-shared-hub'],
      underlays: ['psn-wan', 'n3-wan'],
      rules: ['hl7-discharge-to-social-care', 'social-care-to-care-records'],
    });
  });
  t.test('revoked: not enrolled, and its links are gone', async (t) => {
    const m = buildDiagramModel(compiledInput(leeds, { revoked: ['gp-chapeltown'] }));
    t.match(box(m, 'gp-chapeltown'), { isEnrolled: false, state: 'unknown' });
    t.ok(m.links.filter((l) => l.name.includes('gp-chapeltown')).every((l) => l.state === 'unknown'));
  });
});

t.test('a generated three-zone policy: column order, every link has its rules, paths across WANs', async (t) => {
  const m = buildDiagramModel(compiledInput(generatedPolicy(70)));
  t.same(
    m.groups.map((g) => g.key),
    ['blue', 'blue+green', 'blue+red', 'green', 'green+red', 'red', ''],
    'mean policy index of the zones (blue 0, green 1, red 2: the validator sorts them), ties by key, no zone last',
  );
  t.equal(m.boxes.length, 70);
  t.ok(m.links.length >= 150, `${m.links.length} links`);
  t.ok(
    m.links.every((l) => l.rules.length > 0),
    'every link carries a permitted flow',
  );
  const relayed = m.links.filter((l) => l.path === 'relay');
  t.ok(relayed.length > 0, 'some relayed');
  for (const l of relayed) t.ok(box(m, l.relays[0]!).isRelay, `${l.name} through a relay box`);
  for (const l of m.links.filter((x) => x.path === 'direct'))
    t.ok(
      box(m, l.a).underlays.includes(l.underlays[0]!) && box(m, l.b).underlays.includes(l.underlays[0]!),
      `${l.name} direct on a shared underlay`,
    );
});

t.test('1,000 boxes: all placed, none overlapping, canvas near a screen shape', async (t) => {
  const m = buildDiagramModel(compiledInput(generatedPolicy(1000)));
  t.equal(m.boxes.length, 1000);
  t.ok(m.links.length > 2000, `${m.links.length} links`);
  const seen = new Set(m.boxes.map((b) => `${b.x},${b.y}`));
  t.equal(seen.size, 1000, 'no two boxes at one place');
  const ratio = m.width / m.height;
  t.ok(ratio > 1 && ratio < 3, `width/height ${ratio.toFixed(2)}`);
});
