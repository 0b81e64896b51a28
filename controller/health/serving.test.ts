import t from 'tap';
import { evaluateHealth } from './evaluate.js';
import { agentInput, probeResult, probeSpec, T0, type AgentInputOpts } from './health.fixture.js';
import { evaluateServing, type ServingState } from './serving.js';
import type { AgentHealthInput, HealthSnapshot } from './types.js';

const opts = { reportIntervalMs: 10_000 };
const dead = { isReachable: false, lossRatio: 0.5 };
const pathSpec = probeSpec('care/0');

function fleet(
  nowMs: number,
  a: AgentInputOpts = {},
  others: { b?: AgentInputOpts; c?: AgentInputOpts } = {},
): AgentHealthInput[] {
  return [
    agentInput('a', nowMs, { peers: ['b', 'c'], ...a }),
    // b and c reach each other too: third parties that show they forward.
    agentInput('b', nowMs, { peers: ['a', 'c'], ...others.b }),
    agentInput('c', nowMs, { peers: ['a', 'b'], ...others.c }),
  ];
}

function serving(
  input: AgentHealthInput[],
  nowMs: number,
  prevSnap?: HealthSnapshot,
  prevServing?: Map<string, ServingState>,
) {
  const snap = evaluateHealth(input, nowMs, opts, prevSnap);
  return { snap, serving: evaluateServing(snap, nowMs, { ...opts, holdDownMs: 30_000 }, prevServing) };
}

t.test('who may serve, one evaluation', async (t) => {
  const cases: Array<{ name: string; input: AgentHealthInput[]; healthy: boolean; reason?: string }> = [
    { name: 'healthy', input: fleet(T0), healthy: true, reason: 'forwarding' },
    {
      name: 'all peer probes fail, no path probes',
      input: fleet(T0, { peerOpts: { b: dead, c: dead } }),
      healthy: false,
      reason: 'forwarding broken: peer probes to b, c failed',
    },
    {
      name: 'peer and path probes fail',
      input: fleet(T0, {
        peerOpts: { b: dead, c: dead },
        probes: [pathSpec],
        probeResults: [probeResult('care/0', T0, { isOk: false, detail: 'timeout' })],
      }),
      healthy: false,
      reason: 'forwarding broken: peer probes to b, c failed and 1 path probe failed',
    },
    {
      name: 'peer probes fail but a path probe works',
      input: fleet(T0, { peerOpts: { b: dead, c: dead }, probes: [pathSpec] }),
      healthy: true,
    },
    {
      name: 'a deny probe is not forwarding evidence',
      input: fleet(T0, {
        peerOpts: { b: dead, c: dead },
        probes: [probeSpec('deny/0', { expectDeny: true })],
      }),
      healthy: false,
    },
    {
      name: 'path probe fails, peers fine (server down, not the box)',
      input: fleet(T0, {
        probes: [pathSpec],
        probeResults: [probeResult('care/0', T0, { isOk: false, detail: 'connection refused' })],
      }),
      healthy: true,
    },
    { name: 'one peer of two fails', input: fleet(T0, { peerOpts: { b: dead } }), healthy: true },
    {
      // edge-failover case d in CI: gp's probes to the primary (on a lossy cable) failed; the
      // standby it reached had, that moment, no report of its own newer than gp's to show it forwards.
      name: 'it reaches a peer that shows no forwarding of its own, the other fails: it forwards',
      input: fleet(
        T0,
        { peerOpts: { c: dead }, reportAgoMs: 1000 },
        { b: { reportAgoMs: 3000 }, c: { reportAgoMs: 500 } },
      ),
      healthy: true,
    },
    {
      name: 'a single lost echo is not failure',
      input: fleet(T0, {
        peerOpts: { b: { isReachable: false, lossRatio: 0.1 }, c: { isReachable: false, lossRatio: 0.1 } },
      }),
      healthy: true,
    },
    {
      name: 'the peers it cannot reach are down themselves: not its fault',
      input: fleet(
        T0,
        { peerOpts: { b: dead, c: dead } },
        { b: { reportAgoMs: 60_000, isConnected: false }, c: { reportAgoMs: 60_000, isConnected: false } },
      ),
      healthy: true,
    },
    {
      name: 'the peers it cannot reach reach nobody else to show they forward: no verdict',
      input: fleet(
        T0,
        { peerOpts: { b: dead, c: dead } },
        { b: { peerOpts: { c: dead } }, c: { peerOpts: { b: dead } } },
      ),
      healthy: true,
    },
    {
      name: 'two boxes that probe only each other: a failing probe does not say which one is broken',
      input: [
        agentInput('a', T0, { peers: ['b'], peerOpts: { b: dead } }),
        agentInput('b', T0, { peers: ['a'], peerOpts: { a: dead } }),
      ],
      healthy: true,
    },
    {
      name: 'a peer that reaches nobody else but passes a path probe shows it forwards',
      input: fleet(
        T0,
        { peerOpts: { b: dead, c: dead } },
        {
          b: { peerOpts: { c: dead }, probes: [pathSpec] },
          c: { peerOpts: { b: dead }, probes: [probeSpec('care/1')] },
        },
      ),
      healthy: false,
    },
    {
      // a reported at T0 - 2 s: its failures may be from the probe round before b and c returned.
      name: 'the peers came back after its last probe round: its old failures are no verdict',
      input: fleet(
        T0,
        { peerOpts: { b: dead, c: dead } },
        { b: { connectedSinceMs: T0 - 3000 }, c: { connectedSinceMs: T0 - 6000 } },
      ),
      healthy: true,
    },
    {
      name: 'the peers have been back for a probe round before its report: broken',
      input: fleet(
        T0,
        { peerOpts: { b: dead, c: dead } },
        { b: { connectedSinceMs: T0 - 7000 }, c: { connectedSinceMs: T0 - 60_000 } },
      ),
      healthy: false,
      reason: 'forwarding broken: peer probes to b, c failed',
    },
    {
      // The failover e2e (edge-failover case a, seen in CI): b and c have just lost power; their
      // streams are not found dead yet and their last reports (before the cut) say they forward.
      name: 'its peers reported forwarding only before its failures: no verdict',
      input: fleet(
        T0,
        { peerOpts: { b: dead, c: dead }, reportAgoMs: 1000 },
        { b: { reportAgoMs: 6000 }, c: { reportAgoMs: 3000 } },
      ),
      healthy: true,
    },
    {
      name: 'its peers reported forwarding after its failures: broken',
      input: fleet(
        T0,
        { peerOpts: { b: dead, c: dead }, reportAgoMs: 3000 },
        { b: { reportAgoMs: 1000 }, c: { reportAgoMs: 2000 } },
      ),
      healthy: false,
      reason: 'forwarding broken: peer probes to b, c failed',
    },
    {
      name: 'slow control plane: stream connected, reports 40 s late',
      input: fleet(T0, { reportAgoMs: 40_000 }),
      healthy: true,
    },
    {
      name: 'slow control plane: stream reconnecting, reports 25 s late',
      input: fleet(T0, { reportAgoMs: 25_000, isConnected: false }),
      healthy: true,
    },
  ];
  for (const c of cases) {
    const s = serving(c.input, T0).serving.get('a');
    t.equal(s?.isHealthy, c.healthy, `${c.name}: healthy`);
    if (c.reason !== undefined) t.equal(s?.reason, c.reason, `${c.name}: reason`);
  }
});

t.test("once broken, its next report (newer than its peers') keeps it broken, not recovering", async (t) => {
  const first = serving(fleet(T0, { peerOpts: { b: dead, c: dead } }), T0);
  t.equal(first.serving.get('a')?.isHealthy, false, 'broken at first');
  const t1 = T0 + 5000;
  const input = fleet(
    t1,
    { peerOpts: { b: dead, c: dead }, lastReportAtMs: t1 - 500 },
    { b: { lastReportAtMs: T0 - 2000 }, c: { lastReportAtMs: T0 - 2000 } },
  );
  const next = serving(input, t1, first.snap, first.serving).serving.get('a');
  t.equal(next?.isHealthy, false, 'still broken');
  t.equal(next?.reason, 'forwarding broken: peer probes to b, c failed', 'the reason stays');
  t.equal(next?.clearSinceMs, null, 'no hold-down clock started');
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

t.test('unreachable: stream down and every live peer that probes it fails to reach it', async (t) => {
  const lost = { isReachable: false, lossRatio: 0.1 };
  const cut = { a: lost };
  const cases: Array<{
    name: string;
    input: AgentHealthInput[];
    healthy: boolean;
    reason?: string;
    peersHealthy?: boolean;
  }> = [
    {
      name: 'stream down, both peers cannot reach it (one lost echo each is enough with the stream gone)',
      input: fleet(T0, { isConnected: false }, { b: { peerOpts: cut }, c: { peerOpts: cut } }),
      healthy: false,
      reason: 'no config stream and its peers cannot reach it (probes from b, c fail)',
      peersHealthy: true,
    },
    {
      name: 'stream down, one peer still reaches it: forwarding, the control plane is only slow',
      input: fleet(T0, { isConnected: false }, { b: { peerOpts: cut } }),
      healthy: true,
    },
    {
      name: 'stream down, the only peer probing it reaches it',
      input: fleet(T0, { isConnected: false }, { b: { peerOpts: { a: { isProbed: false } } } }),
      healthy: true,
    },
    {
      name: 'stream down, its report old, peers reach it: still not silent long enough',
      input: fleet(T0, { isConnected: false, reportAgoMs: 25_000 }),
      healthy: true,
    },
    {
      name: 'stream connected, peers cannot reach it: not this rule (its own probes say it forwards)',
      input: fleet(T0, {}, { b: { peerOpts: cut }, c: { peerOpts: cut } }),
      healthy: true,
    },
    {
      name: 'stream down, the failing peers are not connected themselves: no evidence',
      input: fleet(
        T0,
        { isConnected: false },
        { b: { peerOpts: cut, isConnected: false }, c: { peerOpts: cut, isConnected: false } },
      ),
      healthy: true,
    },
    {
      name: 'stream down, the failing peers reported too long ago: no evidence',
      input: fleet(
        T0,
        { isConnected: false },
        { b: { peerOpts: cut, reportAgoMs: 40_000 }, c: { peerOpts: cut, reportAgoMs: 40_000 } },
      ),
      healthy: true,
    },
    {
      name: 'stream down, peers have no verdict yet (not probed): no evidence',
      input: fleet(
        T0,
        { isConnected: false },
        {
          b: { peerOpts: { a: { isProbed: false, isReachable: false } } },
          c: { peerOpts: { a: { isProbed: false, isReachable: false } } },
        },
      ),
      healthy: true,
    },
    {
      name: 'stream down, the failing peer is revoked: no evidence',
      input: fleet(
        T0,
        { isConnected: false },
        { b: { peerOpts: cut, isRevoked: true }, c: { peerOpts: { a: { isProbed: false } } } },
      ),
      healthy: true,
    },
  ];
  for (const c of cases) {
    const s = serving(c.input, T0).serving;
    t.equal(s.get('a')?.isHealthy, c.healthy, `${c.name}: healthy`);
    if (c.reason !== undefined) t.equal(s.get('a')?.reason, c.reason, `${c.name}: reason`);
    if (c.peersHealthy !== undefined) {
      // b and c probe nobody else: their failing probe to a dead box is not their fault.
      t.equal(s.get('b')?.isHealthy, c.peersHealthy, `${c.name}: b healthy`);
      t.equal(s.get('c')?.isHealthy, c.peersHealthy, `${c.name}: c healthy`);
    }
  }
});

t.test(
  'unreachable, then its peers stop probing it: stays unhealthy until it is heard from, then the hold-down',
  async (t) => {
    const lost = { a: { isReachable: false, lossRatio: 0.1 } };
    const down = (now: number) =>
      fleet(now, { isConnected: false, lastReportAtMs: T0 - 4000 }, { b: { peerOpts: lost }, c: { peerOpts: lost } });
    // Its subnets moved away, so its peers no longer have it in their configs or reports.
    const forgotten = (now: number) => [
      agentInput('a', now, { peers: [], isConnected: false, lastReportAtMs: T0 - 4000 }),
      agentInput('b', now, { peers: [] }),
      agentInput('c', now, { peers: [] }),
    ];
    // Power back: it reconnects and reports at T0 + 60 s.
    const back = (now: number) => fleet(now, { lastReportAtMs: T0 + 60_000 });
    let st = serving(fleet(T0 - 10_000), T0 - 10_000);
    t.equal(st.serving.get('a')?.isHealthy, true);
    const steps: Array<[number, (n: number) => AgentHealthInput[], boolean, string]> = [
      [0, down, false, 'no config stream and its peers cannot reach it (probes from b, c fail)'],
      [5_000, forgotten, false, 'not heard from since it became unhealthy (no config stream, no report)'],
      [20_000, forgotten, false, 'not heard from since it became unhealthy (no config stream, no report)'],
      [40_000, forgotten, false, 'silent: no report for 44 s and no config stream'],
      [61_000, back, false, 'recovering: healthy for 0 s of 30 s hold-down'],
      [80_000, back, false, 'recovering: healthy for 19 s of 30 s hold-down'],
      [91_000, back, true, 'forwarding'],
    ];
    for (const [dt, input, healthy, reason] of steps) {
      st = serving(input(T0 + dt), T0 + dt, st.snap, st.serving);
      t.equal(st.serving.get('a')?.isHealthy, healthy, `t+${dt / 1000}s healthy`);
      t.equal(st.serving.get('a')?.reason, reason, `t+${dt / 1000}s reason`);
    }
  },
);

t.test('unreachable for a moment (a blip on its uplink): no flapping, back only after the hold-down', async (t) => {
  const lost = { a: { isReachable: false, lossRatio: 0.1 } };
  const blip = (now: number) =>
    fleet(now, { isConnected: false, lastReportAtMs: T0 - 3000 }, { b: { peerOpts: lost }, c: { peerOpts: lost } });
  const fine = (now: number) => fleet(now);
  let st = serving(fine(T0 - 5000), T0 - 5000);
  const steps: Array<[number, (n: number) => AgentHealthInput[], boolean]> = [
    [0, blip, false],
    [2_000, fine, false],
    [20_000, fine, false],
    [31_000, blip, false],
    [33_000, fine, false],
    [62_000, fine, false],
    [63_000, fine, true],
  ];
  for (const [dt, input, healthy] of steps) {
    st = serving(input(T0 + dt), T0 + dt, st.snap, st.serving);
    t.equal(st.serving.get('a')?.isHealthy, healthy, `t+${dt / 1000}s healthy: ${st.serving.get('a')?.reason}`);
  }
});

t.test('revoked agents are not listed', async (t) => {
  const s = serving([agentInput('a', T0, { isRevoked: true }), agentInput('b', T0)], T0);
  t.same([...s.serving.keys()], ['b']);
});
