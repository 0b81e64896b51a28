// Child process of bench/controller.ts: one controller (agent service + distributor + store) with
// N agents already enrolled (credential "bench-<i>") and a pairwise policy. Talks to the parent over
// IPC: "apply" a policy change, report "stats", measure "idle" CPU.
import { createHash } from 'node:crypto';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { silentLogger } from '../lib/logger.js';
import { MemoryStore } from '../controller/store/memory.js';
import type { Store } from '../controller/store/store.js';
import { parsePolicy } from '../controller/policy/validate.js';
import { startTestController } from '../controller/rpc/test-controller.fixture.js';

const n = Number(process.env.BENCH_AGENTS ?? 5000);
const affectedShare = Number(process.env.BENCH_AFFECTED ?? 0.1);
const storeKind = process.env.BENCH_STORE ?? 'memory';
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

export const agentName = (i: number) => `ag-${String(i).padStart(5, '0')}`;
const cidr = (i: number) => `10.${(i >> 8) & 255}.${i & 255}.0/24`;

/** Pairs (2k, 2k+1): one rule each, so every agent has exactly one peer. `changedPairs` get tcp/8443 too. */
function policyDocument(changedPairs: number): string {
  const agents: Record<string, unknown> = {};
  const subnets: Record<string, unknown> = {};
  const rules: unknown[] = [];
  for (let i = 0; i < n; i++) {
    agents[agentName(i)] = { zones: [i % 2 ? 'psn' : 'n3'] };
    subnets[`s-${agentName(i)}`] = { cidr: cidr(i), zone: i % 2 ? 'psn' : 'n3', via: [agentName(i)] };
  }
  for (let k = 0; k < n / 2; k++) {
    rules.push({
      name: `r-${k}`,
      from: `s-${agentName(2 * k)}`,
      to: `s-${agentName(2 * k + 1)}`,
      ports: k < changedPairs ? ['tcp/443', 'tcp/8443'] : ['tcp/443'],
    });
  }
  return JSON.stringify({
    version: 1,
    zones: { n3: { description: 'NHS' }, psn: { description: 'council' } },
    agents,
    subnets,
    rules,
  });
}

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

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const actor = { name: 'bench', role: 'admin' as const, address: '' };

const { store, cleanup } = await openStore();
for (let i = 0; i < n; i++) {
  const name = agentName(i);
  await store.enrollAgent(
    {
      id: `id-${i}`,
      name,
      publicKey: createHash('sha256').update(name).digest('base64'),
      endpoint: `192.0.2.${(i % 250) + 1}:${51820 + (i >> 8)}`,
      endpoints: [],
      isRelay: false,
      overlayAddress: `100.${64 + (((i + 1) >> 16) & 63)}.${((i + 1) >> 8) & 255}.${(i + 1) & 255}/10`,
      advertised: [cidr(i)],
      credentialHash: sha(`bench-${i}`),
      agentVersion: '0.1.0',
      protocolVersion: 1,
      enrolledAtMs: Date.now(),
      revokedAtMs: null,
      desiredGeneration: 0,
      desiredHash: '',
      appliedGeneration: 0,
      lastReportAtMs: null,
      lastReport: null,
    },
    '',
    { actor, action: 'agent.enroll', target: `agent/${name}`, before: null, after: null },
  );
}
const firstDoc = policyDocument(0);
await store.appendPolicy(
  { document: firstDoc, expectedVersion: 0, createdBy: 'bench', comment: '', atMs: Date.now() },
  { actor, action: 'policy.put', target: 'policy', before: null, after: null },
);

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
      const doc = policyDocument(Math.round((n * affectedShare) / 2));
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
