// bench:failover, the Nebula side: Debian's nebula on the same namespaces. The hub is the lighthouse
// and the relay across the two networks (relays came in Nebula 1.6.0), gp routes the server LAN into
// the overlay with `unsafe_routes`, civic-a and civic-b both carry the LAN in their certificates.
// Debian's Nebula (1.6.1) takes one `via` per unsafe route, a string (more than one gateway per route,
// with weights, came in later releases), so the route goes via civic-a only; nothing moves it, and
// nothing moves the LAN's gateway address either (Nebula has no VRRP): civic-a keeps it as a static
// address. A power cut of civic-a then loses traffic until civic-a returns; a run brings it back after
// `capMs` and the loss window counts up to the first answered request after that.
import { mkdtempSync, rmSync } from 'node:fs';
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
import { nebulaConfig, nebulaPki, nebulaVersion, type NebulaNode } from './nebula.js';

export { nebulaVersion } from './nebula.js';

const NODES: readonly NebulaNode[] = [
  { box: 'hub', ip: '10.99.0.1', subnets: [] },
  { box: 'gp', ip: '10.99.0.2', subnets: [CLIENT_SUBNET] },
  { box: PRIMARY, ip: '10.99.0.3', subnets: [SERVER_SUBNET] },
  { box: STANDBY, ip: '10.99.0.4', subnets: [SERVER_SUBNET] },
];
const LIGHTHOUSE = NODES[0]!;

function config(bed: Testbed, dir: string, node: NebulaNode): string {
  // The lighthouse at its address on this box's own underlay (the hub is on both).
  const myUnderlay = bed.box(node.box).underlays[0]!.underlay;
  const hubAddress = bed.box(LIGHTHOUSE.box).underlays.find((u) => u.underlay === myUnderlay)!.address;
  const routes =
    node.box === 'gp'
      ? [{ route: SERVER_SUBNET, via: NODES[2]!.ip }]
      : node.box === PRIMARY || node.box === STANDBY
        ? [{ route: CLIENT_SUBNET, via: NODES[1]!.ip }]
        : [];
  return nebulaConfig({ dir, node, lighthouse: LIGHTHOUSE, lighthouseAddress: hubAddress, isRelayed: true, routes });
}

export interface NebulaResult {
  version: string;
  runs: Array<{ ms: number; backAfterReturnMs: number | null; isFailover: boolean }>;
}

/** Runs Nebula on the testbed's boxes (Crosslink already cleared), `runs` power cuts of civic-a. */
export async function nebulaRuns(bed: Testbed, runs: number, capMs: number): Promise<NebulaResult> {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-bench-nebula-'));
  const procs = new Map<string, SpawnedProcess>();
  const start = (node: NebulaNode, file: string): void => {
    procs.set(node.box, bed.spawn(node.box, ['nebula', '-config', file], { logFile: `nebula-${node.box}.log` }));
  };
  try {
    nebulaPki(dir, NODES);
    const files = new Map(NODES.map((n) => [n.box, config(bed, dir, n)]));
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
      start(NODES[2]!, files.get(PRIMARY)!);
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
