// A box's power cut and its return, for the failover scenario and bench:failover. A cut takes every
// cable of the box down at once (its underlay cables at the router's side, its LAN ports at its
// own) and kills the named processes by PID with SIGKILL: the agent (or Nebula) and the data plane
// it left running (wireguard-go), found by their command name inside the box's namespace. Nothing
// gets a FIN out, nothing is cleaned up. The return is a reboot: the addresses a serving box had
// added (the virtual gateway) are gone, the cables come back; the caller starts its daemon again.
import { readFileSync } from 'node:fs';
import type { Testbed } from '../testbed/testbed.js';

export interface PowerCut {
  /** Date.now() just before the first cable went down. */
  atMs: number;
  killed: Array<{ pid: number; command: string }>;
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * Cuts the box's power: cables down, then SIGKILL to `pids` and to every process in its namespace
 * whose command name is in `commands` (e.g. ['wireguard-go']).
 */
export async function cutPower(
  bed: Testbed,
  box: string,
  opts: { pids?: readonly number[]; commands?: readonly string[] } = {},
): Promise<PowerCut> {
  const b = bed.box(box);
  const atMs = Date.now();
  await Promise.all([bed.setUnderlayLinkUp(box, false), ...b.lans.map((l) => bed.setLinkUp(box, l.interface, false))]);
  const named = new Set(opts.commands ?? []);
  const inside = named.size > 0 ? await bed.pidsIn(box) : [];
  const targets = [
    ...(opts.pids ?? []).map((pid) => ({ pid, command: commandOf(pid) })),
    ...inside.map((pid) => ({ pid, command: commandOf(pid) })).filter((p) => named.has(p.command)),
  ].filter((p, i, all) => all.findIndex((q) => q.pid === p.pid) === i);
  await Promise.all(targets.map((p) => bed.kill(p.pid, { signal: 'SIGKILL' }).catch(() => undefined)));
  return { atMs, killed: targets };
}

/**
 * Brings the box back as after a reboot: drops `addresses` ("10.50.1.1/24") from its LAN ports
 * (a killed daemon's tun device went with it) and plugs the cables back. Returns Date.now() once the cables are up.
 */
export async function restorePower(
  bed: Testbed,
  box: string,
  opts: { addresses?: readonly string[] } = {},
): Promise<number> {
  const b = bed.box(box);
  for (const l of b.lans)
    for (const cidr of opts.addresses ?? [])
      await bed.exec(box, ['ip', 'addr', 'del', cidr, 'dev', l.interface], { check: false });
  await Promise.all([bed.setUnderlayLinkUp(box, true), ...b.lans.map((l) => bed.setLinkUp(box, l.interface, true))]);
  return Date.now();
}
