// Crosslink beside Nebula (issue 19): `npm run bench:vs-nebula` (root; build dist/ first). Prints
// figures; it is not a test and never fails on a number.
//
// One underlay, two edge boxes (alpha, beta), a LAN host behind each (a1 10.1.1.10, b1 10.2.1.10):
// a1 -> alpha -> overlay -> beta -> b1, iperf3 TCP from a1 to b1 (`--seconds` after 1 s omitted),
// `--reps` runs per row, the median printed. In order, on the same namespaces:
//   1. Crosslink: the real controller and two real agents (wireguard-go userspace, the firewall on,
//      a policy permitting only tcp/5201 from alpha's LAN to beta's);
//   2. the floor: the same tunnels with the agents and controller stopped (a stopped agent leaves its
//      data plane) and the Crosslink nft table deleted: wireguard-go and the kernel's forwarding only;
//   3. Debian's Nebula (bench/nebula.ts): lighthouse = alpha, unsafe_routes for the two LANs, the
//      firewall allowing tcp/5201 inbound (stateful, as Crosslink's).
// Memory per edge box: RSS of the overlay processes (agent + wireguard-go; nebula) idle with 1 peer,
// after the first packet has crossed. And whether this kernel has WireGuard: when it does, the
// kernel figure belongs beside these, which this script does not take yet (it says so).
//
// Experiments on the Crosslink side only: `--mtu N` (the agents' --mtu; the default is 1420, Nebula's
// 1300) and `--gomaxprocs N` (GOMAXPROCS in the agents' environment, which wireguard-go inherits).
//
//   npm run bench:vs-nebula -- [--reps 3] [--seconds 5] [--no-nebula] [--no-crosslink]
//                             [--mtu N] [--gomaxprocs N]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fleet } from '../test/e2e/fleet.js';
import { median } from '../test/e2e/loss-window.js';
import { rule, smallPolicy, smallTopology } from '../test/e2e/small-topology.js';
import type { SpawnedProcess } from '../test/testbed/exec.js';
import { Testbed } from '../test/testbed/testbed.js';
import { hasFlag, numberArg } from './args.js';
import { nebulaConfig, nebulaPki, nebulaVersion, type NebulaNode } from './nebula.js';

const REPS = numberArg('reps', 3);
const SECONDS = numberArg('seconds', 5);
const MTU = numberArg('mtu', 0);
const GOMAXPROCS = numberArg('gomaxprocs', 0);
const PORT = 5201;
const BOXES = ['alpha', 'beta'] as const;
const FROM_HOST = 'a1';
const TO_HOST = 'b1';
const TO_ADDRESS = '10.2.1.10';
/** Idle time before reading RSS: the first packet has crossed, the handshake is done. */
const SETTLE_MS = 5000;
const out = (s: string) => process.stdout.write(`${s}\n`);
const err = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mbit = (x: number) => `${x.toFixed(0)} Mbit/s`;
const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;

function procText(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return '';
  }
}
const commandOf = (pid: number) => procText(pid, 'comm').trim();
/** VmRSS in kB (0 when the process is gone). */
const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(procText(pid, 'status'))?.[1] ?? 0);

async function pidsNamed(bed: Testbed, box: string, command: string): Promise<number[]> {
  return (await bed.pidsIn(box)).filter((p) => commandOf(p) === command);
}

/** TCP from a1 to b1's port until b1 answers (a RST counts: the path and the firewall let it through). */
async function waitPath(bed: Testbed, what: string, timeoutMs = 90_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await bed.tcpProbe(FROM_HOST, TO_ADDRESS, PORT, { timeoutMs: 1000 });
    if (r === 'open' || r === 'refused') return;
    if (Date.now() > until) throw new Error(`${what}: ${FROM_HOST} does not reach ${TO_ADDRESS}:${PORT} (${r})`);
    await sleep(500);
  }
}

/** One iperf3 run a1 -> b1; Mbit/s received. */
async function iperf(bed: Testbed): Promise<number> {
  const server = bed.spawn(TO_HOST, ['iperf3', '-s', '-1', '-p', String(PORT)]);
  try {
    await sleep(500);
    const r = await bed.exec(
      FROM_HOST,
      ['iperf3', '-c', TO_ADDRESS, '-p', String(PORT), '-t', String(SECONDS), '-O', '1', '-J'],
      { timeoutMs: (SECONDS + 30) * 1000 },
    );
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e6;
  } finally {
    await bed.kill(server.pid).catch(() => undefined);
  }
}

async function throughput(bed: Testbed, label: string): Promise<number[]> {
  const runs: number[] = [];
  for (let i = 0; i < REPS; i++) {
    runs.push(await iperf(bed));
    err(`  ${label}, run ${i + 1}/${REPS}: ${mbit(runs[i]!)}`);
  }
  return runs;
}

async function mtuOf(bed: Testbed, box: string, ifname: string): Promise<string> {
  const r = await bed.exec(box, ['ip', '-o', 'link', 'show', 'dev', ifname], { check: false });
  return /mtu (\d+)/.exec(r.stdout)?.[1] ?? '?';
}

/** Is WireGuard in this kernel? `modprobe -n` and a throwaway link in one of the script's namespaces. */
async function kernelWireGuard(bed: Testbed): Promise<{ isPresent: boolean; detail: string }> {
  const probe = spawnSync('modprobe', ['-n', 'wireguard'], { encoding: 'utf8' });
  const add = await bed.exec('alpha', ['ip', 'link', 'add', 'xlkwgprobe', 'type', 'wireguard'], { check: false });
  if (add.code === 0) await bed.exec('alpha', ['ip', 'link', 'del', 'xlkwgprobe'], { check: false });
  const detail =
    `modprobe -n wireguard: ${probe.status === 0 ? 'ok' : (probe.stderr || 'failed').trim()}; ` +
    `ip link add type wireguard: ${add.code === 0 ? 'ok' : add.stderr.trim()}`;
  return { isPresent: add.code === 0, detail };
}

interface Row {
  label: string;
  runs: number[];
}
const rowLine = (r: Row) =>
  `  ${r.label.padEnd(44)} ${mbit(median(r.runs)).padStart(13)}  (runs: ${r.runs.map((x) => x.toFixed(0)).join(', ')})`;

/** Crosslink, then the floor on the same tunnels; leaves the boxes clear of Crosslink. */
async function crosslink(bed: Testbed): Promise<{ rows: Row[]; memory: string[]; rssKb: number[]; mtu: string }> {
  const fleet = await Fleet.start(bed, {
    agents: BOXES.map((box) => ({ box })),
    policyText: smallPolicy(2, [rule('iperf', 'alpha-lan', 'beta-lan', [`tcp/${PORT}`])]),
    timeoutMs: 120_000,
    ...(MTU ? { agentArgs: ['--mtu', String(MTU)] } : {}),
    ...(GOMAXPROCS ? { env: { GOMAXPROCS: String(GOMAXPROCS) } } : {}),
  });
  const rows: Row[] = [];
  const memory: string[] = [];
  const totals: number[] = [];
  await waitPath(bed, 'Crosslink');
  await sleep(SETTLE_MS);
  for (const box of BOXES) {
    const agentPid = fleet.agentPid(box);
    const agent = agentPid === null ? 0 : rssKb(agentPid);
    const wg = (await pidsNamed(bed, box, 'wireguard-go')).reduce((a, p) => a + rssKb(p), 0);
    totals.push(agent + wg);
    memory.push(`${box} ${mb(agent + wg)} (agent ${mb(agent)} + wireguard-go ${mb(wg)})`);
  }
  const mtu = await mtuOf(bed, 'alpha', bed.box('alpha').wgInterface);
  const label = `Crosslink (firewall on, agents running${MTU ? `, MTU ${MTU}` : ''}${GOMAXPROCS ? `, GOMAXPROCS=${GOMAXPROCS}` : ''})`;
  rows.push({ label, runs: await throughput(bed, 'Crosslink') });
  const after: string[] = [];
  for (const box of BOXES) {
    const agentPid = fleet.agentPid(box);
    const agent = agentPid === null ? 0 : rssKb(agentPid);
    const wg = (await pidsNamed(bed, box, 'wireguard-go')).reduce((a, p) => a + rssKb(p), 0);
    after.push(`${box} ${mb(agent + wg)} (wireguard-go ${mb(wg)})`);
  }
  memory.push(`after the runs: ${after.join('; ')}`);
  // The floor: a stopped agent leaves wireguard-go, the peers and the routes; only the table goes.
  await fleet.stop();
  const tables: string[] = [];
  for (const box of BOXES) {
    await bed.exec(box, ['nft', 'delete', 'table', 'inet', 'crosslink'], { check: false });
    const left = (await bed.exec(box, ['nft', 'list', 'tables'], { check: false })).stdout.trim();
    if (left) tables.push(`${box}: ${left.replace(/\n/g, ', ')}`);
    if ((await pidsNamed(bed, box, 'wireguard-go')).length === 0)
      throw new Error(`floor: wireguard-go is gone from ${box} once the agent stopped`);
  }
  await waitPath(bed, 'floor');
  rows.push({
    label: `floor (agents stopped, nft table deleted${tables.length ? `; left: ${tables.join('; ')}` : ''})`,
    runs: await throughput(bed, 'floor'),
  });
  for (const box of BOXES) {
    for (const pid of await pidsNamed(bed, box, 'wireguard-go'))
      await bed.kill(pid, { signal: 'SIGKILL' }).catch(() => undefined);
    await bed.exec(box, ['ip', 'link', 'del', bed.box(box).wgInterface], { check: false });
    await bed.exec(box, ['nft', 'flush', 'ruleset'], { check: false });
  }
  return { rows, memory, rssKb: totals, mtu };
}

/** Nebula on the same boxes: alpha is the lighthouse; each certificate carries its box's LAN. */
async function nebula(bed: Testbed): Promise<{ row: Row; memory: string[]; rssKb: number[]; mtu: string }> {
  const nodes: NebulaNode[] = BOXES.map((box, i) => ({
    box,
    ip: `10.99.0.${i + 1}`,
    subnets: [bed.box(box).lans[0]!.subnet],
  }));
  const lighthouse = nodes[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-bench-vs-nebula-'));
  const procs: SpawnedProcess[] = [];
  try {
    nebulaPki(dir, nodes);
    for (const node of nodes) {
      const other = nodes.find((n) => n !== node)!;
      const file = nebulaConfig({
        dir,
        node,
        lighthouse,
        lighthouseAddress: bed.box(lighthouse.box).underlays[0]!.address,
        routes: other.subnets.map((route) => ({ route, via: other.ip })),
        inbound: [{ port: PORT, proto: 'tcp' }],
      });
      procs.push(bed.spawn(node.box, ['nebula', '-config', file], { logFile: `nebula-${node.box}.log` }));
    }
    await waitPath(bed, `Nebula (see ${bed.workDir}/nebula-*.log)`);
    await sleep(SETTLE_MS);
    const totals = procs.map((p) => rssKb(p.pid));
    const memory = BOXES.map((box, i) => `${box} ${mb(totals[i]!)} (nebula)`);
    const mtu = await mtuOf(bed, 'alpha', 'neb0');
    const row = {
      label: `Nebula ${nebulaVersion()} (firewall: tcp/${PORT} in)`,
      runs: await throughput(bed, 'Nebula'),
    };
    memory.push(`after the runs: ${BOXES.map((box, i) => `${box} ${mb(rssKb(procs[i]!.pid))}`).join('; ')}`);
    return { row, memory, rssKb: totals, mtu };
  } finally {
    await Promise.all(procs.map((p) => bed.kill(p.pid).catch(() => undefined)));
    rmSync(dir, { recursive: true, force: true });
  }
}

const bed = await Testbed.create(smallTopology(2));
try {
  const wgVersion = spawnSync('wireguard-go', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]!.trim();
  out(
    `bench:vs-nebula (${cpus().length} cores, Node ${process.version}, ${wgVersion || 'wireguard-go'}, ` +
      `Nebula ${nebulaVersion()}; iperf3 TCP ${FROM_HOST} -> ${TO_ADDRESS}, ${SECONDS} s after 1 s omitted, ` +
      `median of ${REPS}; load average at start ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')})`,
  );
  const kernel = await kernelWireGuard(bed);
  out(
    `kernel WireGuard: ${kernel.isPresent ? 'PRESENT' : 'absent'} (${kernel.detail})` +
      (kernel.isPresent
        ? ': its figure is not taken by this script yet; run the agents with --wireguard kernel by hand'
        : ': no kernel figure on this machine'),
  );
  const x = hasFlag('no-crosslink') ? null : await crosslink(bed);
  if (x) {
    const control = await bed.tcpProbe(FROM_HOST, TO_ADDRESS, PORT, { timeoutMs: 1000 });
    if (control === 'open' || control === 'refused')
      throw new Error(`${FROM_HOST} still reaches ${TO_ADDRESS} with no overlay running: clean-up failed`);
  }
  const n = hasFlag('no-nebula') ? null : await nebula(bed);
  out('TCP throughput through the overlay (median):');
  for (const r of [...(x?.rows ?? []), ...(n ? [n.row] : [])]) out(rowLine(r));
  out(`  tunnel MTU: Crosslink ${x?.mtu ?? '-'}, Nebula ${n?.mtu ?? '-'}`);
  out('Memory per edge box (RSS of the overlay processes, idle, 1 peer):');
  if (x) out(`  Crosslink: ${x.memory.join('\n             ')}`);
  if (n) out(`  Nebula:    ${n.memory.join('\n             ')}`);
  if (x && n) {
    const ratio = (a: number[], b: number[]) => (median(a) / median(b)).toFixed(2);
    out('Ratios:');
    out(`  throughput Crosslink / Nebula: ${ratio(x.rows[0]!.runs, n.row.runs)}x`);
    out(`  throughput floor / Nebula:     ${ratio(x.rows[1]!.runs, n.row.runs)}x`);
    out(`  throughput Crosslink / floor:  ${ratio(x.rows[0]!.runs, x.rows[1]!.runs)}x`);
    out(`  memory Crosslink / Nebula:     ${ratio(x.rssKb, n.rssKb)}x (medians over the boxes)`);
  }
} finally {
  await bed.destroy();
}
