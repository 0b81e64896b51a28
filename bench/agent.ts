// Agent benchmark: the real Reconciler + Linux host (wireguard-go, wg, ip, nft) making a fresh box
// equal to a config with 1,000 peers, 5,000 routes and 10,000 firewall tuples; then one-peer
// changes while a ping crosses another tunnel; then no-op reconciles; the agent's RSS; and the
// floor: the same state applied by hand (`wg syncconf` + `ip -batch` + `nft -f` from pre-rendered
// files). Last, forwarding through the box with 10 and with 10,000 tuples: iperf3 throughput and new
// TCP connections per second (GUIDE §6), over the tunnel and LAN->LAN, with a noise control and a
// no-firewall control (bench/agent-forwarding.ts). Prints figures; fails on nothing but a broken
// setup (GUIDE §4.10).
//
//   npm run bench:agent [-- --peers 1000 --routes 5000 --tuples 10000 --reps 2 --changes 6 --noops 10 --forward-reps 5 --swap-blocks 4 --skip-forward | --forward-only]
//
// Needs root, wireguard-go, wg, ip, nft, ping, iperf3, python3. Everything lives in namespaces named
// xlb<pid>…, removed at the end (also on Ctrl-C) by PID and by name; the root namespace is not touched.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderFirewall } from '../agent/host/firewall-render.js';
import { killPid, must, sh } from '../agent/host/linux/netns.fixture.js';
import { generateWgPrivateKey, wgPublicKey } from '../agent/host/wg-key.js';
import { WIREGUARD_SOCKET_DIR } from '../agent/host/linux/wireguard.js';
import { desiredState, type AgentSettings } from '../agent/reconcile/desired.js';
import { hasFlag, numberArg } from './args.js';
import { benchConfig, CONN_PORT, IPERF_PORT, LAN_A, UNDERLAY_A, UNDERLAY_B } from './agent-config.js';
import { floor, type FloorResult } from './agent-floor.js';
import { runForwarding } from './agent-forwarding.js';
import { addNetns, cleanup, newIfname, pids, removeNetns, workDir } from './agent-netns.js';
import { Agent } from './agent-process.js';

const arg = numberArg;
const PEERS = arg('peers', 1000);
const ROUTES = arg('routes', 5000);
const TUPLES = arg('tuples', 10000);
const REPS = arg('reps', 2);
const CHANGES = arg('changes', 6);
const NOOPS = arg('noops', 10);
const FORWARD_REPS = arg('forward-reps', 5);
const SKIP_FORWARD = hasFlag('skip-forward');
/** Only section (e), forwarding. */
const FORWARD_ONLY = hasFlag('forward-only');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The config: box A (the agent under test) with PEERS peers; peer 0 is a real box B.

const HOST_A = '10.10.0.10';
const HOST_B = '10.20.0.10';

const keyA = generateWgPrivateKey();
const keyB = generateWgPrivateKey();
const keyFileA = join(workDir, 'a.key');
const keyFileB = join(workDir, 'b.key');
writeFileSync(keyFileA, keyA, { mode: 0o600 });
writeFileSync(keyFileB, keyB, { mode: 0o600 });
const fakeKeys = Array.from({ length: PEERS + 8 }, () => wgPublicKey(generateWgPrivateKey()));
const { fakePeer, firewallWith, makeConfig, basePeers } = benchConfig({
  peers: PEERS,
  routes: ROUTES,
  peerBKey: wgPublicKey(keyB),
  peerKey: (i) => fakeKeys[i]!,
});

function settingsFor(ifname: string): AgentSettings {
  return {
    interfaceName: ifname,
    listenPort: 51820,
    privateKeyFile: keyFileA,
    publicKey: wgPublicKey(keyA),
    mtu: 1420,
    wireguardMode: 'userspace',
  };
}

// ---------------------------------------------------------------------------------------------
// Boxes and hosts.

interface Pair {
  boxA: string;
  boxB: string;
  hostA: string;
  hostB: string;
  ifA: string;
  ifB: string;
}

/** Box A (for the agent: links and addresses only), box B (WireGuard by hand, peer A), a host on
 *  each LAN. */
function buildPair(): Pair {
  const boxA = addNetns('A');
  const boxB = addNetns('B');
  const hostA = addNetns('a');
  const hostB = addNetns('b');
  const ifA = newIfname();
  const ifB = newIfname();
  must(['ip', 'link', 'add', 'u0', 'netns', boxA, 'type', 'veth', 'peer', 'name', 'u0', 'netns', boxB]);
  must(['ip', 'link', 'add', 'lan0', 'netns', boxA, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hostA]);
  must(['ip', 'link', 'add', 'lan0', 'netns', boxB, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hostB]);
  for (const [ns, dev, addr] of [
    [boxA, 'u0', `${UNDERLAY_A}/24`],
    [boxB, 'u0', `${UNDERLAY_B}/24`],
    [boxA, 'lan0', '10.10.0.1/24'],
    [hostA, 'eth0', `${HOST_A}/24`],
    [boxB, 'lan0', '10.20.0.1/24'],
    [hostB, 'eth0', `${HOST_B}/24`],
  ] as const) {
    must(['ip', '-n', ns, 'addr', 'add', addr, 'dev', dev]);
    must(['ip', '-n', ns, 'link', 'set', dev, 'up']);
  }
  must(['ip', '-n', hostA, 'route', 'add', 'default', 'via', '10.10.0.1']);
  must(['ip', '-n', hostB, 'route', 'add', 'default', 'via', '10.20.0.1']);
  // Box B by hand: one peer (box A), forwarding on, no firewall of its own.
  const wgB = spawn('ip', ['netns', 'exec', boxB, 'wireguard-go', ifB], {
    stdio: 'ignore',
    env: { ...process.env, WG_PROCESS_FOREGROUND: '1' },
  });
  pids.add(wgB.pid!);
  const deadline = Date.now() + 5000;
  while (!existsSync(join(WIREGUARD_SOCKET_DIR, `${ifB}.sock`))) {
    if (Date.now() > deadline) throw new Error('wireguard-go on box B did not start');
    spawnSync('sleep', ['0.01']);
  }
  must([
    'ip',
    'netns',
    'exec',
    boxB,
    'wg',
    'set',
    ifB,
    'private-key',
    keyFileB,
    'listen-port',
    '51820',
    'peer',
    wgPublicKey(keyA),
    'allowed-ips',
    `100.64.0.1/32,${LAN_A}`,
    'endpoint',
    `${UNDERLAY_A}:51820`,
    'persistent-keepalive',
    '25',
  ]);
  must(['ip', '-n', boxB, 'addr', 'add', '100.64.0.2/16', 'dev', ifB]);
  must(['ip', '-n', boxB, 'link', 'set', ifB, 'mtu', '1420', 'up']);
  must(['ip', '-n', boxB, 'route', 'add', LAN_A, 'dev', ifB]);
  must(['ip', 'netns', 'exec', boxB, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  return { boxA, boxB, hostA, hostB, ifA, ifB };
}

// ---------------------------------------------------------------------------------------------
// Traffic.

const CONN_SERVER = `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", ${CONN_PORT})); s.listen(1024)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()`;

function startDaemon(ns: string, argv: string[]): Promise<number> {
  const p = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'ignore'] });
  pids.add(p.pid!);
  return new Promise((resolve, reject) => {
    p.stdout.once('data', () => resolve(p.pid!));
    p.once('exit', (c) => reject(new Error(`${argv[0]} exited ${c}`)));
  });
}

/** Pings (interval 10 ms) until the returned stop() is awaited; reports sent and received. */
function pingRunning(ns: string, addr: string): { stop: () => Promise<{ sent: number; received: number }> } {
  const p = spawn('ip', ['netns', 'exec', ns, 'ping', '-i', '0.01', '-W', '1', addr], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  pids.add(p.pid!);
  let out = '';
  p.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const done = new Promise<void>((r) => p.once('exit', () => r()));
  return {
    stop: async () => {
      // SIGINT: ping waits for nothing more and prints its summary.
      p.kill('SIGINT');
      await done;
      pids.delete(p.pid!);
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
    },
  };
}

function waitForTunnel(pair: Pair): void {
  const deadline = Date.now() + 10_000;
  while (sh(['ip', 'netns', 'exec', pair.hostA, 'ping', '-c', '1', '-W', '1', HOST_B]).code !== 0) {
    if (Date.now() > deadline) throw new Error('no traffic over the tunnel from host A to host B');
  }
}

// ---------------------------------------------------------------------------------------------
// Output.

const f0 = (x: number) => x.toFixed(0);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const range = (xs: number[]) => `${f0(Math.min(...xs))}–${f0(Math.max(...xs))}`;
const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;
const verdict = (ok: boolean) => (ok ? 'meets' : 'MISSES');

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  for (const tool of ['wireguard-go', 'wg', 'nft', 'ip', 'ping', 'iperf3', 'python3']) {
    if (sh(['sh', '-c', `command -v ${tool}`]).code !== 0) throw new Error(`${tool} is missing`);
  }
  if (FORWARD_ONLY) return forwarding();
  const load = sh(['cat', '/proc/loadavg']).stdout.split(' ').slice(0, 3).join(' ');
  const fw = firewallWith(TUPLES);
  const c0 = makeConfig(basePeers(), fw);
  const probe = desiredState(c0, settingsFor('probe0'), renderFirewall);
  console.log(
    `agent benchmark: ${c0.peers.length} peers, ${probe.routes.length} routes, ${TUPLES} firewall tuples (${probe.firewall.ruleset.length} bytes of nft); ${REPS} fresh-box reps`,
  );
  console.log(`machine: ${sh(['nproc']).stdout.trim()} cores, load average at start ${load}\n`);

  // (a) + (d): full apply on fresh boxes, alternating with the floor so that load hits both alike.
  const floors: FloorResult[] = [];
  const fulls: Array<{ ms: number; setDesiredMs: number; reconcileMs: number; commands: string[] }> = [];
  let main: { agent: Agent; pair: Pair } | null = null;
  for (let rep = 0; rep < REPS; rep++) {
    floors.push(floor(c0, settingsFor, keyA));
    const last = rep === REPS - 1;
    // The last rep is the box that the later measurements use (with box B and the LAN hosts).
    const pair = last ? buildPair() : null;
    const ns = pair ? pair.boxA : addNetns('A');
    const ifname = pair ? pair.ifA : newIfname();
    const agent = new Agent(ns);
    await agent.init(settingsFor(ifname));
    const cfg = makeConfig(basePeers(), fw);
    const r = await agent.apply(cfg);
    fulls.push(r);
    console.log(
      `  rep ${rep + 1}: floor ${f0(floors[rep]!.totalMs)} ms (${Object.entries(floors[rep]!.parts)
        .map(([k, v]) => `${k} ${v}`)
        .join(
          ', ',
        )}); agent ${f0(r.ms)} ms (setDesired ${f0(r.setDesiredMs)}, reconcile ${f0(r.reconcileMs)}: ${r.commands.join(', ')})`,
    );
    if (pair) main = { agent, pair };
    else {
      agent.stop();
      removeNetns(ns);
    }
  }
  const floorMs = median(floors.map((x) => x.totalMs));
  const fullMs = median(fulls.map((x) => x.ms));
  console.log(`(d) floor (by hand, pre-rendered): median ${f0(floorMs)} ms [${range(floors.map((x) => x.totalMs))}]`);
  console.log(
    `(a) full apply on a fresh box:      median ${f0(fullMs)} ms [${range(fulls.map((x) => x.ms))}] = ${(fullMs / floorMs).toFixed(2)}x floor (target <= 1.5x: ${verdict(fullMs <= 1.5 * floorMs)})`,
  );

  // (b) one-peer changes while a ping crosses the tunnel to box B.
  const { agent, pair } = main!;
  const server = await startDaemon(pair.hostB, ['python3', '-c', CONN_SERVER]);
  waitForTunnel(pair);
  const ping = pingRunning(pair.hostA, HOST_B);
  await sleep(1000);
  const changes: number[] = [];
  const changeLines: string[] = [];
  const variants = [
    () => makeConfig([...basePeers(), fakePeer(PEERS)], fw), // a peer joins
    () => makeConfig(basePeers(), fw), // and leaves
    () =>
      makeConfig(
        basePeers().map((p, i) => (i === PEERS >> 1 ? fakePeer(i, 51821) : p)),
        fw,
      ), // one peer moves
    () => makeConfig(basePeers(), fw), // and back
  ];
  for (let i = 0; i < CHANGES; i++) {
    const r = await agent.apply(variants[i % variants.length]!());
    changes.push(r.ms);
    changeLines.push(`${f0(r.ms)} ms (setDesired ${f0(r.setDesiredMs)}; ${r.commands.join(', ')})`);
    await sleep(300);
  }
  await sleep(700);
  const loss = await ping.stop();
  console.log(
    `(b) one-peer change:                median ${f0(median(changes))} ms [${range(changes)}] (target <= 100 ms: ${verdict(median(changes) <= 100)}); ping over box B's tunnel during the changes: ${loss.sent - loss.received} lost of ${loss.sent} (target 0: ${verdict(loss.sent > 0 && loss.received === loss.sent)})`,
  );
  for (const l of changeLines) console.log(`      ${l}`);

  // (c) no-op reconciles.
  await agent.call({ type: 'settle' });
  const noop = (await agent.call({ type: 'noop', runs: NOOPS, gapMs: 200 })).runs as Array<{
    ms: number;
    steps: number;
    commands: string[];
  }>;
  const noopMs = noop.map((x) => x.ms);
  const writes = noop.flatMap((x) => x.commands).filter((c) => !/^(wg show|ip -json|nft list|nft -j)/.test(c));
  console.log(
    `(c) no-op reconcile:                median ${f0(median(noopMs))} ms [${range(noopMs)}] (target <= 50 ms: ${verdict(median(noopMs) <= 50)}); steps ${noop.map((x) => x.steps).join(',')}; write commands: ${writes.length === 0 ? 'none' : writes.join(', ')}`,
  );
  console.log(`      commands per no-op run: ${noop.map((x) => x.commands.join(' + ') || '(none)').join(' | ')}`);

  // RSS of the agent process with the full config in force.
  const mem = await agent.call({ type: 'memory' });
  console.log(
    `    agent RSS with ${PEERS} peers:     ${mb(mem.rss as number)} after GC (peak ${mb(mem.maxRss as number)}, heap used ${mb(mem.heapUsed as number)}) (target <= 100 MB: ${verdict((mem.rss as number) <= 100 * 1048576)})`,
  );
  agent.stop();
  killPid(server);
  pids.delete(server);
  for (const ns of [pair.boxA, pair.boxB, pair.hostA, pair.hostB]) removeNetns(ns);

  if (SKIP_FORWARD) return;
  await forwarding();
}

// (e) forwarding through box A with 10 and with TUPLES tuples, over the tunnel and LAN->LAN, with a
// noise control (10 tuples twice) and a no-firewall control: bench/agent-forwarding.ts.
async function forwarding(): Promise<void> {
  await runForwarding(
    {
      addNetns,
      removeNetns,
      pids,
      buildPair,
      makeConfig,
      basePeers,
      firewallWith,
      startAgent: async (ns, ifname, o) => {
        const a = new Agent(ns);
        await a.init(settingsFor(ifname), o);
        return a;
      },
      lanA: LAN_A,
      hostA: HOST_A,
      hostB: HOST_B,
      connPort: CONN_PORT,
      iperfPort: IPERF_PORT,
    },
    { tuples: TUPLES, reps: FORWARD_REPS, swapBlocks: arg('swap-blocks', 4) },
  );
}

main().then(
  () => {
    cleanup();
    process.exit(0);
  },
  (e: unknown) => {
    console.error(e instanceof Error ? e.stack : e);
    cleanup();
    process.exit(1);
  },
);
