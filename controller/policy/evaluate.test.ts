// evaluate(): table of flows against the Leeds example.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { evaluate, familyMismatch, type EvalProtocol } from './evaluate.js';
import { parsePolicy } from './validate.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const r = parsePolicy(readFileSync(join(root, 'examples', 'leeds.yaml'), 'utf8'));
if (!r.policy) throw new Error(JSON.stringify(r.errors));
const policy = r.policy;

const cases: Array<{
  from: string;
  to: string;
  proto: EvalProtocol;
  port?: number;
  decision: 'allow' | 'deny';
  rule?: string;
  reason?: RegExp;
}> = [
  {
    from: '10.60.1.10',
    to: '10.20.1.10',
    proto: 'tcp',
    port: 443,
    decision: 'allow',
    rule: 'social-care-to-care-records',
    reason: /allowed by rule "social-care-to-care-records" \(tcp\/443, icmp from adult-social-care to care-records\)/,
  },
  {
    from: '10.60.1.10',
    to: '10.20.1.10',
    proto: 'tcp',
    port: 22,
    decision: 'deny',
    reason:
      /no rule allows tcp\/22 from 10\.60\.1\.10 \(adult-social-care\) to 10\.20\.1\.10 \(care-records\); rule "social-care-to-care-records" allows only tcp\/443, icmp/,
  },
  { from: '10.60.1.10', to: '10.20.1.10', proto: 'icmp', decision: 'allow', rule: 'social-care-to-care-records' },
  { from: '10.60.1.10', to: '10.20.1.10', proto: 'udp', port: 443, decision: 'deny' },
  {
    from: 'fd00:60:1::10',
    to: 'fd00:20:1::10',
    proto: 'tcp',
    port: 443,
    decision: 'allow',
    rule: 'social-care-to-care-records',
  },
  { from: '10.20.1.10', to: '10.60.1.10', proto: 'tcp', port: 443, decision: 'deny', reason: /no rule allows/ },
  {
    from: '10.20.1.20',
    to: '10.60.1.10',
    proto: 'tcp',
    port: 2575,
    decision: 'allow',
    rule: 'hl7-discharge-to-social-care',
  },
  { from: '10.30.1.10', to: '10.20.1.10', proto: 'tcp', port: 443, decision: 'allow', rule: 'gp-to-care-records' },
  { from: 'gp-chapeltown-lan', to: 'lcc-civic-hall-lan', proto: 'any', decision: 'deny' },
  {
    from: 'hub-n3-lan',
    to: 'lcc-civic-hall-lan',
    proto: 'any',
    decision: 'allow',
    rule: 'hub-nhs-to-council-casework',
  },
  { from: 'gp-armley-lan', to: 'lth-dns', proto: 'udp', port: 53, decision: 'allow', rule: 'n3-dns' },
  { from: '10.31.1.99', to: '10.20.2.5', proto: 'tcp', port: 53, decision: 'allow', rule: 'n3-dns' },
  {
    from: '10.41.1.10',
    to: '10.40.1.50',
    proto: 'tcp',
    port: 9100,
    decision: 'allow',
    rule: 'hub-council-to-nhs-printers',
  },
  { from: '10.40.1.50', to: '10.41.1.10', proto: 'tcp', port: 9100, decision: 'deny' },
  {
    from: '10.99.0.1',
    to: '10.20.1.10',
    proto: 'tcp',
    port: 443,
    decision: 'deny',
    reason: /10\.99\.0\.1 is not in any subnet/,
  },
  { from: '10.20.1.10', to: '10.20.1.20', proto: 'tcp', port: 2575, decision: 'deny', reason: /same subnet/ },
];

for (const c of cases) {
  t.test(`${c.from} -> ${c.to} ${c.proto}${c.port ? `/${c.port}` : ''} = ${c.decision}`, async (t) => {
    const d = evaluate(policy, c.from, c.to, c.proto, c.port);
    t.equal(d.decision, c.decision);
    t.equal(d.rule, c.rule);
    if (c.reason) t.match(d.reason, c.reason);
  });
}

t.test('an unknown name is an invalid_request with a suggestion', async (t) => {
  t.throws(() => evaluate(policy, 'care-record', '10.60.1.10', 'tcp', 443), {
    code: 'invalid_request',
    message: /did you mean "care-records"/,
  });
});

t.test('familyMismatch: a flow is IPv4 or IPv6 end to end', async (t) => {
  const fams = new Map<string, ReadonlySet<4 | 6>>([
    ['v4', new Set([4])],
    ['v6', new Set([6])],
    ['dual', new Set([4, 6])],
  ]);
  const of = (n: string) => fams.get(n);
  const rows: Array<[string, string, RegExp | null]> = [
    ['10.0.0.1', '10.0.0.2', null],
    ['fd00::1', 'fd00::2', null],
    ['fd00::1', '10.0.0.2', /cannot mix IPv6 and IPv4: from fd00::1 is IPv6, to 10\.0\.0\.2 is IPv4/],
    ['10.0.0.1', 'fd00::2', /cannot mix IPv4 and IPv6: from 10\.0\.0\.1 is IPv4, to fd00::2 is IPv6/],
    ['fd00::1', 'dual', null],
    ['fd00::1', 'v4', /fd00::1 is IPv6, and to subnet "v4" has no IPv6 prefix/],
    ['v6', '10.0.0.2', /10\.0\.0\.2 is IPv4, and from subnet "v6" has no IPv4 prefix/],
    ['v4', 'v6', /subnets "v4" \(IPv4\) and "v6" \(IPv6\) share no address family/],
    ['v4', 'dual', null],
    ['unknown', '10.0.0.2', null],
  ];
  for (const [from, to, want] of rows) {
    const got = familyMismatch(from, to, of);
    if (want === null) t.equal(got, null, `${from} -> ${to}: fine`);
    else t.match(got, want, `${from} -> ${to}`);
  }
});
