import t from 'tap';
import { FlowTracker, parseConntrackEvent } from './conntrack-events.js';
import type { RuleMark } from '../host/firewall-names.js';

// Lines as conntrack-tools 1.4.7 prints them (`conntrack -E -o id,timestamp`), from a namespace run.
const NEW =
  '[1796506977.249464]\t    [NEW] tcp      6 120 SYN_SENT src=10.1.0.2 dst=10.2.0.2 sport=52478 dport=8080 [UNREPLIED] src=10.2.0.2 dst=10.1.0.2 sport=8080 dport=52478 mark=1668808706 id=2188948634';
const ESTABLISHED =
  '[1796506977.250743]\t [UPDATE] tcp      6 432000 ESTABLISHED src=10.1.0.2 dst=10.2.0.2 sport=52478 dport=8080 src=10.2.0.2 dst=10.1.0.2 sport=8080 dport=52478 [ASSURED] mark=1668808706 id=2188948634';
const TIME_WAIT =
  '[1796506977.950805]\t [UPDATE] tcp      6 120 TIME_WAIT src=10.1.0.2 dst=10.2.0.2 sport=52478 dport=8080 src=10.2.0.2 dst=10.1.0.2 sport=8080 dport=52478 [ASSURED] mark=1668808706 id=2188948634';
const DESTROY =
  '[1796507097.297271]\t[DESTROY] tcp      6 118 TIME_WAIT src=10.1.0.2 dst=10.2.0.2 sport=52478 dport=8080 packets=7 bytes=100372 src=10.2.0.2 dst=10.1.0.2 sport=8080 dport=52478 packets=4 bytes=216 [ASSURED] mark=1668808706 delta-time=120 id=2188948634 [USERSPACE] portid=3823823805';
const ICMP =
  '[1796506980.000100]\t[DESTROY] icmp     1 29 src=10.1.0.2 dst=10.2.0.2 type=8 code=0 id=77 packets=3 bytes=252 src=10.2.0.2 dst=10.1.0.2 type=0 code=0 id=77 packets=3 bytes=252 mark=1668808707 delta-time=3 id=99';
const V6 =
  '[1796506981.500000]\t    [NEW] udp      17 30 src=fd00:1::2 dst=fd00:2::2 sport=5000 dport=53 [UNREPLIED] src=fd00:2::2 dst=fd00:1::2 sport=53 dport=5000 mark=1668808706 id=5';

const marks = new Map<number, RuleMark>([
  [1668808706, { direction: 'outbound', rule: 'a-to-b-web', mark: 1668808706 }],
  [1668808707, { direction: 'inbound', rule: 'ward-ping', mark: 1668808707 }],
]);

t.test('event lines: type, time, original tuple, both counters, mark, conntrack id', async (t) => {
  t.match(parseConntrackEvent(NEW), {
    type: 'NEW',
    atMs: 1796506977249,
    protocol: 6,
    state: 'SYN_SENT',
    src: '10.1.0.2',
    dst: '10.2.0.2',
    sport: 52478,
    dport: 8080,
    mark: 1668808706,
    id: '2188948634',
    packets: 0,
  });
  t.match(parseConntrackEvent(DESTROY), {
    type: 'DESTROY',
    packets: 7,
    bytes: 100372,
    replyPackets: 4,
    replyBytes: 216,
    deltaSeconds: 120,
    id: '2188948634',
  });
  t.match(parseConntrackEvent(ICMP), { protocol: 1, state: '', id: '99', sport: 0, packets: 3, replyBytes: 252 });
  t.match(parseConntrackEvent(V6), { src: 'fd00:1::2', dst: 'fd00:2::2', protocol: 17, dport: 53 });
  for (const bad of ['', 'conntrack v1.4.7 (conntrack-tools): 5 flow events have been shown.', '[1.0]\t[WHAT] tcp 6'])
    t.equal(parseConntrackEvent(bad), null, JSON.stringify(bad));
});

t.test('a flow: start at NEW, end when both sides were done, counters at DESTROY', async (t) => {
  const tr = new FlowTracker({ box: 'gp', marks: () => marks });
  for (const l of [NEW, ESTABLISHED, TIME_WAIT]) t.equal(tr.feed(parseConntrackEvent(l)!), null);
  t.equal(tr.openFlows, 1);
  const r = tr.feed(parseConntrackEvent(DESTROY)!);
  t.same(r, {
    startMs: 1796506977249,
    endMs: 1796506977950,
    protocol: 6,
    srcAddress: '10.1.0.2',
    srcPort: 52478,
    dstAddress: '10.2.0.2',
    dstPort: 8080,
    packets: 7,
    bytes: 100372,
    replyPackets: 4,
    replyBytes: 216,
    rule: 'a-to-b-web',
    direction: 'outbound',
    verdict: 'allowed',
    srcZone: '',
    dstZone: '',
    box: 'gp',
  });
  t.equal(tr.openFlows, 0);
});

t.test('the rule is the one of the flow start, even after a policy change', async (t) => {
  let current: ReadonlyMap<number, RuleMark> = marks;
  const tr = new FlowTracker({ box: 'gp', marks: () => current });
  tr.feed(parseConntrackEvent(NEW)!);
  current = new Map();
  t.match(tr.feed(parseConntrackEvent(DESTROY)!), { rule: 'a-to-b-web' });
});

t.test('a flow whose start was missed: start from delta-time; a foreign mark: no record', async (t) => {
  const tr = new FlowTracker({ box: 'gp', marks: () => marks });
  t.match(tr.feed(parseConntrackEvent(ICMP)!), { startMs: 1796506977000, endMs: 1796506980000, rule: 'ward-ping' });
  t.equal(tr.feed(parseConntrackEvent(DESTROY.replace('mark=1668808706', 'mark=1668808799'))!), null);
});

t.test('at most maxOpen flows followed at once', async (t) => {
  const tr = new FlowTracker({ box: 'gp', marks: () => marks, maxOpen: 1 });
  tr.feed(parseConntrackEvent(NEW)!);
  tr.feed(parseConntrackEvent(V6)!);
  t.equal(tr.openFlows, 1);
  t.equal(tr.dropped, 1);
});

t.test('without UPDATE events a TCP flow ends at its DESTROY less the wait after the close', async (t) => {
  const timeouts = { timeWait: 120, close: 10 };
  // Deleted by hand 2 s into TIME_WAIT (118 s left): it closed 2 s before.
  const tr = new FlowTracker({ box: 'gp', marks: () => marks, tcpTimeouts: timeouts });
  tr.feed(parseConntrackEvent(NEW)!);
  t.match(tr.feed(parseConntrackEvent(DESTROY)!), { startMs: 1796506977249, endMs: 1796507097297 - 2000 });
  // Timed out (no timeout left on the line): the whole TIME_WAIT before it.
  const expired = DESTROY.replace('6 118 TIME_WAIT', '6 TIME_WAIT').replace(
    '[1796507097.297271]',
    '[1796507100.000000]',
  );
  t.equal(parseConntrackEvent(expired)!.timeoutLeft, null);
  t.equal(parseConntrackEvent(DESTROY)!.timeoutLeft, 118);
  tr.feed(parseConntrackEvent(NEW)!);
  t.match(tr.feed(parseConntrackEvent(expired)!), { endMs: 1796507100000 - 120_000 });
  // Never before the start (a TIME_WAIT shorter than the box's setting says).
  tr.feed(parseConntrackEvent(NEW)!);
  const soon = expired.replace('[1796507100.000000]', '[1796506978.000000]');
  t.match(tr.feed(parseConntrackEvent(soon)!), { startMs: 1796506977249, endMs: 1796506977249 });
  // A flow deleted while established, and UDP: the DESTROY is the end.
  tr.feed(parseConntrackEvent(NEW)!);
  t.match(tr.feed(parseConntrackEvent(DESTROY.replace('118 TIME_WAIT', '431000 ESTABLISHED'))!), {
    endMs: 1796507097297,
  });
  t.match(tr.feed(parseConntrackEvent(ICMP)!), { endMs: 1796506980000 });
  // An UPDATE into TIME_WAIT, when seen, wins.
  tr.feed(parseConntrackEvent(NEW)!);
  tr.feed(parseConntrackEvent(TIME_WAIT)!);
  t.match(tr.feed(parseConntrackEvent(DESTROY)!), { endMs: 1796506977950 });
});

t.test('map-to: a record names the mapped address, with the real one beside it', async (t) => {
  // On the gp box (10.1.1.0/24 mapped to 10.201.1.0/24): gp host -> hub, leaving as 10.201.1.10,
  // and hub -> gp host, arriving for 10.201.1.10.
  const out =
    '[1796507097.297271]\t[DESTROY] tcp      6 118 TIME_WAIT src=10.1.1.10 dst=10.9.0.2 sport=40000 dport=8080 packets=5 bytes=300 src=10.9.0.2 dst=10.201.1.10 sport=8080 dport=40000 packets=4 bytes=216 [ASSURED] mark=1668808706 delta-time=1 id=7';
  const inb =
    '[1796507097.297271]\t[DESTROY] tcp      6 118 TIME_WAIT src=10.9.0.2 dst=10.201.1.10 sport=40001 dport=8080 packets=5 bytes=300 src=10.1.1.10 dst=10.9.0.2 sport=8080 dport=40001 packets=4 bytes=216 [ASSURED] mark=1668808707 delta-time=1 id=8';
  t.match(parseConntrackEvent(out), {
    src: '10.1.1.10',
    dst: '10.9.0.2',
    replySrc: '10.9.0.2',
    replyDst: '10.201.1.10',
  });
  const tr = new FlowTracker({ box: 'gp', marks: () => marks });
  const o = tr.feed(parseConntrackEvent(out)!);
  t.match(o, { direction: 'outbound', srcAddress: '10.201.1.10', srcRealAddress: '10.1.1.10', dstAddress: '10.9.0.2' });
  t.equal(o?.dstRealAddress, undefined);
  const i = tr.feed(parseConntrackEvent(inb)!);
  t.match(i, { direction: 'inbound', srcAddress: '10.9.0.2', dstAddress: '10.201.1.10', dstRealAddress: '10.1.1.10' });
  t.equal(i?.srcRealAddress, undefined);
  // Untranslated flows carry no real address.
  const plain = new FlowTracker({ box: 'gp', marks: () => marks }).feed(parseConntrackEvent(DESTROY)!);
  t.equal(plain?.srcRealAddress, undefined);
  t.equal(plain?.srcAddress, '10.1.0.2');
});
