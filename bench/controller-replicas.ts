// `npm run bench:controller -- --replicas N [--agents 10000 --connections 100 --settle-ms 2000]`: N real controller
// processes (controller/main.ts, as `crosslink controller serve --database postgres://…` runs it) on
// one throwaway PostgreSQL (scripts/postgres-test.sh), and the simulated agents of the single
// controller bench (bench/sim-agents.ts: the real agent client with its backoff and URL list).
// Agents are handed out round-robin (as DNS round robin would); each lists every replica, the
// others in an order that spreads a dead replica's agents over the survivors. Measures:
//   (a) a policy change PUT to one replica: time until the last affected agent, on any replica,
//       has its new config (once through replica 0, once through replica 1);
//   (b) kill -9 of the last replica (not the leader): time until every agent it served has an open
//       stream on another replica and its config;
//   (c) RSS of each replica.
// Everything it starts (PostgreSQL, controller processes) is stopped by PID on any exit.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createConnectTransport, Http2SessionManager } from '@connectrpc/connect-node';
import type { Transport } from '@connectrpc/connect';
import { ApiClient } from '../cli/commands/api.js';
import { systemClock } from '../lib/clock.js';
import { pinnedTlsOptions } from '../lib/pin.js';
import { openStore } from '../controller/store/open.js';
import { numberArg } from './args.js';
import { policyDocument, seedBenchStore } from './controller-fixture.js';
import { startSimAgents, type SimAgents } from './sim-agents.js';

const pgScript = fileURLToPath(new URL('../scripts/postgres-test.sh', import.meta.url));
const childScript = fileURLToPath(new URL('../test/controller/fixtures/controller-child.ts', import.meta.url));
const registerPath = fileURLToPath(new URL('./register.js', import.meta.url));

interface Replica {
  proc: ChildProcess;
  dir: string;
  url: string;
  caFingerprint: string;
  stderrTail: () => string;
}

const cleanups: (() => void)[] = [];
/** Synchronous, so that it also runs from process.on('exit'); each step runs once. */
function cleanupAll(): void {
  while (cleanups.length > 0) {
    try {
      cleanups.pop()!();
    } catch (e) {
      console.error(`cleanup: ${(e as Error).message}`);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (b: number) => `${(b / 1048576).toFixed(0)} MB`;

function memoryOf(pid: number): { rss: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

function startReplica(dir: string, database: string): Promise<Replica> {
  // bash raises the open-files limit, then execs node: the PID is the controller's.
  const proc = spawn(
    'bash',
    [
      '-c',
      'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"',
      'bash',
      process.execPath,
      '--import',
      registerPath,
      childScript,
      dir,
      '127.0.0.1:0',
      // The simulated agents send no reports (10,000 reports every 10 s are not simulated): the
      // longest report interval keeps the health monitor from judging them silent (3 x 300 s)
      // within the run; otherwise the leader would take them all out of service.
      JSON.stringify({ database, 'report-interval-seconds': 300 }),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { CROSSLINK_LOG_LEVEL: 'error', ...process.env } },
  );
  cleanups.push(() => {
    if (proc.exitCode === null && proc.signalCode === null && proc.pid) process.kill(proc.pid, 'SIGKILL');
  });
  let err = '';
  // BENCH_REPLICA_LOG=/tmp/x (with CROSSLINK_LOG_LEVEL=info): each replica's log in /tmp/x-<dir>.log.
  const logFile = process.env.BENCH_REPLICA_LOG ? `${process.env.BENCH_REPLICA_LOG}-${basename(dir)}.log` : null;
  proc.stderr.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
    if (logFile) appendFileSync(logFile, d);
  });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      const info = JSON.parse(out.slice(0, nl)) as { url: string; caFingerprint: string };
      resolve({ proc, dir, url: info.url, caFingerprint: info.caFingerprint, stderrTail: () => err });
    });
    proc.once('exit', (code, sig) => reject(new Error(`replica exited (${code ?? sig}) before listening: ${err}`)));
  });
}

/** Resolves when `isDone(i)` holds for every i in `which`, polling slowly to stay out of the way. */
async function waitAll(what: string, which: number[], isDone: (i: number) => boolean, ms = 180_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const left = which.filter((i) => !isDone(i)).length;
    if (left === 0) return;
    if (Date.now() > until) throw new Error(`${what}: ${left} of ${which.length} still waiting after ${ms} ms`);
    await sleep(20);
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { first: s[0] ?? NaN, median: s[s.length >> 1] ?? NaN, last: s[s.length - 1] ?? NaN };
};

export async function runReplicasBench(opts: {
  replicas: number;
  agents: number;
  connections: number;
  affectedShare: number;
}): Promise<never> {
  process.on('exit', cleanupAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.on(sig, () => {
      cleanupAll();
      process.exit(130);
    });
  try {
    await run(opts);
    cleanupAll();
    process.exit(0);
  } catch (e) {
    console.error(`bench failed: ${(e as Error).stack ?? String(e)}`);
    cleanupAll();
    process.exit(1);
  }
}

async function run(opts: { replicas: number; agents: number; connections: number; affectedShare: number }) {
  const { replicas: count, agents: n, connections } = opts;
  if (count < 2) throw new Error('--replicas needs at least 2 (one is killed)');
  console.log(
    `controller bench: ${n} agents over ${count} replicas on one PostgreSQL, ${connections} HTTP/2 connections per replica, node ${process.version}`,
  );
  let t = performance.now();
  const database = execFileSync('bash', [pgScript, 'start'], { encoding: 'utf8', timeout: 240_000 }).trim();
  cleanups.push(() => execFileSync('bash', [pgScript, 'stop', database], { stdio: 'ignore' }));
  const store = openStore({ database, clock: systemClock });
  await store.migrate();
  await seedBenchStore(store, n, true);
  await store.close();
  console.log(`PostgreSQL up, ${n} agents enrolled and policy stored in ${(performance.now() - t).toFixed(0)} ms`);

  const reps: Replica[] = [];
  for (let r = 0; r < count; r++) {
    t = performance.now();
    const dir = mkdtempSync(join(tmpdir(), `xl-bench-replica-${r}-`));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    // One CA for all replicas (and the admin token the first start made).
    if (r > 0) for (const f of ['ca.crt', 'ca.key', 'admin.token']) copyFileSync(join(reps[0]!.dir, f), join(dir, f));
    reps.push(await startReplica(dir, database));
    console.log(`replica ${r} (pid ${reps[r]!.proc.pid}) listening in ${(performance.now() - t).toFixed(0)} ms`);
  }
  const urls = reps.map((r) => r.url);
  const fingerprint = reps[0]!.caFingerprint;
  const tls = pinnedTlsOptions(readFileSync(join(reps[0]!.dir, 'ca.crt'), 'utf8'), fingerprint);
  const pools = new Map<string, Transport[]>();
  for (const url of urls) {
    const sessions = Array.from(
      { length: connections },
      // The real agent's PING settings (agent/control/connect.ts).
      () => new Http2SessionManager(url, { pingIntervalMs: 15_000, pingTimeoutMs: 10_000 }, tls),
    );
    cleanups.push(() => sessions.forEach((s) => s.abort()));
    pools.set(
      url,
      sessions.map((sessionManager) => createConnectTransport({ httpVersion: '2', baseUrl: url, sessionManager })),
    );
  }
  // Agent i: replica i mod N first, then the others rotated by i div N.
  const urlsOf = (i: number) => {
    const first = i % count;
    const rest = urls.filter((_, r) => r !== first);
    const k = Math.floor(i / count) % rest.length;
    return [urls[first]!, ...rest.slice(k), ...rest.slice(0, k)];
  };
  t = performance.now();
  const sim: SimAgents = await startSimAgents({
    count: n,
    caFingerprint: fingerprint,
    urlsOf,
    transportFor: (url, i) => pools.get(url)![Math.floor(i / count) % connections]!,
  });
  cleanups.push(() => void sim.stop());
  console.log(`all ${n} streams open with their first config in ${(performance.now() - t).toFixed(0)} ms`);
  await sleep(numberArg('settle-ms', 2000)); // longer: health evaluations run meanwhile
  const onReplica = (r: number) => sim.url.filter((u) => u === urls[r]).length;
  const rssConnected = reps.map((r) => memoryOf(r.proc.pid!));
  const perReplica = urls.map((_, r) => onReplica(r));

  // (a) Policy changes, each through one replica; affected agents are spread over all replicas.
  const api = await Promise.all(
    reps.map((r) =>
      ApiClient.connect({
        controller: r.url,
        token: readFileSync(join(reps[0]!.dir, 'admin.token'), 'utf8').trim(),
        caFingerprint: fingerprint,
        // A replica still busy with the previous change answers late: measure it, do not give up.
        timeoutMs: 180_000,
      }),
    ),
  );
  cleanups.push(() => api.forEach((a) => a.close()));
  const affected = Math.round(n * opts.affectedShare);
  const affectedIdx = Array.from({ length: affected }, (_, i) => i);
  const changes: {
    via: number;
    ackMs: number;
    last: number;
    median: number;
    own: number;
    others: number;
    unaffected: number;
  }[] = [];
  for (const [via, changedPairs] of [
    [0, affected / 2],
    [1, 0],
  ] as const) {
    const current = await api[via]!.request<{ version: number }>('GET', '/v1/policy');
    const before = sim.configCount.slice();
    const genBefore = sim.lastGeneration.slice();
    const t0 = Date.now();
    await api[via]!.request('PUT', '/v1/policy', {
      text: policyDocument(n, changedPairs, true),
      contentType: 'application/json',
      headers: { 'if-match': `"${current.body.version}"` },
    });
    const ackMs = Date.now() - t0;
    await waitAll(`policy change via replica ${via}`, affectedIdx, (i) => sim.lastGeneration[i]! > genBefore[i]!);
    const s = stats(affectedIdx.map((i) => sim.lastConfigAtMs[i]! - t0));
    // The accepting replica pushes to its own agents; the others after NOTIFY, re-read and recompile.
    const own = stats(affectedIdx.filter((i) => sim.url[i] === urls[via]).map((i) => sim.lastConfigAtMs[i]! - t0));
    const others = stats(affectedIdx.filter((i) => sim.url[i] !== urls[via]).map((i) => sim.lastConfigAtMs[i]! - t0));
    await sleep(1000);
    let unaffected = 0;
    for (let i = affected; i < n; i++) if (sim.configCount[i]! > before[i]!) unaffected++;
    changes.push({ via, ackMs, last: s.last, median: s.median, own: own.last, others: others.last, unaffected });
    console.log(
      `policy change via replica ${via}: 2xx after ${ackMs} ms; affected agents updated: median ${s.median} ms, last ${s.last} ms (on replica ${via} ${own.last} ms, on the others ${others.last} ms)`,
    );
  }

  // (b) kill -9 the last replica (replica 0 started first and leads).
  const dead = count - 1;
  const victims = sim.url.flatMap((u, i) => (u === urls[dead] && sim.isConnected[i] ? [i] : []));
  const drops = sim.disconnects();
  const tKill = Date.now();
  reps[dead]!.proc.kill('SIGKILL');
  await waitAll(
    `agents of the killed replica`,
    victims,
    (i) => sim.url[i] !== urls[dead] && sim.isConnected[i]! && sim.lastConfigAtMs[i]! > tKill,
  );
  const back = stats(victims.map((i) => sim.lastConfigAtMs[i]! - tKill));
  const noticed = stats(victims.map((i) => sim.lastDropAtMs[i]! - tKill));
  console.log(`  streams seen ending: first ${noticed.first} ms, median ${noticed.median} ms, last ${noticed.last} ms`);
  console.log(
    `replica ${dead} killed: its ${victims.length} agents back on others: median ${back.median} ms, last ${back.last} ms`,
  );
  await sleep(3000);
  const rssAfter = reps.map((r, i) => (i === dead ? null : memoryOf(r.proc.pid!)));
  const lost = sim.isConnected.filter((c) => !c).length;
  const perReplicaAfter = urls.map((_, r) => onReplica(r));

  console.log('');
  console.log(`| figure (${n} agents, ${count} replicas, one PostgreSQL) | value | target |`);
  console.log('|---|---|---|');
  console.log(
    `| agents per replica, before / after the kill | ${perReplica.join(' / ')}; ${perReplicaAfter.join(' / ')} | |`,
  );
  for (const c of changes) {
    console.log(
      `| policy change PUT to replica ${c.via}: last of ${affected} affected agents (on all replicas) has its new config, from the PUT | **${c.last} ms** (median ${c.median} ms; its own agents ${c.own} ms, the other replicas' ${c.others} ms) | <= 2,000 ms |`,
    );
    console.log(`| the same from the 2xx (PUT answered after ${c.ackMs} ms) | ${Math.max(0, c.last - c.ackMs)} ms | |`);
  }
  console.log(`| unaffected agents that received a config | ${changes.map((c) => c.unaffected).join(', ')} | 0 |`);
  console.log(
    `| replica ${dead} killed (kill -9): last of its ${victims.length} agents streaming from another replica with its config | **${back.last} ms** (median ${back.median} ms) | <= 15,000 ms |`,
  );
  console.log(`| agents without a stream 3 s later | ${lost} | 0 |`);
  console.log(`| stream drops before the kill | ${drops} | 0 |`);
  for (let r = 0; r < count; r++) {
    const after = rssAfter[r];
    console.log(
      `| replica ${r} RSS with its agents (peak) | **${mb(rssConnected[r]!.rss)}** (${mb(rssConnected[r]!.peak)})${after ? `; after taking over: ${mb(after.rss)} (${mb(after.peak)})` : ' (killed)'} | |`,
    );
  }
}
