// The edge's failover decisions as tables over time: a sending box's choice of candidate, and a
// candidate's claim on the gateway (overlay AND LAN, eligibility, listening, preemption).
import t from 'tap';
import { FailoverDecider, type PeerLivenessView, type PeerState } from './decide.js';
import type { FailoverGroup, LivenessSettings } from './groups.js';
import { detectionMs } from '../liveness/echo.js';

const L: LivenessSettings = { intervalMs: 200, multiplier: 3, holdDownMs: 5_000, port: 51821 };
/** 200 ms x 3 and half an interval of grace. */
const DETECT = detectionMs(L);

function peers(states: Record<string, [PeerState, number]>, holds: Record<string, string[]> = {}): PeerLivenessView {
  return {
    state: (n) => states[n]?.[0],
    sinceMs: (n) => states[n]?.[1],
    holds: (n, g) => holds[n]?.includes(g) ?? false,
  };
}

const sent: FailoverGroup = {
  name: 'care',
  prefixes: ['10.20.1.0/24'],
  candidates: ['p', 's'],
  rank: -1,
  gateways: [],
};
const asStandby: FailoverGroup = { ...sent, rank: 1, gateways: ['10.20.1.1/24'] };
const asPrimary: FailoverGroup = { ...sent, rank: 0, gateways: ['10.20.1.1/24'] };

t.test('a sending box: primary while alive, standby at once when it dies, back after the hold-down', async (t) => {
  const d = new FailoverDecider('x', 0);
  const at = (ms: number, st: Record<string, [PeerState, number]>) =>
    d.decide([sent], peers(st), true, L, ms).view.active.get('care');
  t.equal(at(0, { p: ['init', 0], s: ['init', 0] }), 'p', "'init' counts as alive: the primary first");
  t.equal(at(700, { p: ['up', 300], s: ['up', 300] }), 'p');
  t.equal(at(2_000, { p: ['down', 2_000], s: ['up', 300] }), 's', 'moves as soon as the echo says dead');
  t.equal(at(3_000, { p: ['up', 3_000], s: ['up', 300] }), 's', 'the primary is back: not yet');
  const r = d.decide([sent], peers({ p: ['up', 3_000], s: ['up', 300] }), true, L, 7_000);
  t.equal(r.view.active.get('care'), 's', '4 s after: still in the hold-down');
  t.equal(r.recheckInMs, 1_000, 'asks to be woken when the hold-down ends');
  t.equal(at(8_000, { p: ['up', 3_000], s: ['up', 300] }), 'p', 'after 5 s up: back to the primary');
  t.equal(at(9_000, { p: ['down', 9_000], s: ['down', 9_000] }), 'p', 'nobody alive: stays where it is');
  t.equal(at(9_500, { p: ['down', 9_000], s: ['up', 9_500] }), 's');
  t.equal(at(9_700, { p: ['init', 9_700], s: ['up', 9_500] }), 's', "a re-added primary in 'init' does not pull back");
});

t.test('a sending box follows the candidate whose echo says it holds the gateway', async (t) => {
  const d = new FailoverDecider('x', 0);
  const at = (ms: number, st: Record<string, [PeerState, number]>, holds: Record<string, string[]> = {}) =>
    d.decide([sent], peers(st, holds), true, L, ms).view.active.get('care');
  // The start this fixes: the primary's echo came late (its agent was still applying its config),
  // so it went from 'init' to 'down' here while it took the gateway on its LAN; the standby came
  // up first. Without the holder's word the sender stays on the standby for the hold-down, and
  // the servers' replies leave through the primary: an asymmetric path the firewall drops.
  t.equal(at(0, { p: ['init', 0], s: ['init', 0] }), 'p');
  t.equal(at(DETECT, { p: ['down', DETECT], s: ['up', 500] }), 's', 'the primary not heard yet: the standby');
  t.equal(
    at(3_000, { p: ['up', 3_000], s: ['up', 500] }, { p: ['care'] }),
    'p',
    'the primary up and holding: at once, no hold-down',
  );
  t.equal(at(3_100, { p: ['up', 3_000], s: ['up', 500] }, { p: ['dns'] }), 'p', 'holding another group: no pull');
  t.equal(
    at(3_200, { p: ['down', 3_200], s: ['up', 500] }, { p: ['care'] }),
    's',
    'a holder judged dead is not followed',
  );
  t.equal(
    at(3_300, { p: ['up', 3_300], s: ['up', 500] }, { s: ['care'] }),
    's',
    'the primary back while the standby holds: stay with the holder',
  );
  t.equal(
    at(3_400, { p: ['up', 3_300], s: ['up', 500] }, { p: ['care'], s: ['care'] }),
    'p',
    'two say they hold (a moment of hand-over, or a split LAN): the first in serving order',
  );
  t.equal(
    at(3_500, { p: ['up', 3_300], s: ['up', 500] }, { s: ['care'] }),
    's',
    'the primary gave the gateway up, the standby took it: follow, though the primary is up',
  );
  t.equal(at(3_600, { p: ['init', 3_600], s: ['up', 500] }, { p: ['care'] }), 's', "a claim in 'init' is not trusted");
});

t.test('a standby claims only when the primary is dead on the overlay AND not eligible on the LAN', async (t) => {
  const d = new FailoverDecider('s', 0);
  const held = (ms: number, st: Record<string, [PeerState, number]>, eligible = true) =>
    d.decide([asStandby], peers(st), eligible, L, ms).view.held.has('care');
  t.notOk(held(100, { p: ['init', 0] }), 'listens first');
  d.hear('care', 'p', { rank: 0, isEligible: true, isHolding: true, atMs: 900 });
  t.notOk(held(1_000, { p: ['up', 500] }), 'primary alive: no');
  t.notOk(held(1_400, { p: ['down', 1_400] }), 'overlay dead but the LAN still hears an eligible primary');
  t.ok(held(900 + DETECT + 1, { p: ['down', 1_400] }), 'LAN silent for the detection time too: claims');
  t.ok(held(1_800, { p: ['down', 1_400] }), 'keeps it');
  t.notOk(held(1_900, { p: ['down', 1_400] }, false), 'reaching no peer over the overlay: gives it up');
});

t.test('a primary cut off from the overlay says so on the LAN, and the standby takes over', async (t) => {
  const d = new FailoverDecider('s', 0);
  d.hear('care', 'p', { rank: 0, isEligible: false, isHolding: false, atMs: 1_000 });
  const r = d.decide([asStandby], peers({ p: ['down', 1_000] }), true, L, 1_010);
  t.ok(r.view.held.has('care'), 'the primary is on the LAN but not eligible: out');
});

t.test('the primary comes back: takes the gateway after the hold-down; the standby hands it over', async (t) => {
  const p = new FailoverDecider('p', 0);
  const s = new FailoverDecider('s', 0);
  s.hear('care', 'p', { rank: 0, isEligible: false, isHolding: false, atMs: 700 });
  t.ok(s.decide([asStandby], peers({ p: ['down', 0] }), true, L, 700).view.held.has('care'));
  // The primary restarts and hears the standby holding.
  p.hear('care', 's', { rank: 1, isEligible: true, isHolding: true, atMs: 1_000 });
  const first = p.decide([asPrimary], peers({ s: ['up', 900] }), true, L, 1_000);
  t.notOk(first.view.held.has('care'), 'a later holder: wait');
  t.ok(
    first.recheckInMs !== null && first.recheckInMs <= DETECT + 1,
    'wakes to re-check when the advert would go stale',
  );
  for (let ms = 1_200; ms < 6_000; ms += 200) {
    p.hear('care', 's', { rank: 1, isEligible: true, isHolding: true, atMs: ms });
    t.notOk(p.decide([asPrimary], peers({ s: ['up', 900] }), true, L, ms).view.held.has('care'), `not at ${ms} ms`);
  }
  p.hear('care', 's', { rank: 1, isEligible: true, isHolding: true, atMs: 6_100 });
  t.ok(p.decide([asPrimary], peers({ s: ['up', 900] }), true, L, 6_200).view.held.has('care'), 'after 5 s: takes it');
  s.hear('care', 'p', { rank: 0, isEligible: true, isHolding: true, atMs: 6_210 });
  t.notOk(
    s.decide([asStandby], peers({ p: ['up', 5_000] }), true, L, 6_210).view.held.has('care'),
    'the standby hears the primary hold it: gives it up at once',
  );
});

t.test('nobody holds: the primary claims after listening, without a hold-down', async (t) => {
  const p = new FailoverDecider('p', 0);
  t.notOk(p.decide([asPrimary], peers({ s: ['up', 0] }), true, L, 300).view.held.has('care'));
  t.ok(p.decide([asPrimary], peers({ s: ['up', 0] }), true, L, DETECT + 1).view.held.has('care'));
  t.notOk(p.decide([asPrimary], peers({ s: ['down', 0] }), false, L, DETECT + 2).view.held.has('care'), 'not eligible');
});

t.test('two holders that hear each other: the later one gives up', async (t) => {
  const s = new FailoverDecider('s', 0);
  t.ok(s.decide([asStandby], peers({ p: ['down', 0] }), true, L, 1_000).view.held.has('care'));
  s.hear('care', 'p', { rank: 0, isEligible: true, isHolding: true, atMs: 1_100 });
  t.notOk(s.decide([asStandby], peers({ p: ['down', 0] }), true, L, 1_100).view.held.has('care'));
});

t.test('the controller moves a long-eligible box ahead of the holder: it takes the gateway at once', async (t) => {
  const b = new FailoverDecider('b', 0);
  const group = { ...sent, candidates: ['a', 'b'], rank: 1, gateways: ['10.20.1.1/24'] };
  // a holds; b stands by, eligible all along.
  for (let ms = 0; ms <= 20_000; ms += 1_000) {
    b.hear('care', 'a', { rank: 0, isEligible: true, isHolding: true, atMs: ms });
    t.notOk(b.decide([group], peers({ a: ['up', 0] }), true, L, ms).view.held.has('care'));
  }
  // New order from the controller: b first.
  const reordered = { ...group, candidates: ['b', 'a'], rank: 0 };
  b.hear('care', 'a', { rank: 1, isEligible: true, isHolding: true, atMs: 20_100 });
  t.ok(b.decide([reordered], peers({ a: ['up', 0] }), true, L, 20_100).view.held.has('care'), 'no second hold-down');
});
