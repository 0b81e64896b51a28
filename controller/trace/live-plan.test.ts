// planLiveTrace: which boxes a live test crosses and what each is asked, or why none is sent;
// liveBoxes: the answers in path order, silent boxes listed as such.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parsePolicy } from '../policy/validate.js';
import type { TraceEnd } from '../policy/trace.js';
import { liveBoxes, planLiveTrace } from './live-plan.js';

const policy = parsePolicy(readFileSync(new URL('../../examples/leeds.yaml', import.meta.url), 'utf8')).policy!;

const end = (address: string, subnet: string | null, servedBy: string | null): TraceEnd => ({
  address,
  subnet,
  zone: subnet ? 'z' : null,
  servedBy,
  unserved: servedBy ? null : 'both boxes are down',
  unconfirmed: null,
});
const social = end('fd00:60:1::10', 'adult-social-care', 'lcc-adult-social-care');
const records = end('fd00:20:1::5', 'care-records', 'lth-sjuh');
const relayed = {
  endpoint: '[2001:db8:2::5]:51901',
  relays: [
    { relay: 'nhs-shared-hub', endpoint: '[2001:db8:2::4]:51900' },
    { relay: 'hub-two', endpoint: '[2001:db8:2::5]:51901' },
  ],
};
const peer = (a: string, b: string) =>
  a === 'lcc-adult-social-care' && b === 'lth-sjuh'
    ? relayed
    : a === 'gp-chapeltown' && b === 'lth-sjuh'
      ? { endpoint: '192.0.2.1:51820', relays: [] }
      : null;

t.test(
  'relayed: source, the relay in use, destination; the source prefix is the one holding the address',
  async (t) => {
    const plan = planLiveTrace(policy, { from: social, to: records, proto: 'tcp', port: 443, path: null }, peer, 40001);
    t.ok('requests' in plan);
    if (!('requests' in plan)) return;
    t.same(
      plan.requests.map((r) => [r.agent, r.role, r.peerA, r.peerB]),
      [
        ['lcc-adult-social-care', 'source', '', ''],
        ['hub-two', 'relay', 'lcc-adult-social-care', 'lth-sjuh'],
        ['lth-sjuh', 'destination', '', ''],
      ],
      'the relay whose endpoint the source uses, not the first listed',
    );
    t.match(plan.requests[0], {
      sourcePrefix: 'fd00:60:1::/64',
      target: 'fd00:20:1::5',
      protocol: 'tcp',
      port: 443,
      sourcePort: 40001,
    });
  },
);

t.test('direct, same box, icmp, and the cases that send nothing', async (t) => {
  const gp = end('10.30.1.10', 'gp-chapeltown-lan', 'gp-chapeltown');
  const rec4 = end('10.20.1.5', 'care-records', 'lth-sjuh');
  const direct = planLiveTrace(policy, { from: gp, to: rec4, proto: 'icmp', port: null, path: null }, peer, 40001);
  t.same(
    'requests' in direct ? direct.requests.map((r) => [r.agent, r.role, r.port, r.sourcePort, r.sourcePrefix]) : direct,
    [
      ['gp-chapeltown', 'source', 0, 0, '10.30.1.0/24'],
      ['lth-sjuh', 'destination', 0, 0, '10.30.1.0/24'],
    ],
  );
  const dns = end('10.20.2.5', 'lth-dns', 'lth-sjuh');
  const same = planLiveTrace(policy, { from: rec4, to: dns, proto: 'udp', port: 53, path: null }, peer, 40001);
  t.same('requests' in same ? same.requests.map((r) => r.role) : same, ['source'], 'one box: it only sends');
  const cases: Array<[Parameters<typeof planLiveTrace>[1], RegExp]> = [
    [{ from: gp, to: rec4, proto: 'any', port: null, path: null }, /give --proto tcp, udp or icmp/],
    [
      { from: end('192.0.2.9', null, null), to: rec4, proto: 'tcp', port: 443, path: null },
      /192\.0\.2\.9 is in no subnet/,
    ],
    [
      { from: gp, to: end('10.20.1.5', 'care-records', null), proto: 'tcp', port: 443, path: null },
      /nobody serves subnet care-records: both boxes are down/,
    ],
    [{ from: rec4, to: gp, proto: 'tcp', port: 443, path: null }, /lth-sjuh has no peer gp-chapeltown/],
  ];
  for (const [r, why] of cases) {
    const p = planLiveTrace(policy, r, peer, 40001);
    t.match('notRun' in p ? p.notRun : 'ran', why);
  }
});

t.test('answers in path order; a silent box is "no-answer"', async (t) => {
  const plan = planLiveTrace(policy, { from: social, to: records, proto: 'tcp', port: 443, path: null }, peer, 40001);
  if (!('requests' in plan)) return t.fail('no plan');
  const answer = {
    verdict: 'admitted',
    rule: 'r',
    direction: 'inbound',
    packets: 2,
    bytes: 120,
    replyPackets: 2,
    replyBytes: 120,
    detail: 'd',
  };
  const boxes = liveBoxes(
    plan.requests,
    new Map([['lth-sjuh', answer]]),
    new Map([['hub-two', 'not connected to the controller: not asked']]),
    1500,
  );
  t.same(
    boxes.map((b) => [b.agent, b.verdict, b.detail]),
    [
      ['lcc-adult-social-care', 'no-answer', "no answer within 1500 ms of the window's end"],
      ['hub-two', 'no-answer', 'not connected to the controller: not asked'],
      ['lth-sjuh', 'admitted', 'd'],
    ],
  );
});
