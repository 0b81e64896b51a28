import t from 'tap';
import type { Advert } from './advert.js';
import { LivenessRunner, type LivenessTransport } from './runner.js';
import { decodeEcho, ECHO_PACKET_BYTES, encodeEcho, filterHolds, heldFilter } from './echo.js';

/** A clock and timers moved by hand. */
function manualTime() {
  let now = 0;
  let seq = 0;
  const pending = new Map<number, { at: number; fn: () => void }>();
  return {
    clock: { nowMs: () => now },
    timers: {
      setTimeout: (fn: () => void, ms: number) => {
        pending.set(++seq, { at: now + ms, fn });
        return seq;
      },
      clearTimeout: (h: unknown) => void pending.delete(h as number),
    },
    pendingCount: () => pending.size,
    advance(toMs: number) {
      for (;;) {
        const next = [...pending.entries()].sort((a, b) => a[1].at - b[1].at)[0];
        if (next === undefined || next[1].at > toMs) break;
        pending.delete(next[0]);
        now = next[1].at;
        next[1].fn();
      }
      now = toMs;
    },
  };
}

/** Two runners joined by a fake wire that can be cut. */
function pair() {
  const time = manualTime();
  const wire = { isCut: false };
  const ends: Array<{
    echo: Array<(a: string, p: Uint8Array) => void>;
    advert: Array<(a: string, ad: Advert) => void>;
  }> = [
    { echo: [], advert: [] },
    { echo: [], advert: [] },
  ];
  const adverts: Advert[] = [];
  const transport = (self: 0 | 1, selfAddress: string): LivenessTransport => ({
    sendEcho: (_address, packet) => {
      if (!wire.isCut) for (const cb of ends[1 - self]!.echo) cb(selfAddress, packet.slice());
    },
    sendAdvert: (_cidr, _if, advert) => {
      adverts.push(advert);
      for (const end of ends) for (const cb of end.advert) cb(selfAddress, advert);
    },
    onEcho: (cb) => void ends[self]!.echo.push(cb),
    onAdvert: (cb) => void ends[self]!.advert.push(cb),
    setPort: () => {},
    close: () => {},
  });
  const opts = {
    timing: { intervalMs: 100, multiplier: 3 },
    clock: time.clock,
    timers: time.timers,
    afterPendingIo: (fn: () => void) => fn(),
  };
  const a = new LivenessRunner({ ...opts, transport: transport(0, '100.64.0.1') });
  const b = new LivenessRunner({ ...opts, transport: transport(1, '100.64.0.2') });
  a.setPeers([{ name: 'b', address: '100.64.0.2' }]);
  b.setPeers([{ name: 'a', address: '100.64.0.1' }]);
  return { time, wire, a, b, adverts };
}

/** A transport that records the echoes sent and passes packets to the runner (deliver). */
function recordingTransport() {
  const sent: Uint8Array[] = [];
  let onEcho: ((address: string, packet: Uint8Array) => void) | null = null;
  const transport: LivenessTransport = {
    sendEcho: (_address, packet) => void sent.push(packet.slice()),
    sendAdvert: () => {},
    onEcho: (cb) => void (onEcho = cb),
    onAdvert: () => {},
    setPort: () => {},
    close: () => {},
  };
  return { transport, sent, deliver: (address: string, packet: Uint8Array) => onEcho!(address, packet) };
}

t.test('two runners go up, down when the wire is cut, up again', async (t) => {
  const { time, wire, a, b } = pair();
  const seen: string[][] = [];
  a.onChange((names) => seen.push(names));
  time.advance(300);
  t.equal(a.state('b'), 'up');
  t.equal(b.state('a'), 'up');
  t.same(seen, [['b']]);
  wire.isCut = true;
  time.advance(400);
  t.equal(a.state('b'), 'up', 'still up 100 ms after the cut');
  time.advance(800);
  t.equal(a.state('b'), 'down', 'down within 3 x 100 + 100 ms');
  t.equal(seen.length, 2);
  wire.isCut = false;
  time.advance(1000);
  t.equal(a.state('b'), 'up');
  t.equal(a.states()[0]?.state, 'up');
  t.ok(a.counters().tx >= 9 && a.counters().rx >= 5, JSON.stringify(a.counters()));
  a.stop();
  b.stop();
  t.equal(time.pendingCount(), 0, 'no timer left');
});

t.test('one timer at a time; none without peers; a throwing listener is contained', async (t) => {
  const { time, a, b } = pair();
  t.equal(time.pendingCount(), 2, 'one per runner');
  a.setPeers([{ name: 'b', address: '100.64.0.2' }]);
  a.setTiming({ intervalMs: 50, multiplier: 3 });
  t.equal(time.pendingCount(), 2, 'rescheduling replaces the timer');
  a.onChange(() => {
    throw new Error('boom');
  });
  time.advance(500);
  t.equal(a.state('b'), 'up');
  t.same(a.timing, { intervalMs: 50, multiplier: 3 });
  a.setPeers([]);
  b.setPeers([]);
  t.equal(time.pendingCount(), 0, 'no peers: no timer');
});

t.test('adverts pass through; our own looped back are dropped', async (t) => {
  const { a, b, adverts } = pair();
  const atA: Advert[] = [];
  const atB: Advert[] = [];
  a.onAdvert((_addr, ad) => atA.push(ad));
  b.onAdvert((_addr, ad) => atB.push(ad));
  const ad: Advert = { group: 'g', agent: 'box-a', rank: 0, isEligible: true, isHolding: true, seq: 1 };
  a.sendAdvert('10.20.1.2/24', 'eth1', ad);
  t.same(adverts, [ad]);
  t.same(atB, [ad]);
  t.same(atA, [], 'not our own');
});

t.test('a timer that fires late reads the echoes waiting first: a busy box counts no peer down', async (t) => {
  const time = manualTime();
  const waiting: Array<() => void> = [];
  const { transport, sent, deliver } = recordingTransport();
  const a = new LivenessRunner({
    timing: { intervalMs: 100, multiplier: 3 },
    clock: time.clock,
    timers: time.timers,
    afterPendingIo: (fn) => void waiting.push(fn),
    transport,
  });
  a.setPeers([{ name: 'b', address: '100.64.0.2' }]);
  // The peer's packet, saying it hears us (flags bit 0).
  const fromB = (seq: number) => Uint8Array.of(0x78, 0x6c, 0x45, 0x43, 1, 1, 0, 0, 0, 0, 0, seq);
  const runWaiting = () => waiting.splice(0).forEach((fn) => fn());
  time.advance(100);
  runWaiting();
  deliver('100.64.0.2', fromB(1));
  t.equal(a.state('b'), 'up');
  // The box is busy for a second: its timer fires late, and the peer's echoes sit in the socket.
  time.advance(1100);
  t.ok(waiting.length > 0, 'the tick waits for the pending I/O');
  deliver('100.64.0.2', fromB(2)); // read in the poll phase, before the tick
  runWaiting();
  t.equal(a.state('b'), 'up', 'the waiting echo counts: not down');
  // Nothing arrives for good: down.
  time.advance(1600);
  runWaiting();
  time.advance(1700);
  runWaiting();
  t.equal(a.state('b'), 'down');
  t.ok(sent.length > 0);
  a.stop();
});

t.test('held groups: said in every packet sent, and read from every packet heard', async (t) => {
  const time = manualTime();
  const { transport, sent, deliver } = recordingTransport();
  const changes: string[][] = [];
  const a = new LivenessRunner({
    timing: { intervalMs: 100, multiplier: 3 },
    clock: time.clock,
    timers: time.timers,
    afterPendingIo: (fn) => fn(), // the tick at once: the test reads what it sent
    transport,
  });
  a.onChange((n) => changes.push(n));
  a.setPeers([{ name: 'b', address: '100.64.0.2' }]);
  a.setHeld(['care-records']);
  time.advance(100);
  const own = decodeEcho(sent.at(-1)!)!;
  t.ok(own.held !== null && filterHolds(own.held, 'care-records'), 'our packets say we hold care-records');
  const fromB = (held: string[] | null) => {
    const p = new Uint8Array(ECHO_PACKET_BYTES);
    encodeEcho(p, true, 1, held === null ? null : heldFilter(held));
    return p;
  };
  deliver('100.64.0.2', fromB(['lth-dns']));
  t.equal(a.holds('b', 'lth-dns'), true);
  t.equal(a.holds('b', 'care-records'), false);
  deliver('100.64.0.2', fromB(['lth-dns', 'care-records']));
  t.equal(a.holds('b', 'care-records'), true, 'b took care-records');
  t.same(changes, [['b'], ['b']], 'up, then a change of what it holds: each tells the listeners');
  deliver('100.64.0.2', fromB(null));
  t.equal(a.holds('b', 'care-records'), false, 'an older agent says nothing');
  a.stop();
});
