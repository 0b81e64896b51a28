// Agent memory benchmark: `npm run bench:agent-memory` (root; builds dist/ first). Prints the RSS of
// (1) Node's own floor, an idle `node -e` with the agent unit's memory settings, and (2) the real
// agent, `node dist/crosslink-agent.cjs agent run` as the package's /usr/bin/crosslink starts it,
// idle with 10 and with 1,000 peers. Prints figures; fails on nothing but a broken setup (GUIDE §4.10).
//
//   npm run bench:agent-memory [-- --peers 10,1000 --settle 40 --samples 20 --bundle FILE --node-flags "--max-old-space-size=64" --env "K=V" --no-unit-env --heap DIR --keep-logs DIR --agent-yaml "k: v; …"]
//
// Each size gets a fresh namespace xlm<pid>… with a LAN leg (10.10.0.1/24, veth) and an underlay
// with a blackhole route for the other agents' endpoints (TEST-NET-2). Inside it run
// the controller's agent service (bench/agent-memory-controller.ts: real HTTPS/HTTP2 Connect
// service, distributor and compiler, memory store, `peers` agents enrolled and a policy giving the
// agent under test that many peers) and the agent, which enrolls with a join token, receives its
// config over the stream, applies it (wireguard-go, wg, ip, nft), reports, probes every peer
// (fping), scrapes nothing. After the config is applied the agent is left alone for `settle` s
// (its startup garbage collected, a few report and probe rounds), then VmRSS (and its anon/file
// split) is read from /proc/PID/status once a second, `samples` times: median, min, max.
// wireguard-go's own RSS is printed beside it (a separate process; not the agent's figure).
//
// --node-flags: extra flags on node's command line, before the bundle (V8 experiments).
// --env "K=V …": more environment for node (after the unit's, so it wins), e.g. GLIBC_TUNABLES=….
// --no-unit-env: without the unit's NODE_OPTIONS / MALLOC_ARENA_MAX / GLIBC_TUNABLES (default: read
// from deploy/systemd/crosslink-agent.service, bench/agent-unit-env.ts, so the bench follows the unit).
// --smaps: also the RSS of the largest mappings (/proc/PID/smaps), e.g. how much of node's own binary.
// --bundle FILE: run that agent bundle instead of dist/crosslink-agent.cjs (before/after comparisons).
// --agent-yaml "k: v; k2: v2": more lines for the agent's agent.yaml (e.g. report-interval-seconds: 60,
// to see what the periodic reports cost).
// --keep-logs DIR: copy each size's agent.log (its stdout and stderr: with --node-flags --trace-gc,
// V8's GC lines too) and controller.log to DIR before the namespace is removed.
// --heap DIR: the agent runs with --heapsnapshot-signal=SIGUSR2 and one snapshot is written to DIR
// after the samples (open it in Chrome DevTools' Memory tab); the figures then include nothing of it.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killPid, must, sh } from '../agent/host/linux/netns.fixture.js';
import { findWireGuardGoPid } from '../agent/host/linux/wireguard.js';
import { hasFlag, numberArg, textArg } from './args.js';
import { agentUnitEnv } from './agent-unit-env.js';
import { addNetns, newIfname, pids, removeNetns, workDir } from './agent-netns.js';
import { sleep } from './agent-machine.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const SIZES = textArg('peers', '10,1000').split(',').map(Number);
const SETTLE_S = numberArg('settle', 40);
const SAMPLES = numberArg('samples', 20);
const NODE_FLAGS = textArg('node-flags', '').split(/\s+/).filter(Boolean);
const HEAP_DIR = textArg('heap', '');
const KEEP_LOGS = textArg('keep-logs', '');
const AGENT_YAML = textArg('agent-yaml', '')
  .split(';')
  .map((l) => l.trim())
  .filter(Boolean);
/** --bundle: another build of the agent bundle (A/B: e.g. one built from an earlier commit). */
const bundle = textArg('bundle', '') || join(repo, 'dist/crosslink-agent.cjs');

/** The unit's settings, then --env's (which win: `env` takes the last of a name). */
const ENV = [...(hasFlag('no-unit-env') ? [] : agentUnitEnv()), ...textArg('env', '').split(/\s+/).filter(Boolean)];
// Not from the shell: systemd starts the agent without NODE_EXTRA_CA_CERTS, and with it set (as on
// this machine) node parses the whole CA bundle at start-up, 1.8 MB more RSS in floor and agent alike.
const ENV_CMD = ['env', '-u', 'NODE_EXTRA_CA_CERTS', ...ENV];

interface Rss {
  rss: number;
  anon: number;
  file: number;
}
/** VmRSS and its anonymous / file-backed parts, kB. */
function readRss(pid: number): Rss | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') + kb('RssShmem') };
  } catch {
    return null;
  }
}
/** RSS by mapping (file name, or [heap]/[anon]/[stack]), largest first, kB: --smaps. */
function smaps(pid: number): [string, number][] {
  const by = new Map<string, number>();
  let name = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) name = head[1] || '[anon]';
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) by.set(name, (by.get(name) ?? 0) + Number(rss[1]));
  }
  return [...by].sort((a, b) => b[1] - a[1]);
}
const SMAPS = hasFlag('smaps');
const printSmaps = (pid: number) => {
  if (SMAPS)
    console.log(
      `    by mapping: ${smaps(pid)
        .slice(0, 6)
        .map(([n, kb]) => `${n} ${mb(kb)}`)
        .join(', ')}`,
    );
};
const mb = (kb: number) => (kb / 1024).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function sample(pid: number, what: string): Promise<Rss[]> {
  const out: Rss[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const r = readRss(pid);
    if (!r) throw new Error(`${what} (PID ${pid}) exited while being sampled`);
    out.push(r);
    await sleep(1000);
  }
  return out;
}
function summary(xs: Rss[]): string {
  const rss = xs.map((x) => x.rss);
  return (
    `RSS median ${mb(median(rss))} MB [${mb(Math.min(...rss))}–${mb(Math.max(...rss))}]` +
    ` (anon ${mb(median(xs.map((x) => x.anon)))}, file ${mb(median(xs.map((x) => x.file)))})`
  );
}

function startIn(ns: string | null, argv: string[], opts: { ipc?: boolean; log?: string } = {}): ChildProcess {
  const full = ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv;
  const out = opts.log ? openSync(opts.log, 'a') : 'ignore';
  const child = spawn(full[0]!, full.slice(1), {
    stdio: ['ignore', out, out, ...(opts.ipc ? (['ipc'] as const) : [])],
  });
  pids.add(child.pid!);
  return child;
}

function stop(child: ChildProcess): void {
  if (child.connected) child.disconnect();
  killPid(child.pid!);
  pids.delete(child.pid!);
}

/** The agent's /status, fetched inside the namespace (curl), or null. */
function status(ns: string): { isApplied?: boolean; peers?: unknown[] } | null {
  const r = sh(['ip', 'netns', 'exec', ns, 'curl', '-s', '--max-time', '2', 'http://127.0.0.1:9474/status']);
  try {
    return JSON.parse(r.stdout) as never;
  } catch {
    return null;
  }
}

async function floor(): Promise<void> {
  const child = startIn(null, [...ENV_CMD, process.execPath, ...NODE_FLAGS, '-e', 'setInterval(() => {}, 1000)']);
  await sleep(3000);
  const xs = await sample(child.pid!, 'node -e');
  console.log(`  Node's floor (node -e, idle):            ${summary(xs)}`);
  printSmaps(child.pid!);
  stop(child);
}

async function agentWith(peers: number): Promise<void> {
  const ns = addNetns('M');
  const ifname = newIfname();
  // LAN leg for the advertised subnet, and an underlay leg. veth pairs with both ends in the box: this kernel has no dummy links.
  for (const [dev, addr] of [
    ['lan0', '10.10.0.1/24'],
    ['u0', '192.168.77.1/24'],
  ] as const) {
    must(['ip', '-n', ns, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', `${dev}p`]);
    must(['ip', '-n', ns, 'addr', 'add', addr, 'dev', dev]);
    must(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    must(['ip', '-n', ns, 'link', 'set', `${dev}p`, 'up']);
  }
  // The other agents' endpoints: a blackhole route, so WireGuard's sends fail at once. Behind an
  // unresolved default gateway instead, wireguard-go (0.0.20220316) hung in `wg syncconf` of 1,000
  // peers with keepalives (every `wg` after it waited on its socket).
  must(['ip', '-n', ns, 'route', 'add', 'blackhole', '198.51.100.0/24']);

  const dir = join(workDir, `m${peers}`);
  mkdirSync(join(dir, 'state'), { recursive: true, mode: 0o700 });
  const controller = startIn(
    ns,
    [
      'env',
      `BENCH_PEERS=${peers}`,
      `BENCH_DATA_DIR=${join(dir, 'controller')}`,
      process.execPath,
      '--import',
      join(repo, 'bench/register.js'),
      join(repo, 'bench/agent-memory-controller.ts'),
    ],
    { ipc: true, log: join(dir, 'controller.log') },
  );
  controller.on('exit', (code) => {
    if (code !== null && code !== 0) console.error(`  controller exited ${code}: ${join(dir, 'controller.log')}`);
  });
  const join_ = await new Promise<string>((resolve, reject) => {
    controller.once('message', (m: { join: string }) => resolve(m.join));
    controller.once('exit', () => reject(new Error(`controller exited; see ${join(dir, 'controller.log')}`)));
  });
  const config = join(dir, 'agent.yaml');
  writeFileSync(
    config,
    [
      `join: "${join_}"`,
      'name: box-a',
      `interface: ${ifname}`,
      'advertise: [10.10.0.0/24]',
      'status-listen: 127.0.0.1:9474',
      'wireguard: userspace',
      ...AGENT_YAML,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const heapFlags = HEAP_DIR ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${HEAP_DIR}`] : [];
  const t0 = Date.now();
  const agent = startIn(
    ns,
    [
      ...ENV_CMD,
      process.execPath,
      ...NODE_FLAGS,
      ...heapFlags,
      bundle,
      'agent',
      'run',
      '--state-dir',
      join(dir, 'state'),
      '--config',
      config,
    ],
    { log: join(dir, 'agent.log') },
  );
  // Applied: /status shows a config with every peer.
  let applied = false;
  while (Date.now() - t0 < 120_000) {
    if (agent.exitCode !== null) throw new Error(`agent exited ${agent.exitCode}; see ${join(dir, 'agent.log')}`);
    const s = status(ns);
    if (s?.isApplied === true && Array.isArray(s.peers) && s.peers.length === peers) {
      applied = true;
      break;
    }
    await sleep(500);
  }
  if (!applied) {
    const tail = (f: string) => readFileSync(join(dir, f), 'utf8').split('\n').slice(-8).join('\n');
    throw new Error(
      `the agent did not apply its ${peers}-peer config in 120 s; /status: isApplied ${String(status(ns)?.isApplied)}, peers ${status(ns)?.peers?.length}, ${JSON.stringify(status(ns))?.slice(300, 1500)}\n` +
        `agent.log:\n${tail('agent.log')}\ncontroller.log:\n${tail('controller.log')}`,
    );
  }
  const appliedS = (Date.now() - t0) / 1000;
  await sleep(SETTLE_S * 1000);
  const xs = await sample(agent.pid!, 'the agent');
  const peak = Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))?.[1]);
  const wgPid = findWireGuardGoPid(ifname);
  const wg = wgPid !== null ? readRss(wgPid) : null;
  console.log(
    `  agent, ${String(peers).padStart(4)} peers, idle:              ${summary(xs)}; peak ${mb(peak)} MB ` +
      `(config applied ${appliedS.toFixed(1)} s after start, sampled from ${(appliedS + SETTLE_S).toFixed(0)} s)` +
      (wg ? `; wireguard-go ${mb(wg.rss)} MB` : ''),
  );
  printSmaps(agent.pid!);
  if (KEEP_LOGS) {
    mkdirSync(KEEP_LOGS, { recursive: true });
    for (const f of ['agent.log', 'controller.log']) copyFileSync(join(dir, f), join(KEEP_LOGS, `${peers}-peers-${f}`));
    console.log(`    logs: ${join(KEEP_LOGS, `${peers}-peers-agent.log`)} and -controller.log`);
  }
  if (HEAP_DIR) {
    mkdirSync(HEAP_DIR, { recursive: true });
    const before = new Set(readdirSync(HEAP_DIR));
    process.kill(agent.pid!, 'SIGUSR2');
    for (let i = 0; i < 120; i++) {
      await sleep(500);
      const f = readdirSync(HEAP_DIR).find((x) => !before.has(x) && x.endsWith('.heapsnapshot'));
      if (f && readRss(agent.pid!) && !sh(['fuser', join(HEAP_DIR, f)]).stdout.trim()) {
        renameSync(join(HEAP_DIR, f), join(HEAP_DIR, `agent-${peers}-peers.heapsnapshot`));
        console.log(`    heap snapshot: ${join(HEAP_DIR, `agent-${peers}-peers.heapsnapshot`)}`);
        break;
      }
    }
  }
  stop(agent);
  stop(controller);
  removeNetns(ns);
}

console.log(
  `agent memory, ${new Date().toISOString()}, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}; ` +
    `bundle ${bundle}; ${AGENT_YAML.length ? `agent.yaml + ${AGENT_YAML.join(', ')}; ` : ''}env: ${ENV.join(' ') || 'none'}; node flags: ${NODE_FLAGS.join(' ') || 'none'}; settle ${SETTLE_S} s, ${SAMPLES} samples 1 s apart`,
);
await floor();
for (const n of SIZES) await agentWith(n);
