// Controller benchmark: N simulated agents (default 5,000) hold WatchConfig streams to one
// controller process; a policy change affecting 10% of them is applied; we print how long until
// every affected agent has its new config, the controller's peak RSS, memory per connected agent,
// and the controller's CPU while idle with all streams open.
//
//   npm run bench:controller [-- --agents 5000 --connections 100 --store memory|sqlite --idle-ms 10000]
//   npm run bench:controller -- --replicas 3 [--agents 10000 --connections 100]
//     N real controller processes on one throwaway PostgreSQL (see bench/controller-replicas.ts)
//
// The controller runs as a child process (bench/controller-server.ts). The agents live in this
// process and use the real agent client (agent/control/connect.ts), multiplexed over
// `--connections` HTTP/2 connections so that the socket count stays sane.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createConnectTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { pinnedTlsOptions } from '../lib/pin.js';
import { numberArg, textArg } from './args.js';
import { startSimAgents } from './sim-agents.js';

const arg = textArg;
const agents = Number(arg('agents', '5000'));
const connections = Number(arg('connections', '100'));
const storeKind = arg('store', 'memory');
const idleMs = Number(arg('idle-ms', '10000'));
const affectedShare = 0.1;

// Several controllers on one PostgreSQL: bench/controller-replicas.ts (it exits when done).
const replicas = numberArg('replicas', 0);
if (replicas > 0) {
  const { runReplicasBench } = await import('./controller-replicas.js');
  await runReplicasBench({
    replicas,
    agents: numberArg('agents', 10_000),
    connections: numberArg('connections', 100),
    affectedShare,
  });
}

type Msg = Record<string, unknown> & { type: string };

const serverPath = fileURLToPath(new URL('./controller-server.ts', import.meta.url));
const registerPath = fileURLToPath(new URL('./register.js', import.meta.url));
// Raise the open-files limit for the controller as far as the hard limit allows.
const child = spawn(
  'bash',
  [
    '-c',
    'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"',
    'bash',
    process.execPath,
    '--expose-gc',
    '--import',
    registerPath,
    serverPath,
  ],
  {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: {
      ...process.env,
      BENCH_AGENTS: String(agents),
      BENCH_AFFECTED: String(affectedShare),
      BENCH_STORE: storeKind,
    },
  },
);
const cleanupChild = () => {
  if (child.exitCode === null) child.kill('SIGKILL');
};
process.on('exit', cleanupChild);
process.on('SIGINT', () => {
  cleanupChild();
  process.exit(130);
});

const inbox: Msg[] = [];
let wake: (() => void) | null = null;
child.on('message', (m: Msg) => {
  inbox.push(m);
  wake?.();
});
child.on('exit', (code) => {
  if (code !== 0) {
    console.error(`controller exited with ${code}`);
    process.exit(1);
  }
});
async function receive(type: string): Promise<Msg> {
  while (true) {
    const i = inbox.findIndex((m) => m.type === type || m.type === 'error');
    if (i >= 0) {
      const m = inbox.splice(i, 1)[0]!;
      if (m.type === 'error') throw new Error(`controller: ${String(m.message)}`);
      return m;
    }
    await new Promise<void>((r) => (wake = r));
  }
}
const send = (m: Msg) => child.send(m);

const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;

console.log(
  `controller bench: ${agents} agents over ${connections} HTTP/2 connections, store=${storeKind}, node ${process.version}`,
);
const ready = await receive('ready');
console.log(
  `controller up: ${agents} agents enrolled, policy compiled and server listening in ${(ready.startupMs as number).toFixed(0)} ms`,
);

const tls = pinnedTlsOptions(ready.caCertPem as string, ready.caFingerprint as string);
const sessions = Array.from(
  { length: connections },
  () => new Http2SessionManager(ready.url as string, { pingIntervalMs: 60_000 }, tls),
);
const transports = sessions.map((sessionManager) =>
  createConnectTransport({ httpVersion: '2', baseUrl: ready.url as string, sessionManager }),
);

const tConnect = performance.now();
const sim = await startSimAgents({
  count: agents,
  caFingerprint: ready.caFingerprint as string,
  urlsOf: () => [ready.url as string],
  transportFor: (_url, i) => transports[i % connections]!,
});
const { lastGeneration, configCount, lastConfigAtMs } = sim;
const connectMs = performance.now() - tConnect;
console.log(`all ${agents} streams open with their first config in ${connectMs.toFixed(0)} ms`);

await new Promise((r) => setTimeout(r, 1000));
send({ type: 'stats' });
const connectedStats = await receive('stats');

// The change: pairs 0..(10% / 2) get a second port; both ends of each pair change.
const affected = Math.round(agents * affectedShare);
const before = configCount.slice();
const genBefore = lastGeneration.slice();
const tApply = Date.now();
send({ type: 'apply' });
const applied = await receive('applied');
while (true) {
  let done = 0;
  for (let i = 0; i < affected; i++) if (lastGeneration[i]! > genBefore[i]!) done++;
  if (done === affected) break;
  if (Date.now() - tApply > 60_000) throw new Error(`only ${done}/${affected} affected agents got the change in 60 s`);
  // Arrival times are stamped in onConfig; polling slowly keeps this process out of the way.
  await new Promise((r) => setTimeout(r, 20));
}
let lastArrival = 0;
for (let i = 0; i < affected; i++) lastArrival = Math.max(lastArrival, lastConfigAtMs[i]!);
const propagationMs = lastArrival - tApply;
const distributionMs = lastArrival - (applied.distributeStartedAtMs as number);
const arrivals = lastConfigAtMs
  .slice(0, affected)
  .map((t) => t - (applied.distributeStartedAtMs as number))
  .sort((a, b) => a - b);
console.log(
  `arrivals after setPolicy started: first ${arrivals[0]} ms, median ${arrivals[affected >> 1]} ms, last ${arrivals[affected - 1]} ms; setPolicy returned after ${(applied.distributeMs as number).toFixed(0)} ms`,
);
await new Promise((r) => setTimeout(r, 500));
let unaffectedPushed = 0;
for (let i = affected; i < agents; i++) if (configCount[i]! > before[i]!) unaffectedPushed++;

send({ type: 'idle', windowMs: idleMs });
const idle = await receive('idle');
send({ type: 'stats' });
const finalStats = await receive('stats');

const baseline = connectedStats.baseline as { rss: number; heap: number };
const perAgentRss = ((connectedStats.rss as number) - baseline.rss) / agents;
const perAgentHeap = ((connectedStats.heap as number) - baseline.heap) / agents;

console.log('');
console.log('| figure | value | target |');
console.log('|---|---|---|');
console.log(
  `| agents with an open WatchConfig stream | ${connectedStats.connected as number} (${connectedStats.streams as number} streams) | 5,000 |`,
);
console.log(
  `| time until all ${affected} affected agents have the new config, from distributor.setPolicy() (recompile, persist generations, push, deliver) | **${distributionMs.toFixed(0)} ms** (setPolicy itself ${(applied.distributeMs as number).toFixed(0)} ms) | <= 2,000 ms |`,
);
console.log(
  `| the same from the moment the new policy text reaches the controller (+ parse/validate ${(applied.parseMs as number).toFixed(0)} ms, store ${(applied.storeMs as number).toFixed(0)} ms) | ${propagationMs.toFixed(0)} ms | |`,
);
console.log(`| unaffected agents that received a config | ${unaffectedPushed} | 0 |`);
console.log(`| controller peak RSS | **${mb(finalStats.peakRss as number)}** | <= 1 GB |`);
console.log(
  `| controller RSS before streams / with all streams | ${mb(baseline.rss)} / ${mb(connectedStats.rss as number)} | |`,
);
console.log(
  `| memory per connected agent | **${(perAgentRss / 1024).toFixed(1)} KB RSS**, ${(perAgentHeap / 1024).toFixed(1)} KB JS heap | |`,
);
console.log(
  `| controller CPU, idle with all streams open (heartbeats every 10 s) | **${(idle.cpuPercent as number).toFixed(1)} % of one core** over ${((idle.wallMs as number) / 1000).toFixed(0)} s | |`,
);
console.log(`| time to open all streams (first config each) | ${connectMs.toFixed(0)} ms | |`);
console.log(`| stream drops during the run | ${sim.disconnects()} | 0 |`);

await sim.stop();
sessions.forEach((s) => s.abort());
send({ type: 'exit' });
await new Promise((r) => child.once('exit', r));
process.exit(0);
