// One case per validation error: path, line and message; plus the documents that must pass.
import t from 'tap';
import { parsePolicy, type ValidateOptions } from './validate.js';

// A small valid base; cases append to or replace parts of it. Line numbers below refer to the
// assembled text, so each case spells out its own document.
const HEAD = `version: 1
zones:
  n3: { description: NHS }
  psn: { description: council }
agents:
  hosp: { zones: [n3] }
  hosp-standby: { zones: [n3] }
  council: { zones: [psn] }
  hub: { zones: [n3, psn] }
`;

const SUBNETS = `subnets:
  records: { cidr: 10.20.1.0/24, zone: n3, via: [hosp, hosp-standby] }
  social-care: { cidr: [10.60.1.0/24, fd00:60:1::/64], zone: psn, via: council }
`;

interface Case {
  name: string;
  doc: string;
  opts?: Omit<ValidateOptions, 'locate'>;
  /** Expected errors, in order; `line` optional. */
  errors: Array<{ path: string; line?: number; message: RegExp }>;
}

const cases: Case[] = [
  {
    name: 'empty document',
    doc: '',
    errors: [{ path: '', message: /empty/ }],
  },
  {
    name: 'YAML syntax error has a line',
    doc: 'version: 1\nzones: [n3\n',
    errors: [{ path: '', line: 3, message: /^syntax:/ }],
  },
  {
    name: 'missing version',
    doc: 'zones: {}\n',
    errors: [{ path: '', line: 1, message: /missing "version"/ }],
  },
  {
    name: 'wrong version',
    doc: 'version: 2\n',
    errors: [{ path: 'version', line: 1, message: /version must be 1/ }],
  },
  {
    name: 'unknown top-level field with suggestion',
    doc: 'version: 1\nzonez: {}\n',
    errors: [{ path: 'zonez', line: 2, message: /unknown field "zonez".*did you mean "zones"/ }],
  },
  {
    name: 'unknown field in a subnet with suggestion',
    doc: `${HEAD}subnets:\n  records: { cidr: 10.20.1.0/24, zone: n3, vai: [hosp] }\n`,
    errors: [
      { path: 'subnets.records', line: 11, message: /missing "via"/ },
      { path: 'subnets.records.vai', line: 11, message: /unknown field "vai".*did you mean "via"/ },
    ],
  },
  {
    name: 'duplicate subnet name (duplicate YAML key) names the first line',
    doc: `${HEAD}${SUBNETS}  records: { cidr: 10.21.1.0/24, zone: n3, via: hosp }\n`,
    errors: [{ path: 'subnets.records', line: 13, message: /duplicate key "records" \(first defined on line 11\)/ }],
  },
  {
    name: 'duplicate rule name',
    doc: `${HEAD}${SUBNETS}rules:
  - { name: a, from: social-care, to: records, ports: tcp/443 }
  - { name: a, from: social-care, to: records, ports: tcp/80 }
`,
    errors: [{ path: 'rules[1].name', line: 15, message: /duplicate rule name "a" \(also rules\[0\]\)/ }],
  },
  {
    name: 'invalid name',
    doc: `${HEAD}subnets:\n  Records_1: { cidr: 10.20.1.0/24, zone: n3, via: hosp }\n`,
    errors: [{ path: 'subnets.Records_1', line: 11, message: /subnet name "Records_1" is invalid/ }],
  },
  {
    name: 'unknown zone with suggestion',
    doc: `${HEAD}subnets:\n  records: { cidr: 10.20.1.0/24, zone: n33, via: hosp }\n`,
    errors: [{ path: 'subnets.records.zone', line: 11, message: /unknown zone "n33".*did you mean "n3"/ }],
  },
  {
    name: 'unknown via agent with suggestion',
    doc: `${HEAD}subnets:\n  records:\n    cidr: 10.20.1.0/24\n    zone: n3\n    via: [hosp, hosp-stanby]\n`,
    errors: [
      { path: 'subnets.records.via[1]', line: 14, message: /unknown agent "hosp-stanby".*did you mean "hosp-standby"/ },
    ],
  },
  {
    name: 'via agent known only to the controller is accepted',
    doc: 'version: 1\nzones: { n3: {} }\nsubnets:\n  records: { cidr: 10.20.1.0/24, zone: n3, via: live-box }\n',
    opts: { knownAgents: ['live-box'] },
    errors: [],
  },
  {
    name: 'via agent unknown to the controller',
    doc: 'version: 1\nzones: { n3: {} }\nsubnets:\n  records: { cidr: 10.20.1.0/24, zone: n3, via: live-bx }\n',
    opts: { knownAgents: ['live-box'] },
    errors: [{ path: 'subnets.records.via', line: 4, message: /unknown agent "live-bx".*did you mean "live-box"/ }],
  },
  {
    name: 'via agent not on the subnet zone',
    doc: `${HEAD}subnets:\n  records: { cidr: 10.20.1.0/24, zone: n3, via: [council] }\n`,
    errors: [
      { path: 'subnets.records.via[0]', line: 11, message: /agent "council" sits on zone\(s\) psn, not on "n3"/ },
    ],
  },
  {
    name: 'agent listed twice in via',
    doc: `${HEAD}subnets:\n  records: { cidr: 10.20.1.0/24, zone: n3, via: [hosp, hosp] }\n`,
    errors: [{ path: 'subnets.records.via[1]', line: 11, message: /listed twice/ }],
  },
  {
    name: 'invalid CIDR',
    doc: `${HEAD}subnets:\n  records: { cidr: 10.20.300.0/24, zone: n3, via: hosp }\n`,
    errors: [{ path: 'subnets.records.cidr', line: 11, message: /not a valid IPv4 or IPv6 prefix/ }],
  },
  {
    name: 'address without prefix length',
    doc: `${HEAD}subnets:\n  records: { cidr: 10.20.1.0, zone: n3, via: hosp }\n`,
    errors: [{ path: 'subnets.records.cidr', line: 11, message: /not a prefix/ }],
  },
  {
    name: 'host bits set names the network address',
    doc: `${HEAD}subnets:\n  records: { cidr: [10.20.1.5/24], zone: n3, via: hosp }\n`,
    errors: [
      {
        path: 'subnets.records.cidr[0]',
        line: 11,
        message: /"10\.20\.1\.5\/24" has host bits set; the network address is 10\.20\.1\.0\/24/,
      },
    ],
  },
  {
    name: 'IPv6 host bits',
    doc: `${HEAD}subnets:\n  records: { cidr: "fd00:20:1::1/64", zone: n3, via: hosp }\n`,
    errors: [{ path: 'subnets.records.cidr', message: /network address is fd00:20:1::\/64/ }],
  },
  {
    name: '0.0.0.0/0 is refused',
    doc: `${HEAD}subnets:\n  records: { cidr: 0.0.0.0/0, zone: n3, via: hosp }\n`,
    errors: [{ path: 'subnets.records.cidr', line: 11, message: /whole IPv4 internet.*not an internet gateway/ }],
  },
  {
    name: '::/0 is refused',
    doc: `${HEAD}subnets:\n  records: { cidr: "::/0", zone: n3, via: hosp }\n`,
    errors: [{ path: 'subnets.records.cidr', line: 11, message: /whole IPv6 internet/ }],
  },
  {
    name: 'prefix shorter than the minimum',
    doc: `${HEAD}subnets:\n  records: { cidr: 8.0.0.0/6, zone: n3, via: hosp }\n`,
    errors: [
      {
        path: 'subnets.records.cidr',
        line: 11,
        message: /8\.0\.0\.0\/6 is shorter than the minimum prefix length \/8/,
      },
    ],
  },
  {
    name: 'configurable minimum prefix length',
    doc: `${HEAD}subnets:\n  records: { cidr: 10.0.0.0/12, zone: n3, via: hosp }\n`,
    opts: { minPrefixLength: 16 },
    errors: [{ path: 'subnets.records.cidr', message: /shorter than the minimum prefix length \/16/ }],
  },
  {
    name: 'overlapping subnets served by different agents',
    doc: `${HEAD}subnets:\n  a: { cidr: 10.20.0.0/16, zone: n3, via: hosp }\n  b: { cidr: 10.20.5.0/24, zone: n3, via: hub }\n`,
    errors: [
      {
        path: 'subnets.b.cidr',
        line: 12,
        message:
          /10\.20\.5\.0\/24 of subnet "b" overlaps 10\.20\.0\.0\/16 of subnet "a" and they are served by different agents/,
      },
    ],
  },
  {
    name: 'overlapping subnets in different zones',
    doc: `${HEAD}subnets:\n  a: { cidr: 10.20.0.0/16, zone: n3, via: hub }\n  b: { cidr: [fd00::/64, 10.20.5.0/24], zone: psn, via: hub }\n`,
    errors: [
      {
        path: 'subnets.b.cidr[1]',
        line: 12,
        message: /overlaps 10\.20\.0\.0\/16 of subnet "a" and they are in different zones/,
      },
    ],
  },
  {
    name: 'overlapping subnets on the same agent and zone are fine',
    doc: `${HEAD}subnets:\n  a: { cidr: 10.20.0.0/16, zone: n3, via: hosp }\n  b: { cidr: 10.20.5.0/24, zone: n3, via: hosp }\n`,
    errors: [],
  },
  {
    name: 'a subnet listing overlapping prefixes',
    doc: `${HEAD}subnets:\n  a: { cidr: [10.20.0.0/16, 10.20.5.0/24], zone: n3, via: hosp }\n`,
    errors: [{ path: 'subnets.a.cidr[1]', line: 11, message: /overlaps 10\.20\.0\.0\/16, already listed/ }],
  },
  {
    name: 'group cycle',
    doc: `${HEAD}${SUBNETS}groups:\n  g1: [records, g2]\n  g2: [g3]\n  g3: [g1]\n`,
    errors: [{ path: 'groups.g1', line: 14, message: /groups form a cycle: g1 -> g2 -> g3 -> g1/ }],
  },
  {
    name: 'unknown group member with suggestion',
    doc: `${HEAD}${SUBNETS}groups:\n  g1:\n    members: [records, socal-care]\n`,
    errors: [
      {
        path: 'groups.g1.members[1]',
        line: 15,
        message: /unknown subnet or group "socal-care".*did you mean "social-care"/,
      },
    ],
  },
  {
    name: 'a subnet and a group with the same name',
    doc: `${HEAD}${SUBNETS}groups:\n  records: [social-care]\n`,
    errors: [{ path: 'groups.records', line: 14, message: /both a subnet and a group/ }],
  },
  {
    name: 'unknown name in a rule with suggestion',
    doc: `${HEAD}${SUBNETS}rules:\n  - name: r\n    from: [socialcare]\n    to: records\n    ports: tcp/443\n`,
    errors: [
      {
        path: 'rules[0].from[0]',
        line: 15,
        message: /unknown subnet or group "socialcare".*did you mean "social-care"/,
      },
    ],
  },
  {
    name: 'rule from and to the same subnet',
    doc: `${HEAD}${SUBNETS}rules:\n  - { name: r, from: records, to: records, ports: tcp/443 }\n`,
    errors: [{ path: 'rules[0].to', line: 14, message: /from and to the same subnet "records"/ }],
  },
  {
    name: 'missing rule fields',
    doc: `${HEAD}${SUBNETS}rules:\n  - { name: r, from: records }\n`,
    errors: [
      { path: 'rules[0]', line: 14, message: /missing "to"/ },
      { path: 'rules[0]', line: 14, message: /missing "ports"/ },
    ],
  },
  {
    name: 'invalid ports, each reported',
    doc: `${HEAD}${SUBNETS}rules:
  - name: r
    from: social-care
    to: records
    ports:
      - tcp/70000
      - tcp/90-80
      - 443
      - icmp/8
      - http
`,
    errors: [
      { path: 'rules[0].ports[0]', line: 18, message: /port must be a number 1-65535/ },
      { path: 'rules[0].ports[1]', line: 19, message: /range is backwards \(write tcp\/80-90\)/ },
      { path: 'rules[0].ports[2]', line: 20, message: /port 443 needs a protocol: write tcp\/443/ },
      { path: 'rules[0].ports[3]', line: 21, message: /icmp takes no port/ },
      { path: 'rules[0].ports[4]', line: 22, message: /"http" is not a port/ },
    ],
  },
  {
    name: 'governance: cross-zone rule with ports any needs a ticket',
    doc: `${HEAD}${SUBNETS}rules:\n  - { name: r, from: social-care, to: records, ports: any }\n`,
    errors: [
      { path: 'rules[0].ports', line: 14, message: /crosses zones \(psn -> n3\) with ports "any": add a "ticket"/ },
    ],
  },
  {
    name: 'governance: with a ticket it passes',
    doc: `${HEAD}${SUBNETS}rules:\n  - { name: r, from: social-care, to: records, ports: any, ticket: CHG-1 }\n`,
    errors: [],
  },
  {
    name: 'governance: same-zone any needs no ticket',
    doc: `${HEAD}${SUBNETS}  lab: { cidr: 10.21.0.0/24, zone: n3, via: hosp }\nrules:\n  - { name: r, from: lab, to: records, ports: any }\n`,
    errors: [],
  },
  {
    name: 'test with an unknown subnet and a bad expect',
    doc: `${HEAD}${SUBNETS}tests:\n  - { from: recrods, to: 10.60.1.10, port: 443, expect: maybe }\n`,
    errors: [
      {
        path: 'tests[0].from',
        line: 14,
        message: /"recrods" is neither an IP address nor a subnet name \(did you mean "records"\?\)/,
      },
      { path: 'tests[0].expect', line: 14, message: /expect must be "allow" or "deny"/ },
    ],
  },
  {
    name: 'test: a flow cannot mix IPv6 and IPv4 (it would pass as allow)',
    doc: `${HEAD}${SUBNETS}rules:\n  - { name: r, from: social-care, to: records, ports: [tcp/443] }\ntests:\n  - { from: "fd00:60:1::10", to: 10.20.1.10, port: 443, expect: allow }\n  - { from: "fd00:60:1::10", to: records, port: 443, expect: allow }\n  - { from: 10.60.1.10, to: 10.20.1.10, port: 443, expect: allow }\n`,
    errors: [
      {
        path: 'tests[0].to',
        line: 16,
        message: /a flow cannot mix IPv6 and IPv4: from fd00:60:1::10 is IPv6, to 10\.20\.1\.10 is IPv4/,
      },
      { path: 'tests[1].to', line: 17, message: /fd00:60:1::10 is IPv6, and to subnet "records" has no IPv6 prefix/ },
    ],
  },
  {
    name: 'test: tcp needs a port, icmp has none',
    doc: `${HEAD}${SUBNETS}tests:\n  - { from: social-care, to: records, proto: tcp, expect: deny }\n  - { from: social-care, to: records, proto: icmp, port: 8, expect: deny }\n`,
    errors: [
      { path: 'tests[0]', line: 14, message: /tcp needs a port/ },
      { path: 'tests[1].port', line: 15, message: /icmp has no port/ },
    ],
  },
  {
    name: 'probe that the policy refuses',
    doc: `${HEAD}${SUBNETS}rules:\n  - name: r\n    from: social-care\n    to: records\n    ports: tcp/443\n    probes:\n      - { to: 10.20.1.10, port: 22, proto: tcp }\n`,
    errors: [{ path: 'rules[0].probes[0]', line: 19, message: /expects allow, but the policy denies it/ }],
  },
  {
    name: 'deny probe that the policy allows',
    doc: `${HEAD}${SUBNETS}rules:\n  - name: r\n    from: social-care\n    to: records\n    ports: tcp/443\n    probes:\n      - { to: 10.20.1.10, port: 443, expect: deny }\n`,
    errors: [{ path: 'rules[0].probes[0]', line: 19, message: /expects deny, but the policy allows it/ }],
  },
  {
    name: 'probe target must be an address; probe from must be in the rule',
    doc: `${HEAD}${SUBNETS}rules:\n  - name: r\n    from: social-care\n    to: records\n    ports: tcp/443\n    probes:\n      - { to: records, port: 443 }\n      - { from: records, to: 10.20.1.10, port: 443 }\n`,
    errors: [
      { path: 'rules[0].probes[0].to', line: 19, message: /probe target must be an IP address/ },
      { path: 'rules[0].probes[1].from', line: 20, message: /probe "from" must be a subnet of the rule's from/ },
    ],
  },
  {
    name: 'JSON is accepted',
    doc: JSON.stringify({
      version: 1,
      zones: { n3: {} },
      subnets: { a: { cidr: '10.1.0.0/16', zone: 'n3', via: ['x'] } },
    }),
    errors: [],
  },
  {
    name: 'wrong types',
    doc: 'version: 1\nzones: [n3]\nrules: {}\n',
    errors: [
      { path: 'zones', line: 2, message: /must be a map of zone by name/ },
      { path: 'rules', line: 3, message: /rules must be a list/ },
    ],
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const r = parsePolicy(c.doc, c.opts);
    if (c.errors.length === 0) {
      t.same(r.errors, undefined, 'no errors');
      t.ok(r.policy, 'valid');
      return;
    }
    t.notOk(r.policy, 'rejected');
    const got = r.errors ?? [];
    t.equal(got.length, c.errors.length, `error count: ${JSON.stringify(got)}`);
    c.errors.forEach((want, i) => {
      const e = got[i];
      if (!e) return;
      t.equal(e.path, want.path, `path of error ${i}`);
      t.match(e.message, want.message, `message of error ${i}`);
      if (want.line !== undefined) t.equal(e.line, want.line, `line of error ${i}`);
    });
  });
}

t.test('all errors at once, in document order', async (t) => {
  const doc = `${HEAD}subnets:
  a: { cidr: 10.20.1.5/24, zone: n33, via: hopp }
  b: { cidr: 0.0.0.0/0, zone: n3, via: hosp }
rules:
  - { name: r, from: a, to: zz, ports: [tcp/0] }
`;
  const r = parsePolicy(doc);
  const lines = (r.errors ?? []).map((e) => e.line);
  t.equal(r.errors?.length, 6, JSON.stringify(r.errors));
  t.same(
    lines,
    [...lines].sort((x, y) => (x ?? 0) - (y ?? 0)),
    'sorted by line',
  );
});

t.test('validated policy is normalized', async (t) => {
  const r = parsePolicy(
    `${HEAD}${SUBNETS}rules:\n  - { name: r, from: social-care, to: records, ports: [tcp/443], probes: [{ to: 10.20.1.10, port: 443 }] }\ntests:\n  - { from: 10.60.1.10, to: records, port: 443, expect: allow }\n  - { from: social-care, to: records, expect: allow }\n`,
  );
  t.ok(r.policy);
  const p = r.policy!;
  t.same(
    p.subnets.map((s) => s.name),
    ['records', 'social-care'],
  );
  t.same(p.subnets[1]?.cidrs, ['10.60.1.0/24', 'fd00:60:1::/64']);
  t.same(p.rules[0]?.probes[0], { from: 'social-care', to: '10.20.1.10', proto: 'tcp', port: 443, expect: 'allow' });
  t.same(p.tests[0], { from: '10.60.1.10', to: 'records', proto: 'tcp', port: 443, expect: 'allow' });
  t.same(p.tests[1], { from: 'social-care', to: 'records', expect: 'allow' }, 'no proto, no port: any traffic');
});

t.test('subnet gateway: one address per family inside the cidr, with its prefix length', async (t) => {
  const ok = parsePolicy(`${HEAD}subnets:
  records: { cidr: [10.20.1.0/24, fd00:20:1::/64], zone: n3, via: [hosp, hosp-standby], gateway: [fd00:20:1::1, 10.20.1.1] }
  dns: { cidr: 10.20.2.0/28, zone: n3, via: [hosp, hosp-standby], gateway: 10.20.2.14 }
  social-care: { cidr: 10.60.1.0/24, zone: psn, via: council }
`);
  t.ok(ok.policy, JSON.stringify(ok.errors));
  t.same(
    ok.policy!.subnets.map((s) => s.gateways),
    [['10.20.2.14/28'], ['10.20.1.1/24', 'fd00:20:1::1/64'], undefined],
  );
  const bad: Array<[string, RegExp]> = [
    ['10.20.2.1', /not inside the subnet's cidr \(10\.20\.1\.0\/24\)/],
    ['10.20.1.0', /network address of 10\.20\.1\.0\/24/],
    ['10.20.1.255', /broadcast address of 10\.20\.1\.0\/24/],
    ['10.20.1.1/24', /not an IP address \(write it without a prefix length/],
    ['[10.20.1.1, 10.20.1.2]', /at most one IPv4 gateway; 10\.20\.1\.2 is a second one/],
    ['[]', /gateway must give an address/],
  ];
  for (const [value, message] of bad) {
    const r = parsePolicy(
      `${HEAD}subnets:\n  records: { cidr: 10.20.1.0/24, zone: n3, via: [hosp], gateway: ${value} }\n`,
    );
    t.notOk(r.policy, value);
    const e = (r.errors ?? [])[0];
    t.match(e?.message, message, value);
    t.match(e?.path, /^subnets\.records\.gateway/, `${value}: path`);
    t.equal(e?.line, 11, `${value}: line`);
  }
});

t.test('underlays: agents on named underlays, relays, and every permitted flow has a path', async (t) => {
  const head = (agents: string, underlays = '  n3-wan: { description: N3 WAN }\n  psn-wan: {}\n') => `version: 1
underlays:
${underlays}zones:
  n3: {}
  psn: {}
agents:
${agents}subnets:
  gp-lan: { cidr: 10.30.1.0/24, zone: n3, via: gp }
  council-lan: { cidr: 10.50.1.0/24, zone: psn, via: council }
rules:
  - { name: gp-to-council, from: gp-lan, to: council-lan, ports: tcp/443 }
`;
  const ok = parsePolicy(
    head(
      '  gp: { zones: [n3], underlays: [n3-wan] }\n  council: { zones: [psn], underlays: psn-wan }\n  hub: { zones: [n3, psn], underlays: [psn-wan, n3-wan], relay: true }\n',
    ),
  );
  t.ok(ok.policy, JSON.stringify(ok.errors));
  t.same(ok.policy!.underlays, [
    { name: 'n3-wan', description: 'N3 WAN' },
    { name: 'psn-wan', description: '' },
  ]);
  t.same(
    ok.policy!.agents.map((a) => [a.name, a.underlays, a.isRelay]),
    [
      ['council', ['psn-wan'], false],
      ['gp', ['n3-wan'], false],
      ['hub', ['n3-wan', 'psn-wan'], true],
    ],
  );

  const one = parsePolicy('version: 1\nunderlays: { wan: {} }\nzones: { n3: {} }\nagents: { a: { zones: [n3] } }\n');
  t.same(
    one.policy?.agents[0]?.underlays,
    ['wan'],
    'one declared underlay: agents sit on it unless they say otherwise',
  );
  const none = parsePolicy('version: 1\nzones: { n3: {} }\nagents: { a: { zones: [n3] } }\n');
  t.same(none.policy?.agents[0]?.underlays, ['default'], 'no underlays section: the one underlay "default"');
  t.same(none.policy?.underlays, []);

  const bad: Array<
    [
      string,
      string,
      Omit<ValidateOptions, 'locate'> | undefined,
      Array<{ path: string; line?: number; message: RegExp }>,
    ]
  > = [
    [
      'no path: a flow between an n3-only and a psn-only box with no relay',
      head(
        '  gp: { zones: [n3], underlays: [n3-wan] }\n  council: { zones: [psn], underlays: [psn-wan] }\n  hub: { zones: [n3, psn], underlays: [n3-wan, psn-wan] }\n',
      ),
      undefined,
      [
        {
          path: 'rules[0]',
          line: 16,
          message:
            /rule "gp-to-council" needs gp \(n3-wan\) and council \(psn-wan\) to reach each other, but they share no underlay and no relay sits on both: name a box on n3-wan and psn-wan a relay/,
        },
      ],
    ],
    [
      'no path: the only relay has not consented (live)',
      head(
        '  gp: { zones: [n3], underlays: [n3-wan] }\n  council: { zones: [psn], underlays: [psn-wan] }\n  hub: { zones: [n3, psn], underlays: [n3-wan, psn-wan], relay: true }\n',
      ),
      { nonConsentingRelays: ['hub'] },
      [
        {
          path: 'rules[0]',
          message: /the relay that would join them \(hub\) has not consented: start its agent with --relay/,
        },
      ],
    ],
    [
      'unknown underlay on an agent, with a suggestion',
      head('  gp: { zones: [n3], underlays: [n3wan] }\n  council: { zones: [psn], underlays: [psn-wan] }\n'),
      undefined,
      [
        {
          path: 'agents.gp.underlays[0]',
          line: 9,
          message: /unknown underlay "n3wan".*did you mean "n3-wan".*declared: n3-wan, psn-wan/,
        },
      ],
    ],
    [
      'an agent must say where it sits when there are two underlays',
      head('  gp: { zones: [n3] }\n  council: { zones: [psn], underlays: [psn-wan] }\n'),
      undefined,
      [{ path: 'agents.gp', line: 9, message: /must say which underlays it sits on \(underlays: \[n3-wan, psn-wan\]/ }],
    ],
    [
      'a relay on one underlay',
      head(
        '  gp: { zones: [n3], underlays: [n3-wan], relay: true }\n  council: { zones: [psn], underlays: [n3-wan] }\n',
      ),
      undefined,
      [
        {
          path: 'agents.gp.relay',
          line: 9,
          message: /is a relay but sits on one underlay \(n3-wan\): a relay joins two underlays/,
        },
      ],
    ],
    [
      'relay is not a boolean',
      head(
        '  gp: { zones: [n3], underlays: [n3-wan] }\n  council: { zones: [psn], underlays: [n3-wan], relay: yes-please }\n',
      ),
      undefined,
      [{ path: 'agents.council.relay', line: 10, message: /relay must be true or false; got string "yes-please"/ }],
    ],
    [
      'an underlay listed twice, and an empty list',
      head('  gp: { zones: [n3], underlays: [n3-wan, n3-wan] }\n  council: { zones: [psn], underlays: [] }\n'),
      undefined,
      [
        { path: 'agents.gp.underlays[1]', message: /listed twice/ },
        { path: 'agents.council.underlays', message: /at least one underlay/ },
      ],
    ],
    [
      'underlays without the section',
      'version: 1\nzones: { n3: {} }\nagents: { a: { zones: [n3], underlays: [n3-wan] } }\n',
      undefined,
      [
        {
          path: 'agents.a.underlays[0]',
          line: 3,
          message: /unknown underlay "n3-wan": declare it under "underlays" first/,
        },
      ],
    ],
    [
      'bad underlay name and unknown field',
      'version: 1\nunderlays:\n  N3_WAN: {}\n  psn-wan: { desc: x }\n',
      undefined,
      [
        { path: 'underlays.N3_WAN', line: 3, message: /underlay name "N3_WAN" is invalid/ },
        { path: 'underlays.psn-wan.desc', line: 4, message: /unknown field "desc" in underlay "psn-wan"/ },
      ],
    ],
  ];
  for (const [name, doc, opts, errors] of bad) {
    const r = parsePolicy(doc, opts);
    t.notOk(r.policy, name);
    t.equal(r.errors?.length, errors.length, `${name}: ${JSON.stringify(r.errors)}`);
    errors.forEach((want, i) => {
      const e = r.errors?.[i];
      t.equal(e?.path, want.path, `${name}: path`);
      t.match(e?.message, want.message, `${name}: message`);
      if (want.line !== undefined) t.equal(e?.line, want.line, `${name}: line`);
    });
  }
  t.ok(
    parsePolicy(
      head(
        '  gp: { zones: [n3], underlays: [n3-wan] }\n  council: { zones: [psn], underlays: [psn-wan] }\n  hub: { zones: [n3, psn], underlays: [n3-wan, psn-wan], relay: true }\n  hub2: { zones: [n3, psn], underlays: [n3-wan, psn-wan], relay: true }\n',
      ),
      { nonConsentingRelays: ['hub'] },
    ).policy,
    'one refusing relay of two is no error: the other joins them',
  );
});

t.test('a damaged file answers with at most 50 errors, clipped, and a count of the rest', async (t) => {
  const keys = Array.from({ length: 200 }, (_, i) => `colour${i}: blue`).join('\n');
  const r = parsePolicy(`version: 1\n${keys}\n`);
  t.equal(r.errors?.length, 51);
  t.match(r.errors?.[0], { path: 'colour0', line: 2, message: /unknown/ });
  t.match(r.errors?.[50], { message: 'and 150 more errors (only the first 50 are listed; fix these first)' });
  const long = parsePolicy(`version: 1\nzones:\n  n3: { description: x, "${'y'.repeat(5000)}": 1 }\n`);
  t.ok(
    (long.errors ?? []).every((e) => e.message.length < 400 && (e.path ?? '').length < 400),
    'each message and path clipped',
  );
  t.match(long.errors?.[0]?.message, /… \(\d+ more characters\)/);
  t.same(parsePolicy('version: 1\nzones:\u0000\n').errors, [
    { path: '', line: 2, message: 'this is not a text file (it holds a NUL byte): a policy is YAML or JSON text' },
  ]);
});

t.test('thousands of unknown names: the shown errors keep their suggestions and lines, as plain data', async (t) => {
  const n = 3000;
  const subnets = Array.from(
    { length: n },
    (_, i) => `  s${i}: { cidr: 10.${i >> 8}.${i & 255}.0/24, zone: n3, via: [box-${i}x] }`,
  ).join('\n');
  const known = Array.from({ length: n }, (_, i) => `box-${i}`);
  const r = parsePolicy(`version: 1\nzones: { n3: {} }\nsubnets:\n${subnets}\n`, { knownAgents: known });
  t.equal(r.errors?.length, 51);
  t.match(r.errors?.[0], {
    path: 'subnets.s0.via[0]',
    line: 4,
    message: 'unknown agent "box-0x" (did you mean "box-0"?)',
  });
  t.match(r.errors?.[49], { path: 'subnets.s49.via[0]', line: 53, message: /did you mean "box-49"/ });
  t.equal(typeof Object.getOwnPropertyDescriptor(r.errors?.[0], 'message')?.value, 'string');
  t.match(r.errors?.[50], { message: `and ${n - 50} more errors (only the first 50 are listed; fix these first)` });
});
