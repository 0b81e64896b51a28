// The controller benchmarks' simulated agents: each the real agent control client
// (agent/control/connect.ts) with one WatchConfig stream, its reconnect backoff and its list of
// controller URLs, but multiplexed over shared HTTP/2 connections (`transportFor`) so that
// thousands fit in one process. Per agent we keep what the figures need.
import type { Transport } from '@connectrpc/connect';
import { systemClock } from '../lib/clock.js';
import { silentLogger } from '../lib/logger.js';
import { createControlClient } from '../agent/control/connect.js';
import { agentCidr } from './controller-fixture.js';

export interface SimAgents {
  /** Generation of the last config each agent received, how many, and when (ms since epoch). */
  readonly lastGeneration: bigint[];
  readonly configCount: number[];
  readonly lastConfigAtMs: number[];
  /** Whether each agent's stream is open now, and the controller URL it uses (or dials). */
  readonly isConnected: boolean[];
  readonly url: string[];
  /** When each agent last saw its open stream end (0: never). */
  readonly lastDropAtMs: number[];
  /** Stream drops seen so far. */
  disconnects(): number;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens `count` agents' streams in batches, each batch once the previous one has its first
 *  configs (agents do not all start in the same millisecond, and this process must not starve them);
 *  resolves when every agent has its first config. */
export async function startSimAgents(opts: {
  count: number;
  caFingerprint: string;
  /** Agent i's controller URLs, first choice first (as its join token would list them). */
  urlsOf: (i: number) => string[];
  transportFor: (url: string, i: number) => Transport;
  batch?: number;
}): Promise<SimAgents> {
  const n = opts.count;
  const batch = opts.batch ?? 250;
  const lastGeneration = new Array<bigint>(n).fill(0n);
  const configCount = new Array<number>(n).fill(0);
  const lastConfigAtMs = new Array<number>(n).fill(0);
  const isConnected = new Array<boolean>(n).fill(false);
  const url = new Array<string>(n).fill('');
  const lastDropAtMs = new Array<number>(n).fill(0);
  let disconnects = 0;
  const log = silentLogger();
  const watchers: { stop(): Promise<void> }[] = [];
  for (let i = 0; i < n; i++) {
    const client = createControlClient({
      controllerUrls: opts.urlsOf(i),
      caFingerprint: opts.caFingerprint,
      credential: `bench-${i}`,
      log,
      clock: systemClock,
      transportFor: (u) => {
        url[i] = u;
        return opts.transportFor(u, i);
      },
    });
    watchers.push(
      client.watch(
        {
          onConfig: (c) => {
            lastGeneration[i] = c.generation;
            configCount[i]!++;
            lastConfigAtMs[i] = Date.now();
          },
          onState: (s) => {
            if (!s.isConnected && isConnected[i]) {
              disconnects++;
              lastDropAtMs[i] = Date.now();
            }
            isConnected[i] = s.isConnected;
          },
        },
        {
          knownContentHash: () => '',
          endpoint: '',
          advertisedSubnets: [agentCidr(i)],
          agentVersion: '0.1.0',
        },
      ),
    );
    if (i % batch === batch - 1 || i === n - 1) {
      const from = Math.max(0, i + 1 - batch);
      while (configCount.slice(from, i + 1).some((c) => c === 0)) await sleep(5);
    }
  }
  while (configCount.some((c) => c === 0)) await sleep(50);
  return {
    lastGeneration,
    configCount,
    lastConfigAtMs,
    isConnected,
    url,
    lastDropAtMs,
    disconnects: () => disconnects,
    stop: async () => {
      await Promise.all(watchers.map((w) => w.stop()));
    },
  };
}
