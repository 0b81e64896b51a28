// bench:failover, the Crosslink side: the loss window on the primary's power loss, run after run,
// with the controller up or killed just before the cut, and the agents' CPU at rest (the echo
// running). Each run starts from the steady state (primary serving, holding the gateway), cuts the
// primary's power, waits for traffic (and, with the controller up, for the controller to confirm
// the move), then brings the primary back and waits for it to serve again.
import { readFileSync } from 'node:fs';
import {
  ECHO_PORT,
  EDGE_FAILOVER_AGENTS,
  GATEWAY,
  GATEWAY_CIDR,
  PRIMARY,
  SERVER_ADDRESS,
  SERVER_SUBNET,
  STANDBY,
  serverSubnetHandover,
} from '../test/e2e/edge-failover-topology.js';
import type { Fleet } from '../test/e2e/fleet.js';
import { ForwardPath } from '../test/e2e/forward-path.js';
import { GatewayHolders } from '../test/e2e/gateway-holders.js';
import { LossMonitor } from '../test/e2e/loss-monitor.js';
import { failoverLoss } from '../test/e2e/loss-window.js';
import { cutPower, restorePower } from '../test/e2e/power-cut.js';
import type { Testbed } from '../test/testbed/testbed.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Clock ticks per second of /proc/PID/stat (USER_HZ; 100 on Linux). */
const TICKS_PER_S = 100;
/** A run whose traffic is not back by then counts as this long (printed as "> cap"). */
export const RECOVERY_CAP_MS = 30_000;

export interface RunResult {
  /** Loss window in ms; RECOVERY_CAP_MS or more when traffic did not come back (isCapped). */
  ms: number;
  isCapped: boolean;
  failed: number;
  /** gp moved the subnet / the standby took the gateway, ms after the cut (null: not seen). */
  pathMovedMs: number | null;
  gatewayMovedMs: number | null;
  /** Controller up: when it recorded the standby as serving, ms after the cut (null: not within 30 s). */
  confirmedMs: number | null;
  /** Requests lost after traffic was back, until a second after the controller confirmed (ms of loss). */
  laterLossMs: number;
}

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** CPU of each box's agent and wireguard-go over `seconds`, in % of one core. */
export async function agentCpu(
  bed: Testbed,
  fleet: Fleet,
  seconds: number,
): Promise<Array<{ box: string; agentPercent: number; wireguardPercent: number }>> {
  const boxes = EDGE_FAILOVER_AGENTS.map((a) => a.box);
  const pids = await Promise.all(
    boxes.map(async (box) => ({
      box,
      agent: fleet.agentPid(box),
      wg: (await bed.pidsIn(box)).filter((p) => commandOf(p) === 'wireguard-go'),
    })),
  );
  const sum = (ps: number[]) => ps.reduce((a, p) => a + cpuTicks(p), 0);
  const before = pids.map((p) => ({ agent: p.agent === null ? NaN : cpuTicks(p.agent), wg: sum(p.wg) }));
  await sleep(seconds * 1000);
  return pids.map((p, i) => ({
    box: p.box,
    agentPercent: (((p.agent === null ? NaN : cpuTicks(p.agent)) - before[i]!.agent) / TICKS_PER_S / seconds) * 100,
    wireguardPercent: ((sum(p.wg) - before[i]!.wg) / TICKS_PER_S / seconds) * 100,
  }));
}

/** Waits for the steady state (the primary has the subnet at gp and holds the gateway); false after timeoutMs. */
export async function waitSteady(path: ForwardPath, holders: GatewayHolders, timeoutMs = 60_000): Promise<boolean> {
  const [at, isHolder] = await Promise.all([path.waitFor(PRIMARY, timeoutMs), holders.waitFor([PRIMARY], timeoutMs)]);
  return at !== null && isHolder;
}

/** One run: cut the primary's power (the controller killed first when asked), measure, bring it back. */
export async function crosslinkRun(
  bed: Testbed,
  fleet: Fleet,
  path: ForwardPath,
  holders: GatewayHolders,
  opts: { isControllerDown: boolean },
): Promise<RunResult> {
  if (!(await waitSteady(path, holders)))
    throw new Error(`not steady before the run: ${path.now}, [${holders.holders().join(', ')}]`);
  const mon = await LossMonitor.start(bed, 'client', SERVER_ADDRESS, ECHO_PORT);
  if (!(await mon.waitOk(Date.now(), 10_000, 500))) throw new Error('no traffic before the cut');
  if (opts.isControllerDown) await fleet.stopController({ signal: 'SIGKILL' });
  const cut = await cutPower(bed, PRIMARY, {
    pids: [fleet.agentPid(PRIMARY)].filter((p): p is number => p !== null),
    commands: ['wireguard-go'],
  });
  const isBack = await mon.waitOk(cut.atMs, RECOVERY_CAP_MS, 300);
  // With the controller up, watch on through its own confirmation of the move (seconds later): a
  // loss then belongs to this failover as much as the first (it was 6-7 s in every run, until the
  // controller stopped blaming the boxes that probed the dead primary).
  const confirmedAt =
    isBack && !opts.isControllerDown
      ? await serverSubnetHandover(fleet, STANDBY, cut.atMs, cut.atMs + RECOVERY_CAP_MS)
      : null;
  if (confirmedAt !== null) await sleep(1000);
  await mon.stop({ isDrained: true });
  const { window: w, later } = failoverLoss(mon.since(cut.atMs - mon.replyTimeoutMs), 300);
  const laterLossMs = later.reduce((a, x) => a + x.ms, 0);
  const pathMovedAt = path.changes(cut.atMs).find((c) => c.to === STANDBY)?.atMs;
  const gatewayMovedAt = holders.changes(cut.atMs).find((e) => e.box === STANDBY && e.isHolder)?.atMs;
  // Back as after a reboot; the controller too, so the next run starts from the same state.
  await restorePower(bed, PRIMARY, { addresses: [GATEWAY_CIDR] });
  await fleet.startAgent(PRIMARY);
  if (opts.isControllerDown) await fleet.startController();
  if (!(await waitSteady(path, holders, 90_000)))
    throw new Error(`${PRIMARY} did not serve again within 90 s: ${path.now}, [${holders.holders().join(', ')}]`);
  return {
    ms: w ? (isBack ? w.ms : Math.max(w.ms, RECOVERY_CAP_MS)) : 0,
    isCapped: !isBack,
    failed: w?.failed ?? 0,
    pathMovedMs: pathMovedAt === undefined ? null : pathMovedAt - cut.atMs,
    gatewayMovedMs: gatewayMovedAt === undefined ? null : gatewayMovedAt - cut.atMs,
    confirmedMs: confirmedAt === null ? null : confirmedAt - cut.atMs,
    laterLossMs,
  };
}

/** Starts the watchers the runs need. */
export async function crosslinkWatchers(
  bed: Testbed,
  fleet: Fleet,
): Promise<{ path: ForwardPath; holders: GatewayHolders }> {
  const holders = await GatewayHolders.start(bed, GATEWAY, [{ box: PRIMARY }, { box: STANDBY }]);
  const path = await ForwardPath.start(fleet, 'gp', SERVER_SUBNET, [PRIMARY, STANDBY], 50);
  return { path, holders };
}

/**
 * Removes what the Crosslink fleet left in the boxes once its agents are stopped (a stopped agent
 * leaves the data plane): wireguard-go by PID, the boxes' nft tables, the virtual gateway.
 */
export async function clearCrosslink(bed: Testbed): Promise<void> {
  for (const a of EDGE_FAILOVER_AGENTS) {
    for (const pid of await bed.pidsIn(a.box))
      if (commandOf(pid) === 'wireguard-go') await bed.kill(pid, { signal: 'SIGKILL' }).catch(() => undefined);
    await bed.exec(a.box, ['nft', 'flush', 'ruleset'], { check: false });
    for (const l of bed.box(a.box).lans)
      await bed.exec(a.box, ['ip', 'addr', 'del', GATEWAY_CIDR, 'dev', l.interface], { check: false });
  }
}
