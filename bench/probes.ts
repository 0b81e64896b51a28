// Peer probe benchmark: what one round of peer probes over 1,000 peers costs the agent, with fping
// (one process per round) and with the fallback without fping (one `ping` per peer, 32 at a time —
// the prober as it was before fping). The prober (agent/health/peer-prober.ts, the real ProcessRunner)
// runs in a node process inside its own namespace, grown to the agent's RSS (--rss-mb), since
// every spawn forks that whole process. Its peers are addresses routed over a veth to a second
// namespace, which answers the first --answering of them and silently drops the rest (a dead peer
// behind a tunnel). Per round: processes spawned, wall time, the prober's own CPU time, its
// children's CPU time, and how many peers were reachable. Prints figures; fails on nothing but a
// broken setup.
//
//   npm run bench:probes [-- --peers 1000 --answering 500 --rounds 3 --rss-mb 100 --method both|fping|ping]
//
// Needs root, ip, fping and ping. Namespaces are named xlp<pid>…, removed at the end (also on Ctrl-C)
// by name, their processes by PID; the root namespace is not touched.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { killPid, must, sh } from '../agent/host/linux/netns.fixture.js';
import { ProcessRunner } from '../agent/host/linux/run.js';
import { FpingEchoes, PingEachEchoes, type PeerEchoes } from '../agent/health/echoes.js';
import { PeerProber } from '../agent/health/peer-prober.js';
import type { ProbeCommandRunner } from '../agent/health/ports.js';
import { textArg } from './args.js';

const arg = textArg;
const PEERS = Number(arg('peers', '1000'));
const ANSWERING = Number(arg('answering', String(Math.floor(PEERS / 2))));
const ROUNDS = Number(arg('rounds', '3'));
const RSS_MB = Number(arg('rss-mb', '100'));
const METHOD = arg('method', 'both');

/** Peer i's overlay address (10.201.0.0/16; i < 65,000). */
const peerAddress = (i: number): string => `10.201.${(i + 1) >> 8}.${(i + 1) & 255}`;

interface Round {
  ms: number;
  spawns: number;
  cpuMs: number;
  childCpuMs: number;
  elu: number;
  reachable: number;
  rssMb: number;
}

// ---- the prober (child process, inside the prober's namespace) -----------------------------------

/** CPU time of this process's reaped children (utime + stime), ms. */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 of /proc/PID/stat (cutime, cstime) are 13 and 14 after the name, in ticks.
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

async function proberMain(method: 'fping' | 'ping'): Promise<void> {
  // The agent's RSS: every spawn forks (copies the page tables of) all of it.
  const ballastMb = Math.max(0, RSS_MB - process.memoryUsage().rss / 2 ** 20);
  const ballast = Buffer.alloc(Math.round(ballastMb * 2 ** 20), 1);
  let spawns = 0;
  const real = new ProcessRunner();
  const runner: ProbeCommandRunner = {
    run: (argv, o) => {
      spawns += 1;
      return real.run(argv, o);
    },
  };
  const echoes: PeerEchoes = method === 'fping' ? new FpingEchoes({ runner }) : new PingEachEchoes({ runner });
  const prober = new PeerProber({ runner, echoes });
  const peers = Array.from({ length: PEERS }, (_, i) => ({ name: `peer${i}`, overlayIp: peerAddress(i) }));
  const rounds: Round[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    spawns = 0;
    const cpu0 = process.cpuUsage();
    const child0 = childrenCpuMs();
    const elu0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    await prober.probeAll(peers);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    rounds.push({
      ms,
      spawns,
      cpuMs: (cpu.user + cpu.system) / 1000,
      childCpuMs: childrenCpuMs() - child0,
      elu: performance.eventLoopUtilization(elu0).utilization,
      reachable: peers.filter((p) => prober.fields(p.name).isReachable).length,
      rssMb: process.memoryUsage().rss / 2 ** 20,
    });
  }
  process.stdout.write(`${JSON.stringify({ method, rounds, ballastMb: ballast.length / 2 ** 20 })}\n`);
}

// ---- setup and report (parent) -------------------------------------------------------------------

const PREFIX = `xlp${process.pid}`;
const namespaces = new Set<string>();
const pids = new Set<number>();

function cleanup(): void {
  for (const pid of pids) killPid(pid);
  pids.clear();
  for (const ns of namespaces) {
    for (const p of sh(['ip', 'netns', 'pids', ns]).stdout.split('\n').filter(Boolean)) killPid(Number(p));
    sh(['ip', 'netns', 'del', ns]);
  }
  namespaces.clear();
}

function addNetns(tag: string): string {
  const name = `${PREFIX}${tag}`;
  must(['ip', 'netns', 'add', name]);
  namespaces.add(name);
  must(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

function runProber(ns: string, method: 'fping' | 'ping'): Promise<{ method: string; rounds: Round[] }> {
  const script = fileURLToPath(import.meta.url);
  const register = fileURLToPath(new URL('./register.js', import.meta.url));
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns,
      'env',
      'NODE_OPTIONS=--max-semi-space-size=2',
      'MALLOC_ARENA_MAX=2',
      process.execPath,
      '--import',
      register,
      script,
      '--prober',
      method,
      '--peers',
      String(PEERS),
      '--rounds',
      String(ROUNDS),
      '--rss-mb',
      String(RSS_MB),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  pids.add(child.pid!);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => {
      pids.delete(child.pid!);
      if (code !== 0) reject(new Error(`prober (${method}) exited ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()!) as { method: string; rounds: Round[] });
    }),
  );
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.once(sig, () => {
      cleanup();
      process.exit(130);
    });

  const box = addNetns('p');
  const peer = addNetns('r');
  must(['ip', 'link', 'add', 'v0', 'netns', box, 'type', 'veth', 'peer', 'name', 'v0', 'netns', peer]);
  must(['ip', '-n', box, 'addr', 'add', '10.200.0.1/30', 'dev', 'v0']);
  must(['ip', '-n', peer, 'addr', 'add', '10.200.0.2/30', 'dev', 'v0']);
  must(['ip', '-n', box, 'link', 'set', 'v0', 'up']);
  must(['ip', '-n', peer, 'link', 'set', 'v0', 'up']);
  must(['ip', '-n', box, 'route', 'add', '10.201.0.0/16', 'via', '10.200.0.2']);
  // The peer side owns the answering addresses; the rest are dropped without a word.
  must(['ip', '-n', peer, 'route', 'add', 'blackhole', '10.201.0.0/16']);
  must(
    ['ip', '-n', peer, '-batch', '-'],
    Array.from({ length: ANSWERING }, (_, i) => `addr add ${peerAddress(i)}/32 dev lo\n`).join(''),
  );
  while (sh(['ip', 'netns', 'exec', box, 'ping', '-n', '-c', '1', '-W', '1', peerAddress(0)]).code !== 0)
    await new Promise((r) => setTimeout(r, 100));

  console.log(
    `peer probes: ${PEERS} peers (${ANSWERING} answering, ${PEERS - ANSWERING} silent), ${ROUNDS} rounds, prober RSS ~${RSS_MB} MB, node ${process.version}, ${sh(['nproc']).stdout.trim()} CPUs, load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  );
  const methods = METHOD === 'both' ? (['ping', 'fping'] as const) : [METHOD as 'fping' | 'ping'];
  const fmt = (n: number, d = 0) => n.toFixed(d).padStart(8);
  console.log('method  round  spawns   wall ms  agent CPU ms  children CPU ms  agent ELU  reachable  RSS MB');
  for (const method of methods) {
    const { rounds } = await runProber(box, method);
    rounds.forEach((r, i) =>
      console.log(
        `${method.padEnd(6)} ${String(i + 1).padStart(6)} ${fmt(r.spawns)} ${fmt(r.ms)} ${fmt(r.cpuMs).padStart(13)} ${fmt(r.childCpuMs).padStart(16)} ${fmt(r.elu, 2).padStart(10)} ${fmt(r.reachable).padStart(10)} ${fmt(r.rssMb)}`,
      ),
    );
    const avg = (f: (r: Round) => number) => rounds.reduce((s, r) => s + f(r), 0) / rounds.length;
    const period = Math.max(
      5000,
      avg((r) => r.ms),
    );
    console.log(
      `${method.padEnd(6)}   mean ${fmt(avg((r) => r.spawns))} ${fmt(avg((r) => r.ms))} ${fmt(avg((r) => r.cpuMs)).padStart(13)} ${fmt(avg((r) => r.childCpuMs)).padStart(16)} ${fmt(
        avg((r) => r.elu),
        2,
      ).padStart(10)}` +
        `   => ${(avg((r) => r.spawns) / (period / 1000)).toFixed(0)} spawns/s and ${((avg((r) => r.cpuMs + r.childCpuMs) / period) * 100).toFixed(1)} % of a core at the 5 s interval (a round every ${(period / 1000).toFixed(1)} s)`,
    );
  }
}

const proberMethod = arg('prober', '');
if (proberMethod === 'fping' || proberMethod === 'ping') {
  await proberMain(proberMethod);
} else {
  try {
    await main();
  } finally {
    cleanup();
  }
}
