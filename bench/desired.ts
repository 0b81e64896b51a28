// desiredState() on its own, for the agent benchmark's config (bench/agent.ts): 1,000 peers with
// 6 allowed prefixes each, 5,000 routes, 10,000 firewall tuples. No root, no host.
//
//   node --import ./bench/register.js bench/desired.ts [--peers 1000 --routes 5000 --tuples 10000 --cold 5 --warm 40 --tsx --node-flags "--optimize-for-size"]
//
// The measuring children run a bundle of this file (as the agent runs compiled JavaScript); --tsx
// runs them under tsx instead.
// cold: the first desiredState() in a fresh process (a child per run), through the same memoised
//       renderer the Reconciler uses, on a config decoded from wire bytes as the agent gets it.
// warm: in one process after that first config, one-peer changes with the same firewall (a peer
//       joins, leaves, moves its endpoint, moves back), each a freshly decoded config; median.
// Also: a new firewall in a warm process (the memo misses; validate and render again).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { AgentConfigSchema, type AgentConfig } from '../proto/gen/crosslink/v1/agent_pb.js';
import { renderFirewall } from '../agent/host/firewall-render.js';
import { desiredState, type AgentSettings } from '../agent/reconcile/desired.js';
import { memoizeFirewallRenderer } from '../agent/reconcile/render-memo.js';
import { benchConfig } from './agent-config.js';
import { benchArgs as args, hasFlag, numberArg, textArg } from './args.js';

const arg = numberArg;
const PEERS = arg('peers', 1000);
const ROUTES = arg('routes', 5000);
const TUPLES = arg('tuples', 10000);
const COLD_RUNS = arg('cold', 5);
const WARM_RUNS = arg('warm', 40);
const ROUTES_PER_PEER = Math.max(1, Math.round(ROUTES / PEERS));
/** --node-flags "…": V8 flags for the measuring children (e.g. the agent unit's). */
const CHILD_FLAGS = textArg('node-flags', '').split(/\s+/).filter(Boolean);
const childMode = hasFlag('child-cold') ? 'cold' : hasFlag('child-warm') ? 'warm' : null;

// Deterministic stand-ins for public keys: only their form is checked (32 bytes, base64).
function fakeKey(i: number): string {
  const b = Buffer.alloc(32);
  for (let k = 0; k < 32; k++) b[k] = (i * 131 + k * 29 + (i >> 8) * 7) & 255;
  b.writeUInt32BE(i, 0);
  return b.toString('base64');
}

const { fakePeer, firewallWith, makeConfig, basePeers } = benchConfig({
  peers: PEERS,
  routes: ROUTES,
  peerBKey: fakeKey(1_000_000),
  peerKey: fakeKey,
});

const settings: AgentSettings = {
  interfaceName: 'crosslink0',
  listenPort: 51820,
  privateKeyFile: '/nonexistent',
  publicKey: fakeKey(2_000_000),
  mtu: 1420,
  wireguardMode: 'userspace',
};

/** As the agent gets it: wire bytes decoded into fresh objects. */
const wire = (c: AgentConfig) => toBinary(AgentConfigSchema, c);
const decode = (b: Uint8Array) => fromBinary(AgentConfigSchema, b);

let lastCpuMs = 0;
function timed(render: ReturnType<typeof memoizeFirewallRenderer>, bytes: Uint8Array): number {
  const config = decode(bytes);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  desiredState(config, settings, render);
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  lastCpuMs = (c.user + c.system) / 1000;
  return ms;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const f1 = (x: number) => x.toFixed(1);
const range = (xs: number[]) => `${f1(Math.min(...xs))}-${f1(Math.max(...xs))}`;

function child(): void {
  const fw = firewallWith(TUPLES);
  const first = wire(makeConfig(basePeers(), fw));
  const render = memoizeFirewallRenderer(renderFirewall);
  const cold = timed(render, first);
  const coldCpu = lastCpuMs;
  if (childMode === 'cold') {
    process.stdout.write(JSON.stringify({ cold, coldCpu }));
    return;
  }
  const variants = [
    wire(makeConfig([...basePeers(), fakePeer(PEERS)], fw)), // a peer joins
    wire(makeConfig(basePeers(), fw)), // and leaves
    wire(
      makeConfig(
        basePeers().map((p, i) => (i === PEERS >> 1 ? fakePeer(i, 51821) : p)),
        fw,
      ),
    ), // one peer moves
    wire(makeConfig(basePeers(), fw)), // and back
  ];
  const warm: number[] = [];
  for (let i = 0; i < WARM_RUNS; i++) warm.push(timed(render, variants[i % variants.length]!));
  // A changed firewall (one port) in a warm process: the memo misses.
  const fwBytes = [
    wire(makeConfig(basePeers(), firewallWith(TUPLES, 444))),
    wire(makeConfig(basePeers(), firewallWith(TUPLES, 443))),
  ];
  const newFw: number[] = [];
  for (let i = 0; i < Math.max(4, WARM_RUNS >> 3); i++) newFw.push(timed(render, fwBytes[i % 2]!));
  process.stdout.write(JSON.stringify({ cold, coldCpu, warm, newFw }));
}

/** The children run this file bundled into plain JavaScript (esbuild, which tsx brings), as the agent
 *  runs: under tsx every function would also pay for its loader's helpers (keepNames). */
function bundle(): string {
  const dir = mkdtempSync(join(tmpdir(), 'xl-desired-'));
  const out = join(dir, 'desired.mjs');
  const esbuild = fileURLToPath(new URL('../node_modules/.bin/esbuild', import.meta.url));
  const r = spawnSync(
    esbuild,
    [
      fileURLToPath(import.meta.url),
      '--bundle',
      '--platform=node',
      '--format=esm',
      '--target=node20',
      '--log-level=error',
      `--outfile=${out}`,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`esbuild failed: ${r.stderr}`);
  return out;
}

function main(): void {
  const isTsx = hasFlag('tsx');
  const script = isTsx ? fileURLToPath(import.meta.url) : bundle();
  const run = (mode: string) => {
    const r = spawnSync(
      process.execPath,
      [...CHILD_FLAGS, ...(isTsx ? process.execArgv : []), script, ...args, `--child-${mode}`],
      {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      },
    );
    if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as { cold: number; coldCpu: number; warm?: number[]; newFw?: number[] };
  };
  let w: ReturnType<typeof run> = { cold: 0, coldCpu: 0 };
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const colds: number[] = [];
  const coldCpus: number[] = [];
  for (let i = 0; i <= COLD_RUNS; i++) {
    const r = i < COLD_RUNS ? run('cold') : run('warm');
    colds.push(r.cold);
    coldCpus.push(r.coldCpu);
    if (r.warm) w = r;
  }
  if (!isTsx) rmSync(dirname(script), { recursive: true, force: true });
  console.log(
    `desiredState: ${PEERS} peers x ${ROUTES_PER_PEER + 1} prefixes, ${PEERS * ROUTES_PER_PEER} routes, ${TUPLES} tuples (${isTsx ? 'under tsx' : 'bundled'}; load average ${load})`,
  );
  console.log(
    `  cold (first config, fresh process):     median ${f1(median(colds))} ms [${range(colds)}] over ${colds.length} processes; CPU time (all threads) median ${f1(median(coldCpus))} ms [${range(coldCpus)}]`,
  );
  console.log(
    `  warm one-peer change (same firewall):   median ${f1(median(w.warm!))} ms [${range(w.warm!)}] over ${w.warm!.length} configs`,
  );
  console.log(
    `  warm, firewall changed (memo misses):   median ${f1(median(w.newFw!))} ms [${range(w.newFw!)}] over ${w.newFw!.length} configs`,
  );
}

if (childMode) child();
else main();
