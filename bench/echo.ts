// Edge liveness echo benchmark: what the echo with 1,000 peers costs the agent process.
//
//   npm run bench:echo [-- --peers 1000 --seconds 30 --intervals 100,200,500 --no-baseline]
//
// This process is the agent: one LivenessRunner (agent/liveness/runner.ts, the real socket) bound
// to 127.0.0.1, echoing with every peer once per interval (multiplier 3). The peers are a second
// process (bench/echo-peers.ts): one socket per peer on 127.1.x.y, each sending one "I hear you"
// packet per interval. After a warm-up, process.cpuUsage() over --seconds gives the agent's CPU
// as % of one core. A baseline row does the same traffic with plain dgram as one would write it
// first (default lookup, a 'message' handler with a Map lookup and a decode per packet, one
// setInterval for all sends). No root needed; the port is a random high one.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { decodeEcho, ECHO_PACKET_BYTES, encodeEcho } from '../agent/liveness/echo.js';
import { LivenessRunner } from '../agent/liveness/runner.js';
import { LivenessSocket } from '../agent/liveness/socket.js';
import { hasFlag, numberArg, textArg } from './args.js';
import { peerAddress } from './echo-peers.js';

const PEERS = numberArg('peers', 1000);
const SECONDS = numberArg('seconds', 30);
const WARMUP_S = numberArg('warmup', 3);
const INTERVALS = textArg('intervals', '100,200,500').split(',').map(Number);
const PORT = 40000 + (process.pid % 20000);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function startPeers(intervalMs: number): Promise<() => void> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      fileURLToPath(new URL('./register.js', import.meta.url)),
      fileURLToPath(new URL('./echo-peers.ts', import.meta.url)),
      String(PORT),
      String(PEERS),
      String(intervalMs),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', () => resolve());
    child.once('exit', (code) => reject(new Error(`echo-peers exited ${code}`)));
  });
  return () => {
    child.stdin.end();
    child.kill('SIGTERM');
  };
}

/** CPU of this process over `seconds`, % of one core: total, user (JS and Node), system (kernel). */
async function measure(seconds: number): Promise<{ cpuPct: number; userPct: number; sysPct: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const cpu = process.cpuUsage(cpu0);
  const pct = (us: number) => (us / 1000 / (performance.now() - t0)) * 100;
  return { cpuPct: pct(cpu.user + cpu.system), userPct: pct(cpu.user), sysPct: pct(cpu.system) };
}

interface Row {
  what: string;
  intervalMs: number;
  cpuPct: number;
  userPct: number;
  sysPct: number;
  up: number;
  rxPerS: number;
  txPerS: number;
}

const peers = Array.from({ length: PEERS }, (_, i) => ({ name: `peer-${i}`, address: peerAddress(i) }));

async function runnerRow(intervalMs: number): Promise<Row> {
  const stopPeers = await startPeers(intervalMs);
  const socket = new LivenessSocket({ port: PORT, bindAddress4: '127.0.0.1', bindAddress6: '::1' });
  await socket.ready();
  const runner = new LivenessRunner({ timing: { intervalMs, multiplier: 3 }, transport: socket });
  runner.setPeers(peers);
  await sleep(WARMUP_S * 1000);
  const c0 = runner.counters();
  const cpu = await measure(SECONDS);
  const c1 = runner.counters();
  const up = runner.states().filter((s) => s.state === 'up').length;
  runner.stop();
  stopPeers();
  await sleep(500);
  return {
    what: 'LivenessRunner',
    intervalMs,
    ...cpu,
    up,
    rxPerS: (c1.rx - c0.rx) / SECONDS,
    txPerS: (c1.tx - c0.tx) / SECONDS,
  };
}

/** The same traffic with plain dgram, as first written. */
async function baselineRow(intervalMs: number): Promise<Row> {
  const stopPeers = await startPeers(intervalMs);
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(PORT, '127.0.0.1', r));
  const last = new Map(peers.map((p) => [p.address, 0]));
  let rx = 0;
  let tx = 0;
  s.on('message', (msg, rinfo) => {
    const d = decodeEcho(msg);
    if (d !== null && last.has(rinfo.address)) {
      last.set(rinfo.address, Date.now());
      rx++;
    }
  });
  const timer = setInterval(() => {
    for (const p of peers) {
      const b = Buffer.alloc(ECHO_PACKET_BYTES);
      encodeEcho(b, true, tx);
      s.send(b, PORT, p.address);
      tx++;
    }
  }, intervalMs);
  await sleep(WARMUP_S * 1000);
  const [rx0, tx0] = [rx, tx];
  const cpu = await measure(SECONDS);
  const [rx1, tx1] = [rx, tx];
  clearInterval(timer);
  s.close();
  stopPeers();
  await sleep(500);
  return {
    what: 'plain dgram',
    intervalMs,
    ...cpu,
    up: -1,
    rxPerS: (rx1 - rx0) / SECONDS,
    txPerS: (tx1 - tx0) / SECONDS,
  };
}

async function main(): Promise<void> {
  console.log(`Edge liveness echo: ${PEERS} peers on loopback, ${SECONDS} s per row, Node ${process.version}`);
  const rows: Row[] = [];
  for (const ms of INTERVALS) rows.push(await runnerRow(ms));
  if (!hasFlag('no-baseline')) rows.push(await baselineRow(200));
  console.log('\n| echo | interval | agent CPU (% of a core) | user | system | peers up | rx/s | tx/s |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows)
    console.log(
      `| ${r.what} | ${r.intervalMs} ms x 3 | ${r.cpuPct.toFixed(2)} | ${r.userPct.toFixed(2)} | ${r.sysPct.toFixed(2)} | ${r.up < 0 ? '-' : r.up} | ${Math.round(r.rxPerS)} | ${Math.round(r.txPerS)} |`,
    );
}

void main();
