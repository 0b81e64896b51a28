import { Writable } from 'node:stream';
import t from 'tap';
import { createLogger, silentLogger } from '../../lib/logger.js';
import { agentInput, probeSpec, T0 } from './health.fixture.js';
import { HealthMonitor, LOGGED_CHANGES, type MonitorTimers } from './monitor.js';
import type { AgentHealthInput, HealthEvent, HealthSnapshot } from './types.js';

function setup(initial: (now: number) => AgentHealthInput[]) {
  let now = T0;
  let inputs = initial;
  const ticks: Array<() => void> = [];
  const timers: MonitorTimers = {
    setInterval: (fn) => {
      ticks.push(fn);
      return ticks.length;
    },
    clearInterval: () => {
      ticks.length = 0;
    },
  };
  const changes: Array<[HealthSnapshot, readonly HealthEvent[]]> = [];
  const servingChanges: Array<[Map<string, boolean>, readonly string[]]> = [];
  const monitor = new HealthMonitor({
    clock: { nowMs: () => now },
    log: silentLogger(),
    source: () => inputs(now),
    timers,
    serving: { holdDownMs: 30_000 },
    onChange: (s, e) => changes.push([s, e]),
    onServingChange: (m, c) => servingChanges.push([new Map(m), c]),
  });
  return {
    monitor,
    ticks,
    changes,
    servingChanges,
    advance: (ms: number) => {
      now += ms;
    },
    setInputs: (f: (now: number) => AgentHealthInput[]) => {
      inputs = f;
    },
  };
}

// b passes a path probe: it shows it forwards, so a's failing probe to b is a's fault.
const bPath = [probeSpec('b-path/0')];
const healthy = (now: number) => [
  agentInput('a', now, { peers: ['b'] }),
  agentInput('b', now, { peers: ['a'], probes: bPath }),
];
const aBroken = (now: number) => [
  agentInput('a', now, { peers: ['b'], peerOpts: { b: { isReachable: false, lossRatio: 1 } } }),
  agentInput('b', now, { peers: ['a'], probes: bPath }),
];

t.test('refresh evaluates, keeps the snapshot and the history, tells listeners', async (t) => {
  const h = setup(healthy);
  t.equal(h.monitor.snapshot(), null);
  const s = await h.monitor.refresh();
  t.equal(s?.state, 'ok');
  t.equal(h.monitor.snapshot(), s);
  t.equal(h.changes.length, 1, 'appearance of every subject is a change');
  t.same(
    (await h.monitor.history()).map((e) => e.subject),
    ['overall', 'agent:a', 'agent:b', 'link:a:b', 'probe:b/b-path/0'],
  );

  h.advance(5000);
  await h.monitor.refresh();
  t.equal(h.changes.length, 1, 'nothing changed');

  h.setInputs(aBroken);
  h.advance(5000);
  await h.monitor.refresh();
  t.equal(h.changes.length, 2);
  t.same(
    h.changes[1]?.[1].map((e) => [e.subject, e.from, e.to]),
    [
      ['overall', 'ok', 'degraded'],
      ['link:a:b', 'ok', 'degraded'],
      ['serving:a', 'ok', 'down'],
    ],
  );
  t.same(await h.monitor.history({ subject: 'link:a:b' }).then((es) => es.map((e) => e.to)), ['ok', 'degraded']);
});

t.test('serving health follows forwarding, with hold-down, and is recorded', async (t) => {
  const h = setup(healthy);
  await h.monitor.refresh();
  t.same(
    h.monitor.servingHealth(),
    new Map([
      ['a', true],
      ['b', true],
    ]),
  );
  t.equal(h.servingChanges.length, 0);

  h.setInputs(aBroken);
  h.advance(5000);
  await h.monitor.refresh();
  t.same(
    h.monitor.servingHealth(),
    new Map([
      ['a', false],
      ['b', true],
    ]),
  );
  t.same(h.servingChanges.at(-1)?.[1], ['a']);
  t.match(h.monitor.servingDetail().get('a')?.reason, /forwarding broken/);

  h.setInputs(healthy);
  h.advance(5000);
  await h.monitor.refresh();
  t.equal(h.monitor.servingHealth().get('a'), false, 'held down');
  h.advance(30_000);
  await h.monitor.refresh();
  t.equal(h.monitor.servingHealth().get('a'), true, 'healthy after the hold-down');
  t.same(
    (await h.monitor.history({ kind: 'serving' })).map((e) => [e.subject, e.from, e.to]),
    [
      ['serving:a', 'ok', 'down'],
      ['serving:a', 'down', 'ok'],
    ],
  );
});

t.test('timer: start evaluates at once and on every tick; stop ends it', async (t) => {
  const h = setup(healthy);
  h.monitor.start();
  await h.monitor.refresh();
  t.equal(h.ticks.length, 1);
  h.advance(5000);
  h.ticks[0]?.();
  await h.monitor.refresh();
  t.equal(h.monitor.snapshot()?.atMs, T0 + 5000);
  h.monitor.stop();
  t.equal(h.ticks.length, 0);
});

t.test('concurrent refreshes share one evaluation; a failing source keeps the last snapshot', async (t) => {
  let calls = 0;
  let fail = false;
  const monitor = new HealthMonitor({
    clock: { nowMs: () => T0 },
    log: silentLogger(),
    source: async () => {
      calls += 1;
      if (fail) throw new Error('store down');
      return healthy(T0);
    },
    timers: { setInterval: () => 0, clearInterval: () => undefined },
  });
  const [one, two] = await Promise.all([monitor.refresh(), monitor.refresh()]);
  t.equal(calls, 1);
  t.equal(one, two);
  fail = true;
  const three = await monitor.refresh();
  t.equal(three, one, 'kept');
  t.equal(monitor.snapshot(), one);
});

t.test('record() appends events decided elsewhere (failover)', async (t) => {
  const h = setup(healthy);
  h.monitor.record([
    {
      subject: 'serving:b',
      kind: 'serving',
      from: 'down',
      to: 'ok',
      atMs: T0,
      reason: 'subnet council-lan now served by b (standby)',
    },
  ]);
  t.equal((await h.monitor.history({ subject: 'serving:b' })).length, 1);
});

t.test('a flood of changes: the first 20 one by one, downs first, then one line counting the rest', async (t) => {
  const lines: Array<{ level: number; msg: string; subject?: string; to?: string; more?: number }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as (typeof lines)[number]);
      done();
    },
  });
  const names = Array.from({ length: 100 }, (_, i) => `box-${i}`);
  const monitor = new HealthMonitor({
    clock: { nowMs: () => T0 },
    log: createLogger({ level: 'info', destination: sink }),
    // 99 never reported (unknown); box-99 down (no stream, silent for an hour).
    source: () =>
      names.map((n) =>
        n === 'box-99'
          ? agentInput(n, T0, { isConnected: false, reportAgoMs: 3_600_000 })
          : agentInput(n, T0, { lastReportAtMs: null, lastReport: null }),
      ),
  });
  const snap = await monitor.refresh();
  await new Promise((r) => setImmediate(r));
  const changed = lines.filter((l) => l.msg === 'health changed');
  t.equal(changed.length, LOGGED_CHANGES);
  t.same(
    changed.slice(0, 2).map((l) => [l.subject, l.to, l.level]),
    [
      ['overall', 'down', 40],
      ['agent:box-99', 'down', 40],
    ],
    'the downs first, as warnings',
  );
  const events = snap!.agents.length + 1; // every agent, and the overall state
  t.match(lines.at(-1), { msg: /^health changed: more changes/, more: events - LOGGED_CHANGES, level: 30 });
});
