// Section (e) of `npm run bench:agent`: forwarding through box A with few and with many firewall
// tuples, measured so that the firewall is the only thing that differs (issue 4: ">= 90 % of the
// 10-tuple throughput with 10,000 tuples").
//
// Each measurement gets fresh namespaces (box A run by the real agent, box B with WireGuard by hand,
// host A on box A's LAN, host B behind box B, and host C on a second LAN of box A), and measures two
// paths through box A:
//   - tunnel:    host A -> box A (to_overlay chain) -> wireguard-go -> box B -> host B. wireguard-go
//                (userspace, 2 cores) is the bottleneck here, not nft.
//   - LAN->LAN:  host A -> box A (lan_to_lan chain) -> host C. Kernel-only forwarding, judged by the
//                same kind of concatenated interval set, thousands of new connections/s: where a
//                set-lookup cost would show (GUIDE §6).
// For each path: new TCP connections/s (sequential connects; the only packets that reach the sets are
// the SYNs, everything after is `ct state established,related accept`) and iperf3 (bulk throughput).
//
// Variants, each built from scratch: `10` and `10k` (the tuple counts under test, in both the
// outbound/inbound sets and, as many again, the local set), `10 again` (the 10-tuple config
// a second time: the noise floor — if 10 vs 10 differs as much as 10 vs 10k, the run cannot show a
// firewall cost), and `no fw` (the same box with Crosslink's table deleted after the apply: no
// nftables, no conntrack on the path). The order of the variants changes every rep (rotated, and
// reversed on odd reps: each variant comes first, last and next to each other), so order effects
// and slow drifts in the machine's load hit all of them alike. Before each measurement the bench
// waits for the kernel's namespace clean-up of the previous one (no `kworker/…+netns` running) and
// records what else ran: the CPU time of every process in box A (the agent, its monitors,
// wireguard-go) during the measurement, and the machine's busy share.
import { spawn } from 'node:child_process';
import type { AgentConfig, Firewall, FlowRule, Peer } from '../proto/gen/crosslink/v1/agent_pb.js';
import { CROSSLINK_NFT_TABLE } from '../agent/host/ports.js';
import { firewall, flow } from '../agent/host/firewall.fixture.js';
import { killPid, must, sh } from '../agent/host/linux/netns.fixture.js';
import {
  VARIANTS,
  cpuText,
  f0,
  labelOf,
  pct,
  summarise,
  summariseSwaps,
  type Sample,
  type SwapSlice,
  type Variant,
} from './agent-forwarding-report.js';
import { busyShare, cpuDelta, cpuJiffies, loadavg, netnsCpu, settle, sleep } from './agent-machine.js';

/** What bench/agent.ts lends this section: its namespace book-keeping, boxes, agent and config. */
export interface ForwardingFixture {
  addNetns(tag: string): string;
  removeNetns(ns: string): void;
  /** PIDs removed at exit (also on Ctrl-C). */
  pids: Set<number>;
  buildPair(): { boxA: string; boxB: string; hostA: string; hostB: string; ifA: string; ifB: string };
  startAgent(ns: string, ifname: string, opts?: { flowLog?: boolean }): Promise<ForwardingAgent>;
  makeConfig(peers: Peer[], fw: Firewall): AgentConfig;
  basePeers(): Peer[];
  /** The outbound/inbound tuples of the tunnel path: n tuples, three of them the bench's flows. */
  firewallWith(n: number): Firewall;
  lanA: string;
  hostA: string;
  hostB: string;
  connPort: number;
  iperfPort: number;
}
export interface ForwardingAgent {
  apply(config: AgentConfig): Promise<unknown>;
  call(m: { type: string } & Record<string, unknown>): Promise<unknown>;
  stop(): void;
}
export interface ForwardingOptions {
  tuples: number;
  reps: number;
  /** Sequential connections per connection-rate measurement, tunnel / LAN->LAN. */
  tunnelConns?: number;
  lanConns?: number;
  iperfSeconds?: number;
  /** Part 2: ABBA blocks of in-place swaps, and the size of each slice. */
  swapBlocks?: number;
  swapLanConns?: number;
  swapTunnelConns?: number;
  swapIperfSeconds?: number;
}

const LAN_C = '10.30.0.0/24';
const BOX_A_LAN_C = '10.30.0.1';
const HOST_C = '10.30.0.10';

/** The local (LAN->LAN) tuples: host A's LAN to host C's LAN (icmp, the two bench ports) and n-3
 *  others, distinct /32 sources over 100 destination /24s (GUIDE §6), none overlapping. */
function localTuples(n: number, connPort: number, iperfPort: number, lanA: string): FlowRule[] {
  const rules: FlowRule[] = [
    flow('lan-ping', [lanA], [LAN_C], 'icmp'),
    flow('lan-conn', [lanA], [LAN_C], 'tcp', [connPort]),
    flow('lan-iperf', [lanA], [LAN_C], 'tcp', [iperfPort]),
  ];
  for (let i = 0; i < n - 3; i++) {
    const src = `10.${110 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;
    const dst = `10.${60 + ((i % 100) >> 8)}.${i % 100}.0/24`;
    rules.push(flow(`l${i}`, [src], [dst], 'tcp', [connPort]));
  }
  return rules;
}

// ---------------------------------------------------------------------------------------------
// Traffic.

const connServer = (port: number) => `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", ${port})); s.listen(4096)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()`;
const connClient = (addr: string, port: number, n: number) => `
import socket, time
n = ${n}; t = time.time()
for i in range(n):
    socket.create_connection(("${addr}", ${port}), timeout=2).close()
print(round(n / (time.time() - t)))`;

function startDaemon(fx: ForwardingFixture, ns: string, argv: string[]): Promise<number> {
  const p = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'ignore'] });
  fx.pids.add(p.pid!);
  return new Promise((resolve, reject) => {
    p.stdout.once('data', () => resolve(p.pid!));
    p.once('exit', (c) => reject(new Error(`${argv[0]} exited ${c}`)));
  });
}

function waitForPing(from: string, to: string): void {
  const deadline = Date.now() + 10_000;
  while (sh(['ip', 'netns', 'exec', from, 'ping', '-c', '1', '-W', '1', to]).code !== 0) {
    if (Date.now() > deadline) throw new Error(`no traffic from ${from} to ${to}`);
  }
}

function connRate(fx: ForwardingFixture, from: string, to: string, n: number): number {
  return Number(must(['ip', 'netns', 'exec', from, 'python3', '-c', connClient(to, fx.connPort, n)]).trim());
}

async function iperf(
  fx: ForwardingFixture,
  from: string,
  serverNs: string,
  to: string,
  seconds: number,
): Promise<number> {
  const srv = spawn('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-1', '-p', String(fx.iperfPort)], {
    stdio: 'ignore',
  });
  fx.pids.add(srv.pid!);
  const exited = new Promise<void>((r) => srv.once('exit', () => r()));
  try {
    await sleep(300);
    // -O 1: the first second (slow start) is not counted.
    const j = JSON.parse(
      must([
        'ip',
        'netns',
        'exec',
        from,
        'iperf3',
        '-c',
        to,
        '-p',
        String(fx.iperfPort),
        '-t',
        String(seconds),
        '-O',
        '1',
        '-J',
      ]),
    ) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e6;
  } finally {
    await Promise.race([exited, sleep(1000)]);
    killPid(srv.pid!);
    fx.pids.delete(srv.pid!);
  }
}

// ---------------------------------------------------------------------------------------------
// The boxes: box A (the agent), box B, hosts A and B (bench/agent.ts's pair) and host C on box A's
// second LAN; connection servers on host B and host C.

/** Extra addresses on host B and host C: the swap part makes more connections to one place than
 *  host A has ephemeral ports while the earlier ones sit in TIME_WAIT. */
const EXTRA_ADDRESSES = 8;
const hostBAddr = (fx: ForwardingFixture, k: number) =>
  k === 0 ? fx.hostB : fx.hostB.replace(/\.\d+$/, `.${100 + k}`);
const hostCAddr = (k: number) => (k === 0 ? HOST_C : `10.30.0.${100 + k}`);

interface Boxes {
  p: ReturnType<ForwardingFixture['buildPair']>;
  hostC: string;
  own: number[];
  agent: ForwardingAgent | null;
}

function firewallFor(fx: ForwardingFixture, n: number): Firewall {
  const base = fx.firewallWith(n);
  return firewall({
    outbound: base.outbound,
    inbound: base.inbound,
    local: localTuples(n, fx.connPort, fx.iperfPort, fx.lanA),
    localPrefixes: [fx.lanA, LAN_C],
  });
}

async function buildBoxes(fx: ForwardingFixture, b: Boxes, fw: Firewall, flowLog = false): Promise<void> {
  const { p, hostC } = b;
  // Box A's second LAN (host C), before the agent starts: its monitors see nothing new later.
  must(['ip', 'link', 'add', 'lan1', 'netns', p.boxA, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hostC]);
  must(['ip', '-n', p.boxA, 'addr', 'add', `${BOX_A_LAN_C}/24`, 'dev', 'lan1']);
  must(['ip', '-n', hostC, 'addr', 'add', `${HOST_C}/24`, 'dev', 'eth0']);
  must(['ip', '-n', p.boxA, 'link', 'set', 'lan1', 'up']);
  must(['ip', '-n', hostC, 'link', 'set', 'eth0', 'up']);
  must(['ip', '-n', hostC, 'route', 'add', 'default', 'via', BOX_A_LAN_C]);
  for (let k = 1; k < EXTRA_ADDRESSES; k++) {
    must(['ip', '-n', p.hostB, 'addr', 'add', `${hostBAddr(fx, k)}/24`, 'dev', 'eth0']);
    must(['ip', '-n', hostC, 'addr', 'add', `${hostCAddr(k)}/24`, 'dev', 'eth0']);
  }
  b.agent = await fx.startAgent(p.boxA, p.ifA, { flowLog });
  await b.agent.apply(fx.makeConfig(fx.basePeers(), fw));
  await b.agent.call({ type: 'settle' });
  for (const ns of [p.hostB, hostC]) b.own.push(await startDaemon(fx, ns, ['python3', '-c', connServer(fx.connPort)]));
  waitForPing(p.hostA, fx.hostB);
  waitForPing(p.hostA, HOST_C);
}

function teardown(fx: ForwardingFixture, b: Boxes): void {
  b.agent?.stop();
  for (const pid of b.own) {
    killPid(pid);
    fx.pids.delete(pid);
  }
  for (const ns of [b.p.boxA, b.p.boxB, b.p.hostA, b.p.hostB, b.hostC]) fx.removeNetns(ns);
}

// ---------------------------------------------------------------------------------------------
// Part 1. One measurement: fresh namespaces, the agent applies the variant's config, both paths.

async function measure(
  fx: ForwardingFixture,
  v: Variant,
  opts: Required<ForwardingOptions>,
  rep: number,
  slot: number,
): Promise<Sample> {
  const b: Boxes = { p: fx.buildPair(), hostC: '', own: [], agent: null };
  try {
    b.hostC = fx.addNetns('c');
    const { p, hostC } = b;
    await buildBoxes(fx, b, firewallFor(fx, v.tuples(opts.tuples)), v.flowLog === true);
    if (v.dropTable) must(['ip', 'netns', 'exec', p.boxA, 'nft', 'delete', 'table', 'inet', CROSSLINK_NFT_TABLE]);
    const elements = sh(['ip', 'netns', 'exec', p.boxA, 'nft', 'list', 'table', 'inet', CROSSLINK_NFT_TABLE])
      .stdout.split('\n')
      .filter((l) => /^\t\t\t/.test(l)).length;

    const settleMs = await settle();
    const load = loadavg();
    const j0 = cpuJiffies();
    await sleep(500);
    const j1 = cpuJiffies();
    const box0 = netnsCpu(p.boxA);

    const tunConn = connRate(fx, p.hostA, fx.hostB, opts.tunnelConns);
    const lanConn = connRate(fx, p.hostA, HOST_C, opts.lanConns);
    const tunMbit = await iperf(fx, p.hostA, p.hostB, fx.hostB, opts.iperfSeconds);
    const lanMbit = await iperf(fx, p.hostA, hostC, HOST_C, opts.iperfSeconds);

    const j2 = cpuJiffies();
    const boxCpu = cpuDelta(box0, netnsCpu(p.boxA));
    const s: Sample = {
      rep,
      slot,
      variant: v.key,
      settleMs,
      load,
      boxCpu,
      busy: busyShare(j1, j2),
      idleBusy: busyShare(j0, j1),
      tunConn,
      lanConn,
      tunMbit,
      lanMbit,
    };
    console.log(
      `  rep ${rep + 1}.${slot + 1} ${labelOf(v, opts.tuples).padEnd(8)} (${elements} set elements): tunnel ${f0(tunConn)} conn/s ${f0(tunMbit)} Mbit/s; LAN->LAN ${f0(lanConn)} conn/s ${f0(lanMbit)} Mbit/s` +
        ` | waited ${settleMs} ms for netns clean-up; machine busy ${pct(s.idleBusy)} before, ${pct(s.busy)} during (ours included); box A CPU ms during: ${cpuText(boxCpu)}; load ${load}`,
    );
    return s;
  } finally {
    teardown(fx, b);
  }
}

// ---------------------------------------------------------------------------------------------
// Part 2. The firewall swapped in place: one set of namespaces, the agent alternating between the
// 10-tuple and the many-tuple config in ABBA blocks, a short measurement after each swap. Seconds
// apart, so load from elsewhere hits both alike; and in each block the two 10-tuple slices (first
// and last) give the noise floor of the same design.

async function swapInPlace(fx: ForwardingFixture, opts: Required<ForwardingOptions>): Promise<SwapSlice[]> {
  const b: Boxes = { p: fx.buildPair(), hostC: '', own: [], agent: null };
  const few = firewallFor(fx, 10);
  const many = firewallFor(fx, opts.tuples);
  const slices: SwapSlice[] = [];
  try {
    b.hostC = fx.addNetns('c');
    await buildBoxes(fx, b, few);
    const { p } = b;
    let k = 0;
    for (let block = 0; block < opts.swapBlocks; block++) {
      for (let pos = 0; pos < 4; pos++) {
        const isMany = pos === 1 || pos === 2;
        await b.agent!.apply(fx.makeConfig(fx.basePeers(), isMany ? many : few));
        await b.agent!.call({ type: 'settle' });
        await sleep(300);
        const j0 = cpuJiffies();
        await sleep(300);
        const j1 = cpuJiffies();
        const box0 = netnsCpu(p.boxA);
        // A different server address each slice: host A's ports stay free of TIME_WAIT.
        const lanConn = connRate(fx, p.hostA, hostCAddr(k % EXTRA_ADDRESSES), opts.swapLanConns);
        const tunConn = connRate(fx, p.hostA, hostBAddr(fx, k % EXTRA_ADDRESSES), opts.swapTunnelConns);
        const tunMbit = await iperf(fx, p.hostA, p.hostB, fx.hostB, opts.swapIperfSeconds);
        k++;
        const cpu = cpuDelta(box0, netnsCpu(p.boxA));
        const s: SwapSlice = {
          block,
          pos,
          many: isMany,
          lanConn,
          tunConn,
          tunMbit,
          agentMs: cpu.node ?? 0,
          idleBusy: busyShare(j0, j1),
        };
        slices.push(s);
        console.log(
          `  block ${block + 1}.${pos + 1} ${(isMany ? String(opts.tuples) : '10').padEnd(6)}: LAN->LAN ${f0(lanConn)} conn/s; tunnel ${f0(tunConn)} conn/s ${f0(tunMbit)} Mbit/s | machine busy before ${pct(s.idleBusy)}; box A CPU ms during: ${cpuText(cpu)}`,
        );
      }
    }
  } finally {
    teardown(fx, b);
  }
  return slices;
}

/** The order of the variants in rep r: rotated by r, reversed on odd reps. */
export function orderFor(rep: number, n: number): number[] {
  const rot = Array.from({ length: n }, (_, i) => (i + rep) % n);
  return rep % 2 === 1 ? rot.reverse() : rot;
}

export async function runForwarding(fx: ForwardingFixture, options: ForwardingOptions): Promise<void> {
  const opts: Required<ForwardingOptions> = {
    tunnelConns: 3000,
    lanConns: 10_000,
    iperfSeconds: 5,
    swapBlocks: 4,
    swapLanConns: 3000,
    swapTunnelConns: 1000,
    swapIperfSeconds: 3,
    ...options,
  };
  console.log(
    `\n(e) forwarding through box A, ${opts.reps} reps of ${VARIANTS.map((v) => labelOf(v, opts.tuples)).join(' / ')} tuples, fresh namespaces each, order rotated and reversed per rep;` +
      ` ${opts.tunnelConns} / ${opts.lanConns} sequential connections (tunnel / LAN->LAN), iperf3 ${opts.iperfSeconds} s after 1 s omitted. Load average at start ${loadavg()}`,
  );
  const samples: Sample[] = [];
  for (let rep = 0; rep < opts.reps; rep++) {
    const order = orderFor(rep, VARIANTS.length);
    for (let slot = 0; slot < order.length; slot++)
      samples.push(await measure(fx, VARIANTS[order[slot]!]!, opts, rep, slot));
  }

  if (samples.length > 0) summarise(samples, opts);

  if (opts.swapBlocks <= 0) {
    console.log(`    load average at end of (e) ${loadavg()}`);
    return;
  }
  console.log(
    `\n(e2) the firewall swapped in place: one set of namespaces, the agent alternating 10 / ${opts.tuples} / ${opts.tuples} / 10 tuples (ABBA), ${opts.swapBlocks} blocks;` +
      ` per slice ${opts.swapLanConns} LAN->LAN and ${opts.swapTunnelConns} tunnel connections, iperf3 ${opts.swapIperfSeconds} s. Load average ${loadavg()}`,
  );
  const sw = await swapInPlace(fx, opts);
  summariseSwaps(sw, opts);
  console.log(`    load average at end of (e) ${loadavg()}`);
}
