import { create } from '@bufbuild/protobuf';
import t from 'tap';
import { AgentConfigSchema, PeerSchema } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { silentLogger } from '../../lib/logger.js';
import type { ProbeTimers } from './ports.js';
import { Prober } from './prober.js';
import { fakeRunner, PING_OK, probe } from './probes.fixture.js';

t.test('prober loop: rounds on the timer, results per config, interval from the config', async (t) => {
  const ticks: Array<{ fn: () => void; ms: number }> = [];
  const timers: ProbeTimers = {
    setInterval: (fn, ms) => {
      ticks.push({ fn, ms });
      return ticks.length - 1;
    },
    clearInterval: (h) => {
      ticks.splice(h as number, 1);
    },
  };
  const { runner } = fakeRunner({ '100.64.0.9': Array.from({ length: 10 }, () => ({ exitCode: 0, stdout: PING_OK })) });
  let rounds = 0;
  const prober = new Prober({
    runner,
    clock: { nowMs: () => 1000 },
    localAddresses: () => ['10.1.0.7'],
    log: silentLogger(),
    timers,
    connectTcp: async () => ({ kind: 'connected', rttMs: 1 }),
    onRound: () => {
      rounds += 1;
    },
  });
  const config = create(AgentConfigSchema, {
    peers: [create(PeerSchema, { name: 'b', overlayIp: '100.64.0.9' })],
    probes: [probe({})],
    probeIntervalSeconds: 3,
  });
  prober.setConfig(config);
  prober.start();
  await prober.runOnce();
  t.equal(ticks.length, 1);
  t.equal(ticks[0]?.ms, 3000);
  t.equal(rounds, 2, 'once when peer b became reachable, once after the round');
  t.same(prober.peerFields('b'), { isProbed: true, isReachable: true, rttMs: 0.734, lossRatio: 0 });
  t.same(
    prober.probeResults().map((r) => [r.name, r.isOk]),
    [['care/0', true]],
  );
  ticks[0]!.fn(); // one timer: asserted above
  await prober.runOnce();
  t.equal(rounds, 3, 'nothing changed: once, after the round');
  prober.setConfig(create(AgentConfigSchema, { peers: [], probes: [] }));
  t.same(prober.probeResults(), [], 'results of probes no longer configured are dropped');
  t.equal(ticks[0]?.ms, 5000, 'default interval, timer restarted');
  prober.stop();
  t.equal(ticks.length, 0);
});

t.test('prober loop: a peer that stops answering is told at once, not after slow path probes', async (t) => {
  const timers: ProbeTimers = { setInterval: () => 0, clearInterval: () => undefined };
  let isPeerUp = true;
  const runner = {
    run: async () =>
      isPeerUp ? { exitCode: 0, stdout: PING_OK, stderr: '' } : { exitCode: 1, stdout: '', stderr: '' },
  };
  let releasePath: (() => void) | null = null;
  const seen: boolean[] = [];
  const prober: Prober = new Prober({
    runner,
    clock: { nowMs: () => 1000 },
    localAddresses: () => ['10.1.0.7'],
    log: silentLogger(),
    timers,
    // The path probe goes through the dead box: it hangs until its timeout (released by hand here).
    connectTcp: () =>
      new Promise((resolve) => {
        releasePath = () => resolve({ kind: 'timeout', detail: 'timeout after 2000 ms' });
      }),
    onRound: () => {
      seen.push(prober.peerFields('b').isReachable);
    },
  });
  prober.setConfig(
    create(AgentConfigSchema, {
      peers: [create(PeerSchema, { name: 'b', overlayIp: '100.64.0.9' })],
      probes: [probe({})],
    }),
  );
  for (let i = 0; i < 3; i++) {
    const round = prober.runOnce();
    await new Promise((r) => setTimeout(r, 10));
    releasePath!();
    await round;
  }
  seen.length = 0;
  isPeerUp = false;
  const round = prober.runOnce();
  await new Promise((r) => setTimeout(r, 10));
  t.same(seen, [false], 'told while the path probe still runs');
  releasePath!();
  await round;
  t.same(seen, [false, false], 'and after the round');
});
