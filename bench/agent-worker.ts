// The agent side of `npm run bench:agent`: the real Reconciler over the real Linux host, in a process
// of its own that bench/agent.ts starts inside a box's network namespace (`ip netns exec NS node …`),
// so commands run as they do on a box and the RSS measured here is the agent's alone. Driven over
// the IPC channel; every message gets exactly one answer.
import { performance } from 'node:perf_hooks';
import { fromBinary } from '@bufbuild/protobuf';
import { systemClock } from '../lib/clock.js';
import { silentLogger } from '../lib/logger.js';
import { AgentConfigSchema } from '../proto/gen/crosslink/v1/agent_pb.js';
import { renderFirewall } from '../agent/host/firewall-render.js';
import { createLinuxHost } from '../agent/host/linux/host.js';
import { ProcessRunner, type CommandRunner, type RunOptions, type RunResult } from '../agent/host/linux/run.js';
import type { AgentSettings } from '../agent/reconcile/desired.js';
import { Reconciler } from '../agent/reconcile/loop.js';
import { describeStep } from '../agent/reconcile/plan.js';

type Msg = { type: string } & Record<string, unknown>;

/** The real runner, recording each command (first words and duration) of the run being measured. */
class CountingRunner implements CommandRunner {
  private readonly inner = new ProcessRunner();
  commands: string[] = [];
  async run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    const t0 = performance.now();
    try {
      return await this.inner.run(argv, opts);
    } finally {
      this.commands.push(`${argv.slice(0, 3).join(' ')} (${(performance.now() - t0).toFixed(0)} ms)`);
    }
  }
  startDaemon = this.inner.startDaemon.bind(this.inner);
  watch = this.inner.watch.bind(this.inner);
}

const send = (m: Msg) => process.send!(m);
let reconciler: Reconciler | null = null;
let host: ReturnType<typeof createLinuxHost> | null = null;
const runner = new CountingRunner();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function memory() {
  globalThis.gc?.();
  return { rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed, maxRss: process.resourceUsage().maxRSS * 1024 };
}

async function handle(m: Msg): Promise<Msg> {
  switch (m.type) {
    case 'init': {
      host = createLinuxHost({ runner, tempDir: m.tempDir as string });
      reconciler = new Reconciler({
        host, clock: systemClock, log: silentLogger(), settings: m.settings as AgentSettings, renderFirewall,
        // The bench triggers every run itself; the periodic resync must not run in between.
        resyncIntervalMs: 3_600_000,
      });
      return { type: 'ready', ...memory() };
    }
    case 'apply': {
      const config = fromBinary(AgentConfigSchema, Buffer.from(m.config as string, 'base64'));
      runner.commands = [];
      const t0 = performance.now();
      const res = reconciler!.setDesired(config);
      const t1 = performance.now();
      const out = await reconciler!.reconcile('config');
      const t2 = performance.now();
      return {
        type: 'applied', ms: t2 - t0, setDesiredMs: t1 - t0, reconcileMs: t2 - t1, isChanged: res.isChanged,
        steps: (out?.steps ?? []).map(describeStep).map((s) => s.slice(0, 80)),
        errors: (out?.errors ?? []).map((e) => `${e.step}: ${e.command} -> ${e.exitCode} ${e.stderr.slice(0, 200)}`),
        commands: runner.commands,
      };
    }
    case 'noop': {
      const runs: Array<{ ms: number; steps: number; commands: string[] }> = [];
      for (let i = 0; i < (m.runs as number); i++) {
        await sleep(m.gapMs as number);
        runner.commands = [];
        const t0 = performance.now();
        const out = await reconciler!.reconcile('resync');
        runs.push({ ms: performance.now() - t0, steps: out?.steps.length ?? -1, commands: runner.commands });
      }
      return { type: 'noops', runs };
    }
    case 'settle': {
      await host!.firewall.settled();
      return { type: 'settled' };
    }
    case 'memory':
      return { type: 'memory', ...memory() };
    default:
      throw new Error(`unknown message ${m.type}`);
  }
}

process.on('message', (m: Msg) => {
  handle(m).then(send, (e: unknown) => send({ type: 'error', message: e instanceof Error ? e.stack ?? e.message : String(e) }));
});
process.on('disconnect', () => {
  // The data plane is left as it is (the bench deletes the namespace); only our monitors go.
  host?.close();
  process.exit(0);
});
