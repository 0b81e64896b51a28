// The agent side of `npm run bench:agent`: the real agent, in a process of its own that
// bench/agent.ts starts inside a box's network namespace (`ip netns exec NS node …`), so commands
// run as they do on a box and the RSS measured here is an agent's. Driven over the IPC channel;
// every message gets exactly one answer.
//
// What runs here is the agent's composition root, `startAgent()` (agent/main.ts), with the same
// parts `crosslink agent run` wires: the real Linux host (wg, ip, nft, wireguard-go), the
// Reconciler, the nft renderer, the status endpoint (/status, /metrics) and its prom-client
// registry, the prober, the `ip monitor` host-event watcher and a pino logger (to a file here, to
// the journal on a box). Only the controller is missing: the control client is a stand-in that
// hands over the configs the bench sends (a real Connect client is built as well, so its modules
// and objects are in the process, but it never dials). What a box also does, and what the timed
// runs must not see, is held until the 'memory' message (see steadyState): enrollment and with it
// reports, probes of the peers, host-event kicks and the periodic resync.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { systemClock } from '../lib/clock.js';
import { formatJoinToken } from '../lib/join-token.js';
import { createLogger } from '../lib/logger.js';
import {
  AgentConfigSchema,
  EnrollResponseSchema,
  ReportRequestSchema,
  type AgentConfig,
} from '../proto/gen/crosslink/v1/agent_pb.js';
import type { ConfigStreamEvents, ControlClient } from '../agent/control/client.js';
import { createControlClient } from '../agent/control/connect.js';
import { Prober } from '../agent/health/prober.js';
import { osLocalAddresses } from '../agent/health/sockets.js';
import { renderFirewall } from '../agent/host/firewall-render.js';
import { createLinuxHost } from '../agent/host/linux/host.js';
import { ProcessRunner, type CommandRunner, type RunOptions, type RunResult } from '../agent/host/linux/run.js';
import { startAgent, type AgentDeps, type RunningAgent } from '../agent/main.js';
import { FlowCollector } from '../agent/flows/collector.js';
import type { AgentSettings } from '../agent/reconcile/desired.js';
import { watchHostEvents } from '../agent/reconcile/events.js';
import { describeStep } from '../agent/reconcile/plan.js';
import { AGENT_UNIT_ENV_NAMES, agentUnitEnv } from './agent-unit-env.js';

type Msg = { type: string } & Record<string, unknown>;

/** Seconds the agent runs as on a box (probes, reports, resyncs, scrapes) before RSS is read. */
const STEADY_SECONDS = Number(process.env.CROSSLINK_BENCH_STEADY_SECONDS ?? 30);
/** The agent's default resync interval (agent/reconcile/loop.ts) and a Prometheus-like scrape. */
const RESYNC_MS = 10_000;
const SCRAPE_MS = 10_000;
const AGENT_NAME = 'box-a';

/** The real runner, recording each command (first words and duration) of the run being measured. */
class CountingRunner implements CommandRunner {
  private readonly inner = new ProcessRunner();
  commands: string[] = [];
  /** Start of the run being measured: each command is logged with its start, relative to this. */
  originMs = performance.now();
  async run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    const t0 = performance.now();
    try {
      return await this.inner.run(argv, opts);
    } finally {
      this.commands.push(
        `${argv.slice(0, 3).join(' ')} (@${(t0 - this.originMs).toFixed(0)} +${(performance.now() - t0).toFixed(0)} ms)`,
      );
    }
  }
  reset(): void {
    this.commands = [];
    this.originMs = performance.now();
  }
  startDaemon = this.inner.startDaemon.bind(this.inner);
  watch = this.inner.watch.bind(this.inner);
}

/** Stands in for the controller. Enrollment waits until steadyState() (so no report runs while
 *  the bench times applies); then the config stream connects and delivers the last config. */
class BenchControl {
  private releaseEnroll: (() => void) | null = null;
  private readonly enrolled = new Promise<void>((r) => (this.releaseEnroll = r));
  private events: ConfigStreamEvents | null = null;
  private watching: (() => void) | null = null;
  readonly isWatching = new Promise<void>((r) => (this.watching = r));
  lastConfig: AgentConfig | null = null;
  /** Reports the agent sent (to the stand-in: built and serialised, not sent over a network). */
  reports = 0;

  readonly factory: AgentDeps['createControlClient'] = (opts) => {
    // Built, never dialled: a real agent holds one of these (with an HTTP/2 session when connected).
    const real = createControlClient({ ...opts, credential: opts.credential ?? '' });
    const client: ControlClient & { real: unknown } = {
      real,
      enroll: async () => {
        await this.enrolled;
        return create(EnrollResponseSchema, {
          agentId: 'bench-a',
          credential: 'bench-credential',
          overlayAddress: '100.64.0.1/16',
          protocolVersion: 1,
        });
      },
      watch: (events) => {
        this.events = events;
        events.onState({ isConnected: true, atMs: systemClock.nowMs() });
        if (this.lastConfig) events.onConfig(this.lastConfig);
        this.watching?.();
        return { stop: () => Promise.resolve() };
      },
      report: (r) => {
        this.reports++;
        // What the Connect client does with a report before it reaches the network.
        toBinary(ReportRequestSchema, create(ReportRequestSchema, { ...r, protocolVersion: 1 }));
        return Promise.resolve();
      },
    };
    return client;
  };

  connect(): void {
    this.releaseEnroll?.();
  }

  /** A config from the controller: through the stream once it is connected. */
  push(config: AgentConfig, agent: RunningAgent): ReturnType<RunningAgent['reconciler']['setDesired']> {
    this.lastConfig = config;
    if (this.events) {
      const before = agent.reconciler.desiredState?.contentHash;
      this.events.onConfig(config);
      return { isChanged: agent.reconciler.desiredState?.contentHash !== before };
    }
    return agent.reconciler.setDesired(config);
  }
}

const send = (m: Msg) => process.send!(m);
let agent: RunningAgent | null = null;
let host: ReturnType<typeof createLinuxHost> | null = null;
let isSteady = false;
const control = new BenchControl();
const runner = new CountingRunner();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;

/** The memory settings this process runs with, and whether they are the agent unit's (production). */
function memorySettings(): string {
  const ours = AGENT_UNIT_ENV_NAMES.filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
  const unitFile = join(process.cwd(), 'deploy/systemd/crosslink-agent.service');
  const none = `no ${AGENT_UNIT_ENV_NAMES.join('/')}`;
  if (!existsSync(unitFile)) return `${ours.join(' ') || none} (unit file not found)`;
  const unit = agentUnitEnv(readFileSync(unitFile, 'utf8'));
  const isSame = unit.length === ours.length && unit.every((u) => ours.includes(u));
  return `${ours.join(' ') || none}${isSame ? ', as the agent unit' : `; DIFFERS from the agent unit (${unit.join(' ') || 'none'})`}`;
}

function memory() {
  globalThis.gc?.();
  return {
    rss: process.memoryUsage().rss,
    heapUsed: process.memoryUsage().heapUsed,
    maxRss: process.resourceUsage().maxRSS * 1024,
  };
}

/** GET a local URL the way a monitoring system would: from another process (curl), so the
 *  response body is not counted in the agent's RSS. */
function scrape(url: string): Promise<void> {
  return new Promise((resolve) => {
    const c = spawn('curl', ['-s', '-o', '/dev/null', '--max-time', '10', url], { stdio: 'ignore' });
    c.on('error', () => resolve());
    c.on('exit', () => resolve());
  });
}

/**
 * Lets the agent run as on a box for STEADY_SECONDS: enrolls (with the stand-in), the config
 * stream delivers the config in force, reports are sent after applies and every 10 s, probes run
 * against every peer, `ip monitor` kicks reconciles, a resync runs every 10 s (the agent's
 * default; the bench's timed runs use a long one), and /status and /metrics are scraped every
 * 10 s. Samples RSS every second, without forcing a GC.
 */
async function steadyState(): Promise<{ samples: number[]; scrapes: number }> {
  isSteady = true;
  control.connect();
  await control.isWatching;
  await agent!.reconciler.reconcile('resync');
  const samples: number[] = [];
  const base = `http://${agent!.statusAddress!.host}:${agent!.statusAddress!.port}`;
  let scrapes = 0;
  const t0 = performance.now();
  let nextResync = t0 + RESYNC_MS;
  let nextScrape = t0;
  while (performance.now() - t0 < STEADY_SECONDS * 1000) {
    const now = performance.now();
    if (now >= nextScrape) {
      nextScrape += SCRAPE_MS;
      scrapes++;
      void scrape(`${base}/metrics`).then(() => scrape(`${base}/status`));
    }
    if (now >= nextResync) {
      nextResync += RESYNC_MS;
      void agent!.reconciler.reconcile('resync');
    }
    await sleep(1000);
    samples.push(process.memoryUsage().rss);
  }
  return { samples, scrapes };
}

async function handle(m: Msg): Promise<Msg> {
  switch (m.type) {
    case 'init': {
      const settings = m.settings as AgentSettings;
      const tempDir = m.tempDir as string;
      const stateDir = mkdtempSync(join(tempDir, 'agent-state-'));
      // The agent takes its WireGuard key from its state dir; box B knows it as the bench's key A.
      copyFileSync(settings.privateKeyFile, join(stateDir, 'private.key'));
      host = createLinuxHost({ runner, tempDir });
      const probeRunner = new ProcessRunner();
      const log = createLogger({ name: 'crosslink-agent', destination: openSync(join(stateDir, 'agent.log'), 'a') });
      agent = await startAgent(
        {
          stateDir,
          interfaceName: settings.interfaceName,
          listenPort: settings.listenPort,
          mtu: settings.mtu,
          wireguard: settings.wireguardMode,
          endpoint: '',
          advertise: [],
          statusListen: '127.0.0.1:0',
          agentVersion: 'bench',
          join: formatJoinToken({
            controllerUrls: ['https://127.0.0.1:9'],
            caFingerprint: 'ab'.repeat(32),
            secret: 'bench-join-secret-0123456789',
            agentName: AGENT_NAME,
          }),
          // The bench triggers every timed run itself: no periodic resync, no early gateway claim
          // (steadyState() resyncs every 10 s, as the default interval would).
          resyncIntervalMs: 3_600_000,
          gatewayClaimAfterMs: 3_600_000,
          // The flow log (conntrack -E and the drop log's tcpdump) only where the bench asks for it.
          flowLogMaxBytes: m.flowLog === true ? undefined : 0,
        },
        {
          host,
          createControlClient: control.factory,
          renderFirewall,
          clock: systemClock,
          log,
          detectWireguardMode: () => Promise.resolve(settings.wireguardMode), // given explicitly above
          // The host's `ip monitor` runs from the start; its kicks would add runs to the timed ones.
          watchHostEvents: (o) =>
            watchHostEvents({
              ...o,
              feed: host!.events!,
              kick: () => {
                if (isSteady) o.kick();
              },
            }),
          // Probes nothing until the config stream has delivered a config (steadyState()).
          createProber: ({ log: plog, clock, onRound }) =>
            new Prober({ runner: probeRunner, clock, log: plog, localAddresses: osLocalAddresses, onRound }),
          createFlowCollector: (o) => new FlowCollector({ ...o, runner: probeRunner }),
        },
      );
      return { type: 'ready', ...memory() };
    }
    case 'apply': {
      const config = fromBinary(AgentConfigSchema, Buffer.from(m.config as string, 'base64'));
      runner.reset();
      const t0 = performance.now();
      const res = control.push(config, agent!);
      const t1 = performance.now();
      // The agent's loop has queued a run for the new config; this joins it.
      const out = await agent!.reconciler.reconcile('config');
      const t2 = performance.now();
      return {
        type: 'applied',
        ms: t2 - t0,
        setDesiredMs: t1 - t0,
        reconcileMs: t2 - t1,
        isChanged: res.isChanged,
        steps: (out?.steps ?? []).map(describeStep).map((s) => s.slice(0, 80)),
        errors: (out?.errors ?? []).map((e) => `${e.step}: ${e.command} -> ${e.exitCode} ${e.stderr.slice(0, 200)}`),
        commands: runner.commands,
      };
    }
    case 'noop': {
      const runs: Array<{ ms: number; steps: number; commands: string[] }> = [];
      for (let i = 0; i < (m.runs as number); i++) {
        await sleep(m.gapMs as number);
        runner.reset();
        const t0 = performance.now();
        const out = await agent!.reconciler.reconcile('resync');
        runs.push({ ms: performance.now() - t0, steps: out?.steps.length ?? -1, commands: runner.commands });
      }
      return { type: 'noops', runs };
    }
    case 'settle': {
      await host!.firewall.settled();
      return { type: 'settled' };
    }
    case 'memory': {
      const { samples, scrapes } = await steadyState();
      const noGc = process.memoryUsage().rss;
      const sorted = [...samples].sort((a, b) => a - b);
      const steadyMedian = sorted[sorted.length >> 1] ?? noGc;
      const steadyMax = sorted[sorted.length - 1] ?? noGc;
      const mem = memory();
      process.stderr.write(
        `    agent process (startAgent: host, reconciler, status+metrics, prober, ip monitor, pino; ${memorySettings()}): ` +
          `over ${STEADY_SECONDS} s as on a box (${control.reports} reports, ${scrapes} scrapes of /metrics and /status, resync every 10 s, probes) ` +
          `RSS median ${mb(steadyMedian)}, max ${mb(steadyMax)} without forced GC; ${mb(mem.rss)} after GC; peak ${mb(mem.maxRss)}\n`,
      );
      return { type: 'memory', ...mem, rssSteadyMedian: steadyMedian, rssSteadyMax: steadyMax };
    }
    default:
      throw new Error(`unknown message ${m.type}`);
  }
}

process.on('message', (m: Msg) => {
  handle(m).then(send, (e: unknown) =>
    send({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
  );
});
process.on('disconnect', () => {
  // The data plane is left as it is (the bench deletes the namespace); only our monitors go.
  host?.close();
  process.exit(0);
});
