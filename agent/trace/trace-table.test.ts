// The live trace's pure half: request checks, the temporary table per role, and the reading of
// `nft monitor trace` lines (in the format nft 1.0.6 prints them) and of the table's counters.
import t from 'tap';
import { create } from '@bufbuild/protobuf';
import { RelayForwardSchema, TraceRequestSchema, type TraceRequest } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { CROSSLINK_NFT_TABLE } from '../host/ports.js';
import {
  checkTraceRequest,
  CROSSLINK_TABLE,
  judgeTraceLines,
  leftoverTraceTables,
  parseTraceCounters,
  renderTraceTable,
} from './trace-table.js';

type ReqFields = Partial<Omit<TraceRequest, '$typeName' | '$unknown'>>;
const req = (o: ReqFields = {}) =>
  create(TraceRequestSchema, {
    id: '0123456789abcdef',
    role: 'destination',
    sourcePrefix: '10.30.1.0/24',
    target: '10.50.1.20',
    protocol: 'tcp',
    port: 443,
    sourcePort: 40001,
    windowMs: 2000,
    ...o,
  });

const ok = (o: Parameters<typeof req>[0] = {}) => {
  const c = checkTraceRequest(req(o));
  if (!c.ok) throw new Error(c.problem);
  return c;
};

t.equal(CROSSLINK_TABLE, CROSSLINK_NFT_TABLE, "the trace module names Crosslink's table as the host does");

t.test('bad requests name the field and never reach nft', async (t) => {
  const cases: Array<[Parameters<typeof req>[0], RegExp]> = [
    [{ id: 'x; flush ruleset' }, /^id: /],
    [{ role: 'sender' }, /^role: /],
    [{ target: '10.50.1.256' }, /^target: /],
    [{ target: 'host.example' }, /^target: /],
    [{ sourcePrefix: '10.30.1.0' }, /^source_prefix: /],
    [{ sourcePrefix: '2001:db8::/48' }, /^source_prefix: .*IPv4/],
    [{ protocol: 'any' }, /^protocol: /],
    [{ port: 0 }, /^port: /],
    [{ sourcePort: 80 }, /^source_port: /],
    [{ role: 'relay', peerA: 'gp', peerB: '' }, /^peer_a, peer_b: /],
  ];
  for (const [o, problem] of cases) {
    const c = checkTraceRequest(req(o));
    t.equal(c.ok, false, JSON.stringify(o));
    if (!c.ok) t.match(c.problem, problem);
  }
  t.match(ok({ protocol: 'icmp', port: 0, sourcePort: 0 }), { port: 0, sourcePort: 0 }, 'icmp needs no ports');
  t.equal(ok({ windowMs: 60_000 }).windowMs, 10_000, 'the window is clamped');
  t.equal(ok({ windowMs: 0 }).windowMs, 2000, '0: the default');
});

t.test('the table per role', async (t) => {
  const dest = renderTraceTable(ok(), {})!;
  t.match(dest, /^table inet crosslink_trace_0123456789abcdef \{\n/);
  t.match(dest, /type filter hook prerouting priority raw - 1; policy accept;/);
  t.match(
    dest,
    /ip saddr 10\.30\.1\.0\/24 ip daddr 10\.50\.1\.20 meta l4proto tcp th sport 40001 th dport 443 meta nftrace set 1 counter name "test_forward"/,
  );
  t.match(
    dest,
    /ip saddr 10\.50\.1\.20 ip daddr 10\.30\.1\.0\/24 meta l4proto tcp th sport 443 th dport 40001 counter name "test_back"/,
  );
  t.notMatch(dest.replace(/policy accept;/g, ''), /\b(accept|drop|reject)\b/, 'no rule of it has a verdict');
  const src = renderTraceTable(ok({ role: 'source' }), {})!;
  t.match(src, /hook output priority raw - 1;[^}]*daddr 10\.50\.1\.20 [^}]*"test_forward"/);
  t.notMatch(src, /nftrace/, 'the source only counts');
  const v6 = renderTraceTable(
    ok({ target: '2001:db8:5::20', sourcePrefix: '2001:db8:3::/64', protocol: 'icmp', port: 0, sourcePort: 0 }),
    {},
  )!;
  t.match(v6, /ip6 saddr 2001:db8:3::\/64 ip6 daddr 2001:db8:5::20 icmpv6 type echo-request meta nftrace set 1/);

  const forwards = [
    create(RelayForwardSchema, {
      source: '192.0.2.10:51820',
      listen: '192.0.2.1:40000',
      target: '198.51.100.20:51820',
      snat: '198.51.100.1:40001',
      fromAgent: 'gp',
      toAgent: 'civic',
    }),
    create(RelayForwardSchema, {
      source: '198.51.100.20:51820',
      listen: '198.51.100.1:40001',
      target: '192.0.2.10:51820',
      snat: '192.0.2.1:40000',
      fromAgent: 'civic',
      toAgent: 'gp',
    }),
  ];
  const relay = renderTraceTable(ok({ role: 'relay', peerA: 'gp', peerB: 'civic' }), { forwards })!;
  t.match(
    relay,
    /ip saddr 192\.0\.2\.10 udp sport 51820 ip daddr 192\.0\.2\.1 udp dport 40000 counter name "test_forward"/,
  );
  t.match(
    relay,
    /ip saddr 198\.51\.100\.20 udp sport 51820 ip daddr 198\.51\.100\.1 udp dport 40001 counter name "test_back"/,
  );
  const reversed = renderTraceTable(ok({ role: 'relay', peerA: 'gp', peerB: 'civic' }), { forwards: [forwards[1]!] })!;
  t.match(
    reversed,
    /ip saddr 192\.0\.2\.10 udp sport 51820 ip daddr 192\.0\.2\.1 udp dport 40000 counter name "test_forward"/,
    'from the mirror alone',
  );
  t.equal(
    renderTraceTable(ok({ role: 'relay', peerA: 'gp', peerB: 'other' }), { forwards }),
    null,
    'a pair it does not relay',
  );
});

const L = (s: string) =>
  s
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

t.test('trace lines: admitted by a rule, established, dropped by Crosslink or by another table', async (t) => {
  const admitted = L(`
    trace id 5a1b inet crosslink_trace_0123456789abcdef pre rule ip saddr 10.30.1.0/24 ip daddr 10.50.1.20 meta l4proto tcp th sport 40001 th dport 443 meta nftrace set 1 counter name "test_forward" (verdict continue)
    trace id 5a1b inet crosslink_trace_0123456789abcdef pre policy accept
    trace id 5a1b inet crosslink forward rule iifname "xl-civic" jump from_overlay (verdict jump from_overlay)
    trace id 5a1b inet crosslink from_overlay rule ct mark set ip saddr . ip daddr . meta l4proto . th dport map @in4_ports goto admitted (verdict goto admitted)
    trace id 5a1b inet crosslink admitted rule counter name ct mark map @rule_new (verdict continue)
    trace id 5a1b inet crosslink admitted rule accept (verdict accept)
    trace id 77aa inet crosslink forward rule ct state established,related accept (verdict accept)`);
  t.same(judgeTraceLines(admitted), {
    verdict: 'admitted',
    direction: 'inbound',
    isByRule: true,
    detail: 'admitted by a rule of the inbound chain',
  });
  t.match(judgeTraceLines(admitted.slice(-1)), { verdict: 'admitted', isByRule: false, detail: /established flow/ });

  const dropped = L(`
    trace id 9c trace id garbage
    trace id 9c0d inet crosslink forward rule iifname "xl-civic" jump from_overlay (verdict jump from_overlay)
    trace id 9c0d inet crosslink from_overlay rule limit rate 10/second burst 20 packets log group 25466 (verdict continue)
    trace id 9c0d inet crosslink from_overlay rule counter name "dropped_inbound" drop (verdict drop)`);
  t.same(judgeTraceLines(dropped), {
    verdict: 'dropped',
    direction: 'inbound',
    isByRule: false,
    detail: 'dropped by table inet crosslink chain from_overlay: no rule allows it (inbound; counter dropped_inbound)',
  });
  const foreign = L(`
    trace id 1 inet crosslink forward rule iifname "xl-civic" jump from_overlay (verdict jump from_overlay)
    trace id 1 inet crosslink admitted rule accept (verdict accept)
    trace id 1 ip filter FORWARD policy drop`);
  t.match(
    judgeTraceLines(foreign),
    { verdict: 'dropped', detail: "dropped by table ip filter chain FORWARD: the chain's policy is drop" },
    "another table's drop wins",
  );
  t.match(judgeTraceLines(['trace id 2 inet crosslink forward policy accept']), { verdict: 'passed' });
  t.match(judgeTraceLines([]), { verdict: 'not-seen' });
});

t.test('counters and leftovers', async (t) => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { counter: { family: 'inet', name: 'test_forward', table: 'x', packets: 3, bytes: 180 } },
      { counter: { family: 'inet', name: 'test_back', table: 'x', packets: 2, bytes: 120 } },
    ],
  });
  t.same(parseTraceCounters(json), { forward: { packets: 3, bytes: 180 }, back: { packets: 2, bytes: 120 } });
  t.same(parseTraceCounters('not json'), { forward: { packets: 0, bytes: 0 }, back: { packets: 0, bytes: 0 } });
  t.same(
    leftoverTraceTables(
      'table inet crosslink\ntable inet crosslink_trace_00000000000000ff\ntable ip filter\ntable ip crosslink_trace_x\n',
    ),
    ['crosslink_trace_00000000000000ff'],
  );
});
