// The engine on a fake liveness layer and fake time: it points the echo at the plan's peers, moves
// a group when the echo says its candidate died, sends advertisements for the groups this box may
// serve (on its own LAN address, not the gateway), and acts at once on a LAN advertisement.
import t from 'tap';
import { silentLogger } from '../../lib/logger.js';
import type { Timers } from '../../lib/timers.js';
import type { PeerState } from './decide.js';
import { FailoverEngine, type FailoverAdvert, type LivenessPort } from './engine.js';
import type { FailoverPlan, FailoverView } from './groups.js';

class FakeTime implements Timers {
  now = 0;
  private queue: Array<{ at: number; fn: () => void; id: number }> = [];
  private seq = 0;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.queue.push({ at: this.now + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.queue = this.queue.filter((x) => x.id !== h);
  }
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at);
      const next = this.queue[0];
      if (!next || next.at > end) break;
      this.queue.shift();
      this.now = next.at;
      next.fn();
    }
    this.now = end;
  }
}

class FakeLiveness implements LivenessPort {
  states = new Map<string, [PeerState, number]>();
  configured: Parameters<LivenessPort['configure']>[0] | null = null;
  adverts: Array<{ lan: string; advert: FailoverAdvert }> = [];
  /** What the engine last told the echo it holds. */
  held: readonly string[] = [];
  /** What each peer's echo says it holds. */
  claims = new Map<string, Set<string>>();
  private changeListeners: Array<(n: string[]) => void> = [];
  private advertListeners: Array<(a: FailoverAdvert) => void> = [];
  state = (n: string) => this.states.get(n)?.[0];
  sinceMs = (n: string) => this.states.get(n)?.[1];
  holds = (n: string, group: string) => this.claims.get(n)?.has(group) ?? false;
  /** Peers a packet came from. */
  heard = new Set<string>();
  hasHeard = (n: string) => this.heard.has(n);
  setHeld(groups: readonly string[]): void {
    this.held = groups;
  }
  configure(o: Parameters<LivenessPort['configure']>[0]): Promise<void> {
    this.configured = o;
    return Promise.resolve();
  }
  onChange(l: (n: string[]) => void): void {
    this.changeListeners.push(l);
  }
  onAdvert(l: (a: FailoverAdvert) => void): void {
    this.advertListeners.push(l);
  }
  sendAdvert(lan: { ifname: string; cidr: string }, advert: FailoverAdvert): void {
    this.adverts.push({ lan: lan.cidr, advert });
  }
  peerNames = () => [...(this.configured?.peers ?? [])].map((p) => p.name);
  stop = () => Promise.resolve();
  set(name: string, s: PeerState, at: number): void {
    this.states.set(name, [s, at]);
    for (const l of this.changeListeners) l([name]);
  }
  claim(name: string, groups: string[]): void {
    this.claims.set(name, new Set(groups));
    for (const l of this.changeListeners) l([name]);
  }
  hear(a: FailoverAdvert): void {
    for (const l of this.advertListeners) l(a);
  }
}

const LIVENESS = { intervalMs: 100, multiplier: 3, holdDownMs: 2_000, port: 51821 };
const peers = new Map([
  ['civic-a', { publicKey: 'A', address: '100.64.0.1' }],
  ['civic-b', { publicKey: 'B', address: '100.64.0.2' }],
]);

function setup(plan: FailoverPlan) {
  const time = new FakeTime();
  const liveness = new FakeLiveness();
  const views: FailoverView[] = [];
  const engine = new FailoverEngine({
    target: { failoverPlan: plan, setFailoverView: (v) => (views.push(v), true) },
    liveness,
    addresses: () =>
      Promise.resolve([
        { ifname: 'lan0', cidr: '10.50.1.1/24' },
        { ifname: 'lan0', cidr: '10.50.1.3/24' },
      ]),
    clock: { nowMs: () => time.now },
    timers: time,
    log: silentLogger(),
  });
  return { time, liveness, views, engine };
}

t.test('a sending box: the echo points at the peers; a dead candidate moves the group at once', async (t) => {
  const plan: FailoverPlan = {
    self: 'gp',
    liveness: LIVENESS,
    peers,
    groups: [
      { name: 'civic-lan', prefixes: ['10.50.1.0/24'], candidates: ['civic-a', 'civic-b'], rank: -1, gateways: [] },
    ],
  };
  const { time, liveness, views, engine } = setup(plan);
  engine.start();
  t.same(liveness.configured?.peers.map((p) => p.address).sort(), ['100.64.0.1', '100.64.0.2']);
  t.equal(liveness.configured?.intervalMs, 100);
  liveness.set('civic-a', 'up', 0);
  liveness.set('civic-b', 'up', 0);
  t.equal(views.at(-1)?.active.get('civic-lan'), 'civic-a');
  time.advance(1_000);
  liveness.set('civic-a', 'down', time.now);
  t.equal(views.at(-1)?.active.get('civic-lan'), 'civic-b', 'moved on the echo event, not at a tick');
  t.equal(engine.statusView()?.groups[0]?.role, 'sender');
  // civic-a is back, and its echo says it holds the gateway again: follow it at once (no hold-down
  // of the sender's own: the candidates' election applied it), on the echo event.
  liveness.set('civic-a', 'up', time.now);
  t.equal(views.at(-1)?.active.get('civic-lan'), 'civic-b', 'up again, but the hold-down runs');
  liveness.claim('civic-a', ['civic-lan']);
  t.equal(views.at(-1)?.active.get('civic-lan'), 'civic-a', 'the gateway holder, as soon as it says so');
  t.same(liveness.held, [], 'a sending box holds nothing');
  // Down after packets came: "down"; down without a packet ever (a peer that runs no echo): said so.
  liveness.heard.add('civic-a');
  liveness.set('civic-a', 'down', time.now);
  liveness.set('civic-b', 'down', time.now);
  t.same(
    engine.statusView()?.peers.map((p) => `${p.name} ${p.state}`),
    ['civic-a down', 'civic-b never heard'],
  );
  await engine.stop();
});

t.test('a candidate box: advertises on its own LAN address, takes over, hands back', async (t) => {
  const plan: FailoverPlan = {
    self: 'civic-b',
    liveness: LIVENESS,
    peers: new Map([
      ['civic-a', peers.get('civic-a')!],
      ['gp', { publicKey: 'G', address: '100.64.0.4' }],
    ]),
    groups: [
      {
        name: 'civic-lan',
        prefixes: ['10.50.1.0/24'],
        candidates: ['civic-a', 'civic-b'],
        rank: 1,
        gateways: ['10.50.1.1/24'],
      },
    ],
  };
  const { time, liveness, views, engine } = setup(plan);
  engine.start();
  liveness.set('civic-a', 'up', 0);
  liveness.set('gp', 'up', 0); // a box that sends to the group: the standby reaches the overlay
  for (let ms = 0; ms < 1_000; ms += 100) {
    liveness.hear({ group: 'civic-lan', agent: 'civic-a', rank: 0, isEligible: true, isHolding: true, seq: ms });
    time.advance(100);
    await Promise.resolve(); // the address read
  }
  t.notOk(views.at(-1)?.held.has('civic-lan'), 'the primary holds it');
  const mine = liveness.adverts.at(-1);
  t.equal(mine?.lan, '10.50.1.3/24', 'sent from its own address, not the gateway');
  t.same(mine?.advert.isHolding, false);
  t.equal(mine?.advert.isEligible, true);
  // Power cut: no more adverts, echo dead.
  const cutAt = time.now;
  liveness.set('civic-a', 'down', time.now);
  time.advance(400);
  const tookAt = views.findIndex((v) => v.held.has('civic-lan'));
  t.ok(tookAt >= 0, 'takes the gateway once the LAN is silent for the detection time too');
  t.ok(time.now - cutAt <= 400);
  t.equal(engine.statusView()?.isEligible, true);
  t.equal(liveness.adverts.at(-1)?.advert.isHolding, true, 'and says so on the LAN');
  t.same(liveness.held, ['civic-lan'], 'and in its echo, to the boxes that send to the group');
  // The primary is back and takes it: the standby gives it up on hearing that.
  liveness.set('civic-a', 'up', time.now);
  liveness.hear({ group: 'civic-lan', agent: 'civic-a', rank: 0, isEligible: true, isHolding: true, seq: 99 });
  t.notOk(views.at(-1)?.held.has('civic-lan'), 'hands it back at once');
  t.same(liveness.held, [], 'and its echo stops saying it holds it');
  // Cut off from the overlay: not eligible, and no gateway even with the primary gone.
  liveness.set('civic-a', 'down', time.now);
  time.advance(400);
  t.ok(views.at(-1)?.held.has('civic-lan'), 'the primary silent again: takes it');
  liveness.set('gp', 'down', time.now);
  t.notOk(views.at(-1)?.held.has('civic-lan'), 'reaching no peer: gives it up');
  t.equal(liveness.adverts.at(-1)?.advert.isEligible, false, 'and says it is not eligible');
  await engine.stop();
});
