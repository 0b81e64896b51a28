// End-to-end convergence benchmark: `npm run bench:e2e` (root; needs `make build`). Prints figures;
// it is not a test and never fails on a time.
//
// The change: open a new flow between two boxes that had no peer (alpha -> beta tcp/8080). End to
// end that is PUT /v1/policy -> controller compiles and pushes -> both agents reconcile (WireGuard
// peer, routes, nft) -> the first SYN triggers a handshake -> the first packet reaches the server.
// The same change is also made as an operator makes it: a whole `crosslink policy apply -f FILE`
// process (start, pinned TLS, dry-run diff, PUT) timed from its start, not from the PUT. The floor
// is the same change made by hand on two other boxes of the same testbed, with wg, ip and nft
// (test/testbed/manual-wg.ts), both boxes in parallel, plus the handshake. The three are
// interleaved so the machine's noise falls on all alike.
//
//   npm run bench:e2e -- [--changes 20]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Fleet } from '../test/e2e/fleet.js';
import { rule, smallPolicy } from '../test/e2e/small-topology.js';
import { watchFlow } from '../test/e2e/wait-traffic.js';
import {
  addPeer,
  addRoutes,
  configureInterface,
  generateKeyPair,
  removePeer,
  removeRoutes,
  startWireGuardGo,
  type WgDevice,
  type WgKeyPair,
} from '../test/testbed/manual-wg.js';
import { Testbed, type Box } from '../test/testbed/testbed.js';

const { values } = parseArgs({ options: { changes: { type: 'string', default: '20' } } });
const CHANGES = Number(values.changes);

const bed = await Testbed.create({
  controller: true,
  boxes: [
    // smallPolicy's subnets have an IPv6 prefix too; a box serves a subnet only if it advertises all of it.
    { name: 'alpha', lans: [{ lan: 'alpha-lan', address: '10.1.1.1/24', address6: 'fd00:1:1::1/64' }] },
    { name: 'beta', lans: [{ lan: 'beta-lan', address: '10.2.1.1/24', address6: 'fd00:2:1::1/64' }] },
    { name: 'floor-a', lans: [{ lan: 'floor-a-lan', address: '10.11.1.1/24' }] },
    { name: 'floor-b', lans: [{ lan: 'floor-b-lan', address: '10.12.1.1/24' }] },
  ],
  hosts: [
    { name: 'a1', lan: 'alpha-lan', address: '10.1.1.10/24' },
    { name: 'b1', lan: 'beta-lan', address: '10.2.1.10/24' },
    { name: 'fa1', lan: 'floor-a-lan', address: '10.11.1.10/24' },
    { name: 'fb1', lan: 'floor-b-lan', address: '10.12.1.10/24' },
  ],
});

// ---- the agents' side ----------------------------------------------------------------------------

const base = smallPolicy(2, []);
const changed = smallPolicy(2, [rule('alpha-to-beta', 'alpha-lan', 'beta-lan', ['tcp/8080'])]);
const fleet = await Fleet.start(bed, {
  agents: [{ box: 'alpha' }, { box: 'beta' }],
  policyText: base,
  timeoutMs: 90_000,
});
await bed.listen('b1', 'tcp', 8080);

async function agentChange(): Promise<{ fromPutMs: number; fromAcceptMs: number }> {
  const watcher = await watchFlow(bed, 'a1', '10.2.1.10', 8080, 'open');
  const { sentAtMs, acceptedAtMs } = await fleet.applyPolicy(changed);
  const openAtMs = await watcher.result();
  // Back to no rule (and no peer) before the next change.
  await fleet.applyPolicy(base);
  await fleet.waitConverged({ timeoutMs: 30_000 });
  return { fromPutMs: openAtMs - sentAtMs, fromAcceptMs: openAtMs - acceptedAtMs };
}

/** The change as an operator makes it: from the start of `crosslink policy apply -f FILE`. */
const fileDir = mkdtempSync(join(tmpdir(), 'xl-bench-e2e-'));
const changedFile = join(fileDir, 'policy.yaml');
writeFileSync(changedFile, changed);
async function operatorChange(): Promise<number> {
  const watcher = await watchFlow(bed, 'a1', '10.2.1.10', 8080, 'open');
  const startMs = Date.now();
  const run = fleet.cli(['policy', 'apply', '-f', changedFile, '--comment', 'bench:e2e']);
  const openAtMs = await watcher.result();
  const r = await run;
  if (r.code !== 0) throw new Error(`crosslink policy apply exited ${r.code}: ${r.stderr}`);
  await fleet.applyPolicy(base);
  await fleet.waitConverged({ timeoutMs: 30_000 });
  return openAtMs - startMs;
}

// ---- the floor: the same change by hand -----------------------------------------------------------

interface FloorEnd {
  box: Box;
  dev: WgDevice;
  keys: WgKeyPair;
  lan: string;
  otherLan: string;
}

function nftTable(end: FloorEnd, isAllowed: boolean): string {
  const allow = isAllowed
    ? [
        `iifname "${end.dev.ifname}" ip saddr 10.11.1.0/24 ip daddr 10.12.1.0/24 tcp dport 8080 accept`,
        `oifname "${end.dev.ifname}" ip saddr 10.11.1.0/24 ip daddr 10.12.1.0/24 tcp dport 8080 accept`,
      ]
    : [];
  return [
    'table inet floor',
    'delete table inet floor',
    'table inet floor {',
    '  chain forward {',
    '    type filter hook forward priority 0; policy accept;',
    '    ct state established,related accept',
    ...allow.map((r) => `    ${r}`),
    `    iifname "${end.dev.ifname}" drop`,
    `    oifname "${end.dev.ifname}" drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

const floorEnds: FloorEnd[] = [];
for (const [name, lan, otherLan] of [
  ['floor-a', '10.11.1.0/24', '10.12.1.0/24'],
  ['floor-b', '10.12.1.0/24', '10.11.1.0/24'],
] as const) {
  const box = bed.box(name);
  const [dev, keys] = await Promise.all([startWireGuardGo(bed, box), generateKeyPair()]);
  await configureInterface(bed, dev, { privateKey: keys.privateKey, listenPort: 51820 });
  const end = { box, dev, keys, lan, otherLan };
  await bed.exec(box, ['nft', '-f', '-'], { input: nftTable(end, false) });
  floorEnds.push(end);
}
await bed.listen('fb1', 'tcp', 8080);

async function floorChange(): Promise<number> {
  const watcher = await watchFlow(bed, 'fa1', '10.12.1.10', 8080, 'open');
  const startMs = Date.now();
  // What each agent does, by hand: peer, route, firewall; both boxes at once.
  await Promise.all(
    floorEnds.map(async (end) => {
      const other = floorEnds.find((e) => e !== end)!;
      await addPeer(bed, end.dev, {
        publicKey: other.keys.publicKey,
        endpoint: `${other.box.wanAddress}:51820`,
        allowedIPs: [end.otherLan],
      });
      await addRoutes(bed, end.dev, [end.otherLan]);
      await bed.exec(end.box, ['nft', '-f', '-'], { input: nftTable(end, true) });
    }),
  );
  const openAtMs = await watcher.result();
  await Promise.all(
    floorEnds.map(async (end) => {
      const other = floorEnds.find((e) => e !== end)!;
      await bed.exec(end.box, ['nft', '-f', '-'], { input: nftTable(end, false) });
      await removeRoutes(bed, end.dev, [end.otherLan]);
      await removePeer(bed, end.dev, other.keys.publicKey);
    }),
  );
  return openAtMs - startMs;
}

// ---- run -----------------------------------------------------------------------------------------

const fromPut: number[] = [];
const fromAccept: number[] = [];
const floor: number[] = [];
const fromOperator: number[] = [];
const load0 = loadavg()[0]!;
try {
  // One of each first, not counted: warms caches and both data paths.
  await agentChange();
  await operatorChange();
  await floorChange();
  for (let i = 0; i < CHANGES; i++) {
    const a = await agentChange();
    const o = await operatorChange();
    const f = await floorChange();
    fromPut.push(a.fromPutMs);
    fromAccept.push(a.fromAcceptMs);
    fromOperator.push(o);
    floor.push(f);
    process.stderr.write(
      `change ${i + 1}/${CHANGES}: end to end ${a.fromPutMs.toFixed(0)} ms (from accept ${a.fromAcceptMs.toFixed(0)}), from the operator's command ${o.toFixed(0)} ms, floor ${f.toFixed(0)} ms\n`,
    );
  }
} finally {
  await bed.destroy();
  rmSync(fileDir, { recursive: true, force: true });
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const row = (label: string, xs: number[]) =>
  `| ${label} | ${pct(xs, 50).toFixed(0)} ms | ${pct(xs, 95).toFixed(0)} ms | ${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)} ms |`;
process.stdout.write(
  [
    `End-to-end convergence, ${CHANGES} changes (a new flow between two boxes with no peer yet: WireGuard peer, routes, nft, handshake)`,
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}, load average at start ${load0.toFixed(2)}`,
    '',
    '| | median | p95 | range |',
    '|---|---|---|---|',
    row('PUT /v1/policy sent -> first packet through', fromPut),
    row('PUT answered (accepted) -> first packet through', fromAccept),
    row('operator starts `crosslink policy apply -f FILE` -> first packet through', fromOperator),
    row('floor: same change by hand (wg, ip, nft on both boxes in parallel) -> first packet through', floor),
    '',
    `ratio to the floor: median ${(pct(fromPut, 50) / pct(floor, 50)).toFixed(2)}x, p95 ${(pct(fromPut, 95) / pct(floor, 95)).toFixed(2)}x (target <= 3x)`,
    `operator's command to the floor: median ${(pct(fromOperator, 50) / pct(floor, 50)).toFixed(2)}x, p95 ${(pct(fromOperator, 95) / pct(floor, 95)).toFixed(2)}x (target <= 1.5x)`,
    '',
  ].join('\n'),
);
