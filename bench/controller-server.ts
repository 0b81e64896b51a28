// Child process of bench/controller.ts: one controller (agent service + distributor + store) with
// N agents already enrolled (credential "bench-<i>") and a pairwise policy. Talks to the parent over
// IPC: "apply" a policy change, report "stats", measure "idle" CPU.
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { silentLogger } from '../lib/logger.js';
import { MemoryStore } from '../controller/store/memory.js';
import type { Store } from '../controller/store/store.js';
import { parsePolicy } from '../controller/policy/validate.js';
import { startTestController } from '../controller/rpc/test-controller.fixture.js';
import { policyDocument, seedBenchStore } from './controller-fixture.js';

const n = Number(process.env.BENCH_AGENTS ?? 5000);
const affectedShare = Number(process.env.BENCH_AFFECTED ?? 0.1);
const storeKind = process.env.BENCH_STORE ?? 'memory';
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

function peakRssBytes(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
}

async function openStore(): Promise<{ store: Store; cleanup: () => void }> {
  if (storeKind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'xl-bench-db-'));
    const { openSqliteStore } = await import('../controller/store/sqlite.js');
    const store = openSqliteStore({ path: join(dir, 'c.db'), clock: systemClock });
    await store.migrate();
    return { store, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  }
  return { store: new MemoryStore(), cleanup: () => undefined };
}

const actor = { name: 'bench', role: 'admin' as const, address: '' };

const { store, cleanup } = await openStore();
await seedBenchStore(store, n);

const startMs = performance.now();
const ctl = await startTestController({
  store,
  log: silentLogger(),
  heartbeatIntervalMs: Number(process.env.BENCH_HEARTBEAT_MS ?? 10_000),
  maxConcurrentStreams: 10_000,
});
const startupMs = performance.now() - startMs;
gc();
const baseline = { rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed };

const onMessage = async (msg: { type: string; windowMs?: number }): Promise<void> => {
  try {
    if (msg.type === 'apply') {
      const receivedAtMs = Date.now();
      const t0 = performance.now();
      const doc = policyDocument(n, Math.round((n * affectedShare) / 2));
      const parsed = parsePolicy(doc);
      if (!parsed.policy) throw new Error(JSON.stringify(parsed.errors?.slice(0, 3)));
      const t1 = performance.now();
      const cur = await store.currentPolicy();
      const pv = await store.appendPolicy(
        { document: doc, expectedVersion: cur!.version, createdBy: 'bench', comment: 'bench change', atMs: Date.now() },
        { actor, action: 'policy.put', target: 'policy', before: null, after: null },
      );
      if (pv === 'conflict') throw new Error('conflict');
      const t2 = performance.now();
      const distributeStartedAtMs = Date.now();
      await ctl.distributor.setPolicy(parsed.policy, pv.version);
      const t3 = performance.now();

      process.send!({
        type: 'applied',
        receivedAtMs,
        distributeStartedAtMs,
        parseMs: t1 - t0,
        storeMs: t2 - t1,
        distributeMs: t3 - t2,
      });
    } else if (msg.type === 'stats') {
      gc();
      const m = process.memoryUsage();
      process.send!({
        type: 'stats',
        rss: m.rss,
        heap: m.heapUsed,
        peakRss: peakRssBytes(),
        baseline,
        streams: ctl.distributor.streamCount(),
        connected: ctl.distributor.connectedCount(),
        startupMs,
      });
    } else if (msg.type === 'idle') {
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      await new Promise((r) => setTimeout(r, msg.windowMs ?? 10_000));
      const c = process.cpuUsage(c0);
      const wallMs = performance.now() - w0;
      process.send!({ type: 'idle', cpuPercent: ((c.user + c.system) / 1000 / wallMs) * 100, wallMs });
    } else if (msg.type === 'exit') {
      await ctl.close();
      cleanup();
      process.exit(0);
    }
  } catch (e) {
    process.send!({ type: 'error', message: String((e as Error).stack ?? e) });
  }
};
process.on('message', (msg: { type: string; windowMs?: number }) => void onMessage(msg)); // it reports its own failures

process.send!({
  type: 'ready',
  url: ctl.url,
  caFingerprint: ctl.caFingerprint,
  caCertPem: ctl.caCertPem,
  agents: n,
  startupMs,
});
