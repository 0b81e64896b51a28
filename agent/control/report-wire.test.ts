// The report's hand-encoded lists against protobuf-es: what the controller decodes from a request
// carrying them is the message the lists describe, for any values; unchanged entries reuse their
// bytes from one report to the next; entries gone are forgotten.
import t from 'tap';
import fc from 'fast-check';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  PeerStatusSchema,
  ReportRequestSchema,
  RuleCounterSchema,
  type PeerStatus,
  type RuleCounter,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import { encodePeerStatus, encodeRuleCounter, ReportWire } from './report-wire.js';

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const peer = fc
  .record({
    name: fc.string(),
    publicKey: fc.string({ minLength: 1 }),
    endpoint: fc.string(),
    latestHandshakeUnix: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
    rxBytes: u64,
    txBytes: u64,
    isReachable: fc.boolean(),
    rttMs: fc.double({ noNaN: true, noDefaultInfinity: true }),
    lossRatio: fc.double({ min: 0, max: 1, noNaN: true }),
    isProbed: fc.boolean(),
  })
  .map((p) => create(PeerStatusSchema, p));
const counter = fc
  .record({
    rule: fc.string(),
    direction: fc.constantFrom('outbound', 'inbound', 'local', ''),
    connections: u64,
    packets: u64,
    bytes: u64,
  })
  .map((c) => create(RuleCounterSchema, c));

/** What the controller reads from the request the wire builds, after Connect's client has
 *  normalized it (create(schema, input): an init object would lose its unknown fields there). */
function decoded(peers: PeerStatus[], counters: RuleCounter[], wire = new ReportWire()) {
  const req = wire.request({ agentVersion: '1.2.3', generationApplied: 7n }, peers, counters);
  const sent = create(ReportRequestSchema, req);
  return fromBinary(ReportRequestSchema, toBinary(ReportRequestSchema, sent));
}

t.test('any peers and rule counters decode as the lists they came from', async (t) => {
  fc.assert(
    fc.property(
      fc.uniqueArray(peer, { selector: (p) => p.publicKey, maxLength: 8 }),
      fc.array(counter, { maxLength: 8 }),
      (peers, counters) => {
        const got = decoded(peers, counters);
        const want = create(ReportRequestSchema, {
          agentVersion: '1.2.3',
          generationApplied: 7n,
          peers,
          ruleCounters: counters,
        });
        // -0 is written by neither encoder (proto3 leaves zero out) and reads back as 0.
        const norm = (m: unknown) =>
          JSON.stringify(m, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v === 0 ? 0 : v));
        return norm(got) === norm(want);
      },
    ),
    { numRuns: 300 },
  );
  t.pass('300 generated reports decoded as their lists');
});

t.test('the bytes of one entry are the ones protobuf-es writes', async (t) => {
  const p = create(PeerStatusSchema, {
    name: 'civic-hall',
    publicKey: 'k'.repeat(44),
    endpoint: '[2001:db8::1]:51820',
    latestHandshakeUnix: 1_733_500_000n,
    rxBytes: 12_345n,
    txBytes: 0n,
    isReachable: true,
    rttMs: 0.42,
    lossRatio: 0.1,
    isProbed: true,
  });
  const framed = encodePeerStatus(p);
  t.same([...framed.subarray(1)], [...toBinary(PeerStatusSchema, p)], 'payload after its length');
  t.equal(framed[0], framed.length - 1, 'one-byte length prefix');
  const c = create(RuleCounterSchema, { rule: 'r1', direction: 'inbound', connections: 3n, packets: 0n, bytes: 99n });
  t.same([...encodeRuleCounter(c).subarray(1)], [...toBinary(RuleCounterSchema, c)]);
});

t.test('unchanged entries reuse their bytes; changed ones are encoded again; gone ones forgotten', async (t) => {
  const wire = new ReportWire();
  const a = create(PeerStatusSchema, { name: 'a', publicKey: 'A', rxBytes: 1n });
  const b = create(PeerStatusSchema, { name: 'b', publicKey: 'B', rxBytes: 2n });
  const r = create(RuleCounterSchema, { rule: 'r', direction: 'outbound', packets: 5n });
  const first = wire.encode([a, b], [r]);
  t.equal(wire.size, 3);
  const second = wire.encode([a, create(PeerStatusSchema, { ...b, rxBytes: 3n })], [create(RuleCounterSchema, r)]);
  t.equal(second[0], first[0], 'a unchanged: the same field object');
  t.not(second[1], first[1], 'b changed: new bytes');
  t.equal(second[2], first[2], 'an equal counter in a new object: the same bytes');
  const third = wire.encode([b], []);
  t.equal(wire.size, 1, 'a and the counter are forgotten');
  t.equal(third.length, 1);
  t.same(
    decoded([a], [r], wire).peers.map((p) => p.name),
    ['a'],
  );
});
