// bench:failover, the Nebula side: Debian's nebula on the same namespaces. The hub is the lighthouse
// and the relay across the two networks (relays came in Nebula 1.6.0), gp routes the server LAN into
// the overlay with `unsafe_routes`, civic-a and civic-b both carry the LAN in their certificates.
// Debian's Nebula (1.6.1) takes one `via` per unsafe route, a string (more than one gateway per route,
// with weights, came in later releases), so the route goes via civic-a only; nothing moves it, and
// nothing moves the LAN's gateway address either (Nebula has no VRRP): civic-a keeps it as a static
// address. A power cut of civic-a then loses traffic until civic-a returns; a run brings it back after
// `capMs` and the loss window counts up to the first answered request after that.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CLIENT_SUBNET,
  ECHO_PORT,
  GATEWAY_CIDR,
  PRIMARY,
  SERVER_ADDRESS,
  SERVER_SUBNET,
  STANDBY,
} from '../test/e2e/edge-failover-topology.js';
import { LossMonitor } from '../test/e2e/loss-monitor.js';
import { cutPower, restorePower } from '../test/e2e/power-cut.js';
import type { SpawnedProcess } from '../test/testbed/exec.js';
import type { Testbed } from '../test/testbed/testbed.js';

const PORT = 4242;
const NODES = [
  { box: 'hub', ip: '10.99.0.1', subnets: [] as string[] },
  { box: 'gp', ip: '10.99.0.2', subnets: [CLIENT_SUBNET] },
  { box: PRIMARY, ip: '10.99.0.3', subnets: [SERVER_SUBNET] },
  { box: STANDBY, ip: '10.99.0.4', subnets: [SERVER_SUBNET] },
] as const;
const LIGHTHOUSE = NODES[0];

export function nebulaVersion(): string {
  const r = spawnSync('nebula', ['-version'], { encoding: 'utf8' });
  return /Version: (\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? 'not installed';
}

function nebulaCert(dir: string, args: string[]): void {
  const r = spawnSync('nebula-cert', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nebula-cert ${args.join(' ')}: ${r.stderr || r.stdout}`);
}

function config(bed: Testbed, dir: string, node: (typeof NODES)[number]): string {
  const isHub = node.box === LIGHTHOUSE.box;
  // The lighthouse at its address on this box's own underlay (the hub is on both).
  const myUnderlay = bed.box(node.box).underlays[0]!.underlay;
  const hubAddress = bed.box(LIGHTHOUSE.box).underlays.find((u) => u.underlay === myUnderlay)!.address;
  const routes =
    node.box === 'gp'
      ? [{ route: SERVER_SUBNET, via: NODES[2].ip }]
      : node.box === PRIMARY || node.box === STANDBY
        ? [{ route: CLIENT_SUBNET, via: NODES[1].ip }]
        : [];
  const lines = [
    'pki:',
    `  ca: ${join(dir, 'ca.crt')}`,
    `  cert: ${join(dir, `${node.box}.crt`)}`,
    `  key: ${join(dir, `${node.box}.key`)}`,
    'static_host_map:',
    `  "${LIGHTHOUSE.ip}": ["${hubAddress}:${PORT}"]`,
    'lighthouse:',
    `  am_lighthouse: ${isHub}`,
    '  interval: 10',
    `  hosts: ${isHub ? '[]' : `["${LIGHTHOUSE.ip}"]`}`,
    'listen:',
    '  host: 0.0.0.0',
    `  port: ${PORT}`,
    'punchy:',
    '  punch: true',
    'relay:',
    `  am_relay: ${isHub}`,
    `  use_relays: ${!isHub}`,
    ...(isHub ? [] : [`  relays: ["${LIGHTHOUSE.ip}"]`]),
    'tun:',
    '  dev: neb0',
    '  mtu: 1300',
    '  unsafe_routes:',
    ...routes.flatMap((r) => [`    - route: ${r.route}`, `      via: ${r.via}`]),
    'logging:',
    '  level: info',
    'firewall:',
    '  outbound:',
    '    - { port: any, proto: any, host: any }',
    '  inbound:',
    '    - { port: any, proto: any, host: any }',
    '',
  ];
  if (routes.length === 0) lines.splice(lines.indexOf('  unsafe_routes:'), 1);
  const file = join(dir, `${node.box}.yml`);
  writeFileSync(file, lines.join('\n'), { mode: 0o600 });
  return file;
}

export interface NebulaResult {
  version: string;
  runs: Array<{ ms: number; backAfterReturnMs: number | null; isFailover: boolean }>;
}

/** Runs Nebula on the testbed's boxes (Crosslink already cleared), `runs` power cuts of civic-a. */
export async function nebulaRuns(bed: Testbed, runs: number, capMs: number): Promise<NebulaResult> {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-bench-nebula-'));
  const procs = new Map<string, SpawnedProcess>();
  const start = (node: (typeof NODES)[number], file: string): void => {
    procs.set(node.box, bed.spawn(node.box, ['nebula', '-config', file], { logFile: `nebula-${node.box}.log` }));
  };
  try {
    nebulaCert(dir, ['ca', '-name', 'crosslink-bench', '-out-crt', 'ca.crt', '-out-key', 'ca.key']);
    const files = new Map<string, string>();
    for (const n of NODES) {
      nebulaCert(dir, [
        'sign',
        '-name',
        n.box,
        '-ip',
        `${n.ip}/24`,
        ...(n.subnets.length ? ['-subnets', n.subnets.join(',')] : []),
        '-ca-crt',
        'ca.crt',
        '-ca-key',
        'ca.key',
        '-out-crt',
        `${n.box}.crt`,
        '-out-key',
        `${n.box}.key`,
      ]);
      files.set(n.box, config(bed, dir, n));
    }
    // No VRRP: the primary keeps the LAN's gateway address as a static one.
    await bed.exec(PRIMARY, ['ip', 'addr', 'replace', GATEWAY_CIDR, 'dev', 'lan0']);
    for (const n of NODES) start(n, files.get(n.box)!);
    const result: NebulaResult = { version: nebulaVersion(), runs: [] };
    for (let i = 0; i < runs; i++) {
      const mon = await LossMonitor.start(bed, 'client', SERVER_ADDRESS, ECHO_PORT);
      if (!(await mon.waitOk(Date.now(), 60_000, 500)))
        throw new Error(`Nebula: no traffic client -> server before run ${i + 1} (see ${bed.workDir}/nebula-*.log)`);
      const cut = await cutPower(bed, PRIMARY, { pids: [procs.get(PRIMARY)!.pid] });
      const isFailover = await mon.waitOk(cut.atMs, capMs, 300);
      let backAfterReturnMs: number | null = null;
      // Back after a reboot: its network config gives it the gateway address again; nebula starts.
      const returnedAtMs = await restorePower(bed, PRIMARY);
      await bed.exec(PRIMARY, ['ip', 'addr', 'replace', GATEWAY_CIDR, 'dev', 'lan0']);
      start(NODES[2], files.get(PRIMARY)!);
      if (!isFailover && (await mon.waitOk(returnedAtMs, 60_000, 300))) {
        const firstOk = mon.since(returnedAtMs).find((x) => x.isOk);
        backAfterReturnMs = firstOk ? firstOk.sentMs - returnedAtMs : null;
      }
      await mon.stop({ isDrained: true });
      const w = mon.longest(cut.atMs - mon.replyTimeoutMs);
      result.runs.push({ ms: w ? w.ms : 0, backAfterReturnMs, isFailover });
    }
    return result;
  } finally {
    await Promise.all([...procs.values()].map((p) => bed.kill(p.pid).catch(() => undefined)));
    rmSync(dir, { recursive: true, force: true });
  }
}
