import t, { type Test } from 'tap';
import { silentLogger } from '../../lib/logger.js';
import { openSqliteStore } from '../store/sqlite.js';
import { agentInput, T0 } from './health.fixture.js';
import { HealthMonitor, type MonitorTimers } from './monitor.js';
import { SharedHealth } from './shared.js';
import type { AgentHealthInput } from './types.js';

const noTimers: MonitorTimers = { setInterval: () => 0, clearInterval: () => undefined };

/** Two replicas (A, B) sharing one database; their monitors see the same fleet. */
async function setup(t: Test) {
  let now = T0;
  let inputs: (now: number) => AgentHealthInput[] = (n) => [agentInput('a', n), agentInput('b', n)];
  const store = openSqliteStore({ path: ':memory:', clock: { nowMs: () => now } });
  await store.migrate();
  t.teardown(() => store.close());
  const replica = (id: string) => {
    const applied: [string, boolean][] = [];
    const changes: number[] = [];
    const shared = new SharedHealth({
      store: store.health,
      replicaId: id,
      log: silentLogger(),
      pollMs: 60_000,
      applyServing: (n, ok) => applied.push([n, ok]),
      onChange: (snap) => changes.push(snap.atMs),
    });
    const monitor = new HealthMonitor({
      clock: { nowMs: () => now },
      log: silentLogger(),
      source: () => inputs(now),
      timers: noTimers,
      history: shared.historyPort,
      persist: shared.persist,
    });
    shared.attach(monitor);
    t.teardown(() => shared.stop());
    return { shared, monitor, applied, changes };
  };
  return {
    store,
    A: replica('A'),
    B: replica('B'),
    advance: (ms: number) => (now += ms),
    setInputs: (f: typeof inputs) => (inputs = f),
  };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

t.test('the leader stores each evaluation; a follower serves it, saying who made it', async (t) => {
  const { A, B } = await setup(t);
  A.shared.start();
  B.shared.start();
  t.equal(B.shared.snapshot(), null, 'nothing stored yet');
  A.shared.lead(true);
  await settle();
  t.ok(A.shared.isLeading());
  await A.monitor.refresh();
  await A.shared.idle();
  B.shared.changed(); // the NOTIFY
  await settle();
  t.same(B.shared.snapshot(), A.monitor.snapshot(), "B serves A's snapshot");
  t.same(B.shared.evaluatedBy(), { replica: 'A', atMs: T0, isThisReplica: false });
  t.same(A.shared.evaluatedBy(), { replica: 'A', atMs: T0, isThisReplica: true });
  t.same([...B.shared.servingHealth()], [...A.monitor.servingHealth()], 'and its serving decisions');
  t.same(
    (await B.shared.history({})).map((e) => [e.subject, e.from, e.to]),
    [
      ['overall', null, 'ok'],
      ['agent:a', null, 'ok'],
      ['agent:b', null, 'ok'],
    ],
    'the history, read from the database',
  );
});

t.test('a new leader continues from the stored evaluation; the deposed one writes nothing', async (t) => {
  const { store, A, B, advance, setInputs } = await setup(t);
  A.shared.start();
  B.shared.start();
  A.shared.lead(true);
  await settle();
  await A.monitor.refresh();
  await A.shared.idle();

  // B takes over (A has not noticed yet): b went silent meanwhile.
  advance(60_000);
  setInputs((n) => [agentInput('a', n), agentInput('b', n, { isConnected: false, reportAgoMs: 60_000 })]);
  B.shared.lead(true);
  await settle();
  await B.monitor.refresh();
  await B.shared.idle();
  t.same(B.applied, [], 'a leader applies its own serving decisions, not the stored ones');
  await A.monitor.refresh(); // the deposed leader evaluates once more
  await A.shared.idle();

  const events = await B.shared.history({});
  t.same(
    events.map((e) => [e.subject, e.from, e.to]),
    [
      ['overall', null, 'ok'],
      ['agent:a', null, 'ok'],
      ['agent:b', null, 'ok'],
      ['overall', 'ok', 'down'],
      ['agent:b', 'ok', 'down'],
    ],
    'b went down once, recorded by B only; nothing appears twice',
  );
  t.same(A.shared.snapshot(), A.monitor.snapshot(), 'A still believes it leads');
  t.equal((await store.health.load())?.evaluatedBy, 'B', "A's write was refused (its term is over)");
  t.equal(B.shared.evaluatedBy()?.replica, 'B');

  // A learns it lost the lock: it follows, and applies B's stored serving decisions (b's stream is
  // down since B's first look, not yet long enough to fail it over).
  A.shared.lead(false);
  await settle();
  t.equal(A.shared.evaluatedBy()?.replica, 'B', "A serves B's evaluation");
  t.same(A.applied, [
    ['a', true],
    ['b', true],
  ]);
});

t.test('a failed write is retried with the next, so no transition is lost', async (t) => {
  const { store, A, advance, setInputs } = await setup(t);
  A.shared.start();
  A.shared.lead(true);
  await settle();
  const save = store.health.save.bind(store.health);
  let isDown = true;
  store.health.save = (...args) => (isDown ? Promise.reject(new Error('connection lost')) : save(...args));
  await A.monitor.refresh();
  await A.shared.idle();
  advance(60_000);
  setInputs((n) => [agentInput('a', n), agentInput('b', n, { isConnected: false, reportAgoMs: 60_000 })]);
  isDown = false;
  await A.monitor.refresh();
  await A.shared.idle();
  t.same(
    (await A.shared.history({ subject: 'agent:b' })).map((e) => [e.from, e.to, e.atMs - T0]),
    [
      [null, 'ok', 0],
      ['ok', 'down', 60_000],
    ],
  );
});

t.test("a follower tells of the leader's evaluations that changed a state, not of every one", async (t) => {
  const { A, B, advance, setInputs } = await setup(t);
  A.shared.start();
  B.shared.start();
  A.shared.lead(true);
  await settle();
  const evaluate = async () => {
    await A.monitor.refresh();
    await A.shared.idle();
    B.shared.changed();
    await settle();
  };
  await evaluate();
  t.same(B.changes, [T0], 'the first evaluation it reads');
  advance(5000);
  await evaluate();
  t.same(B.changes, [T0], 'an evaluation that changed nothing: no change');
  setInputs((n) => [agentInput('a', n), agentInput('b', n, { isConnected: false, reportAgoMs: 60_000 })]);
  advance(5000);
  await evaluate();
  t.same(B.changes, [T0, T0 + 10_000], 'b went down: a change');
  t.same(A.changes, [], "the leader's own changes come from its monitor, not from here");
});
