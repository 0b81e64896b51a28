import t from 'tap';
import { evaluateHealth } from './evaluate.js';
import { agentInput, probeResult, probeSpec, T0, type AgentInputOpts } from './fixtures.js';
import { evaluateServing, type ServingState } from './serving.js';
import type { AgentHealthInput, HealthSnapshot } from './types.js';

const opts = { reportIntervalMs: 10_000 };
const dead = { isReachable: false, lossRatio: 0.5 };
const pathSpec = probeSpec('care/0');

function fleet(nowMs: number, a: AgentInputOpts = {}, others: { b?: AgentInputOpts; c?: AgentInputOpts } = {}): AgentHealthInput[] {
  return [
    agentInput('a', nowMs, { peers: ['b', 'c'], ...a }),
    agentInput('b', nowMs, { peers: ['a'], ...others.b }),
    agentInput('c', nowMs, { peers: ['a'], ...others.c }),
  ];
}

function serving(input: AgentHealthInput[], nowMs: number, prevSnap?: HealthSnapshot, prevServing?: Map<string, ServingState>) {
  const snap = evaluateHealth(input, nowMs, opts, prevSnap);
  return { snap, serving: evaluateServing(snap, nowMs, { ...opts, holdDownMs: 30_000 }, prevServing) };
}

t.test('who may serve, one evaluation', async (t) => {
  const cases: Array<{ name: string; input: AgentHealthInput[]; healthy: boolean; reason?: string }> = [
    { name: 'healthy', input: fleet(T0), healthy: true, reason: 'forwarding' },
    {
      name: 'all peer probes fail, no path probes', input: fleet(T0, { peerOpts: { b: dead, c: dead } }),
      healthy: false, reason: 'forwarding broken: peer probes to b, c failed',
    },
    {
      name: 'peer and path probes fail', input: fleet(T0, {
        peerOpts: { b: dead, c: dead }, probes: [pathSpec], probeResults: [probeResult('care/0', T0, { isOk: false, detail: 'timeout' })],
      }),
      healthy: false, reason: 'forwarding broken: peer probes to b, c failed and 1 path probe failed',
    },
    {
      name: 'peer probes fail but a path probe works', input: fleet(T0, { peerOpts: { b: dead, c: dead }, probes: [pathSpec] }),
      healthy: true,
    },
    {
      name: 'a deny probe is not forwarding evidence', input: fleet(T0, {
        peerOpts: { b: dead, c: dead }, probes: [probeSpec('deny/0', { expectDeny: true })],
      }),
      healthy: false,
    },
    {
      name: 'path probe fails, peers fine (server down, not the box)', input: fleet(T0, {
        probes: [pathSpec], probeResults: [probeResult('care/0', T0, { isOk: false, detail: 'connection refused' })],
      }),
      healthy: true,
    },
    { name: 'one peer of two fails', input: fleet(T0, { peerOpts: { b: dead } }), healthy: true },
    { name: 'a single lost echo is not failure', input: fleet(T0, { peerOpts: { b: { isReachable: false, lossRatio: 0.1 }, c: { isReachable: false, lossRatio: 0.1 } } }), healthy: true },
    {
      name: 'the peers it cannot reach are down themselves: not its fault',
      input: fleet(T0, { peerOpts: { b: dead, c: dead } }, { b: { reportAgoMs: 60_000, isConnected: false }, c: { reportAgoMs: 60_000, isConnected: false } }),
      healthy: true,
    },
    { name: 'slow control plane: stream connected, reports 40 s late', input: fleet(T0, { reportAgoMs: 40_000 }), healthy: true },
    { name: 'slow control plane: stream reconnecting, reports 25 s late', input: fleet(T0, { reportAgoMs: 25_000, isConnected: false }), healthy: true },
  ];
  for (const c of cases) {
    const s = serving(c.input, T0).serving.get('a');
    t.equal(s?.isHealthy, c.healthy, `${c.name}: healthy`);
    if (c.reason !== undefined) t.equal(s?.reason, c.reason, `${c.name}: reason`);
  }
});

t.test('silent: no report and no stream for three intervals', async (t) => {
  // The stream has been down since the first evaluation; the last report keeps ageing.
  const input = (now: number) => fleet(now, { isConnected: false, lastReportAtMs: T0 - 5000 });
  const s1 = serving(input(T0), T0);
  t.equal(s1.serving.get('a')?.isHealthy, true, 'the stream just went away');
  const s2 = serving(input(T0 + 20_000), T0 + 20_000, s1.snap, s1.serving);
  t.equal(s2.serving.get('a')?.isHealthy, true, 'silent for 2 intervals: still healthy');
  const s3 = serving(input(T0 + 31_000), T0 + 31_000, s2.snap, s2.serving);
  t.equal(s3.serving.get('a')?.isHealthy, false);
  t.equal(s3.serving.get('a')?.reason, 'silent: no report for 36 s and no config stream');
});

t.test('a controller restart does not make never-reported agents unhealthy at once', async (t) => {
  const input = (now: number) => fleet(now, { isConnected: false, lastReportAtMs: null, lastReport: null });
  const s1 = serving(input(T0), T0);
  t.equal(s1.serving.get('a')?.isHealthy, true);
  const s2 = serving(input(T0 + 30_000), T0 + 30_000, s1.snap, s1.serving);
  t.equal(s2.serving.get('a')?.isHealthy, false);
  t.equal(s2.serving.get('a')?.reason, 'silent: never reported, no config stream for 30 s');
});

t.test('hysteresis: hold-down before healthy again; a relapse restarts it', async (t) => {
  const broken = (now: number) => fleet(now, { peerOpts: { b: dead, c: dead } });
  const fine = (now: number) => fleet(now);
  let st = serving(broken(T0), T0);
  t.equal(st.serving.get('a')?.isHealthy, false);
  const steps: Array<[number, (n: number) => AgentHealthInput[], boolean, string]> = [
    [10_000, fine, false, 'recovering: healthy for 0 s of 30 s hold-down'],
    [25_000, fine, false, 'recovering: healthy for 15 s of 30 s hold-down'],
    [30_000, broken, false, 'forwarding broken: peer probes to b, c failed'],
    [40_000, fine, false, 'recovering: healthy for 0 s of 30 s hold-down'],
    [65_000, fine, false, 'recovering: healthy for 25 s of 30 s hold-down'],
    [70_000, fine, true, 'forwarding'],
    [80_000, broken, false, 'forwarding broken: peer probes to b, c failed'],
  ];
  for (const [dt, input, healthy, reason] of steps) {
    st = serving(input(T0 + dt), T0 + dt, st.snap, st.serving);
    t.equal(st.serving.get('a')?.isHealthy, healthy, `t+${dt / 1000}s healthy`);
    t.equal(st.serving.get('a')?.reason, reason, `t+${dt / 1000}s reason`);
  }
  t.equal(st.serving.get('a')?.sinceMs, T0 + 80_000);
});

t.test('revoked agents are not listed', async (t) => {
  const s = serving([agentInput('a', T0, { isRevoked: true }), agentInput('b', T0)], T0);
  t.same([...s.serving.keys()], ['b']);
});
