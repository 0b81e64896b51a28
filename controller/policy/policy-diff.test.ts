// diffPolicies(): the policy-level changes a dry run shows, whatever the boxes are doing.
import t from 'tap';
import { diffPolicies } from './policy-diff.js';
import { parsePolicy } from './validate.js';

const BASE = `version: 1
zones:
  n3: { description: NHS }
  psn: { description: council }
agents:
  hosp: { zones: [n3] }
  council: { zones: [psn] }
subnets:
  records: { cidr: 10.20.1.0/24, zone: n3, via: hosp }
  social-care: { cidr: 10.60.1.0/24, zone: psn, via: council }
rules:
  - { name: care-records, from: social-care, to: records, ports: [tcp/443] }
  - { name: ping, from: social-care, to: records, ports: [icmp] }
tests:
  - { from: 10.60.1.10, to: 10.20.1.10, port: 443, expect: allow }
`;

const parse = (text: string) => {
  const r = parsePolicy(text);
  if (!r.policy) throw new Error(JSON.stringify(r.errors));
  return r.policy;
};

t.test('the same document: no change', async (t) => {
  t.same(diffPolicies(parse(BASE), parse(`${BASE}# a comment\n`)), []);
});

t.test('each kind of change, one line each', async (t) => {
  const rows: Array<[string, string, string[]]> = [
    [
      'a port added to a rule',
      BASE.replace('ports: [tcp/443]', 'ports: [tcp/443, tcp/8443]'),
      ['~ rule care-records: ports tcp/443 -> tcp/443, tcp/8443'],
    ],
    [
      'a rule removed',
      BASE.replace('  - { name: ping, from: social-care, to: records, ports: [icmp] }\n', ''),
      ['- rule ping'],
    ],
    [
      'a subnet added',
      BASE.replace('subnets:\n', 'subnets:\n  lab: { cidr: 10.21.0.0/24, zone: n3, via: hosp }\n'),
      ['+ subnet lab: cidr 10.21.0.0/24; zone n3; via hosp'],
    ],
    [
      'a subnet grew',
      BASE.replace('cidr: 10.20.1.0/24', 'cidr: 10.20.0.0/16'),
      ['~ subnet records: cidr 10.20.1.0/24 -> 10.20.0.0/16'],
    ],
    [
      'a group added',
      BASE.replace('rules:\n', 'groups:\n  everyone: { members: [records, social-care] }\nrules:\n'),
      ['+ group everyone: members records, social-care'],
    ],
    [
      'an agent moved zone',
      BASE.replace('hosp: { zones: [n3] }', 'hosp: { zones: [n3, psn] }'),
      ['~ agent hosp: zones n3 -> n3, psn'],
    ],
    [
      'rules reordered',
      BASE.replace(/( {2}- \{ name: care-records.*\n)( {2}- \{ name: ping.*\n)/, '$2$1'),
      ['~ rule order: ping, care-records'],
    ],
    [
      'a test added',
      `${BASE}  - { from: 10.20.1.10, to: 10.60.1.10, port: 22, expect: deny }\n`,
      ['+ test 10.20.1.10 -> 10.60.1.10 tcp/22 expect deny'],
    ],
  ];
  for (const [name, text, want] of rows) t.same(diffPolicies(parse(BASE), parse(text)), want, name);
});

t.test('no policy before: everything is added', async (t) => {
  const lines = diffPolicies(null, parse(BASE));
  t.same(
    lines.filter((l) => !l.startsWith('+ ')),
    [],
  );
  t.ok(lines.includes('+ rule care-records: from social-care; to records; ports tcp/443'));
  t.equal(lines.length, 2 + 2 + 2 + 2 + 1, 'zones, agents, subnets, rules, tests');
});
