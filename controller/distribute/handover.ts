// Handovers (a subnet moving to another agent between recompiles) and who may serve each subnet.
import type { Policy } from '../policy/types.js';

/** A subnet changed hands: `from` served it before this recompile, `to` serves it now ("" = nobody). */
export interface Handover {
  subnet: string;
  from: string;
  to: string;
  /** Role of `to` in the subnet's `via` list ("" when nobody serves it now). */
  role: 'primary' | 'standby' | '';
  /** Role `from` had ("" when nobody served it before). */
  fromRole: 'primary' | 'standby' | '';
  /** Agents of the subnet's `via` the controller considers unhealthy for serving (why it moved, usually). */
  unhealthy: string[];
}

/** One (subnet, candidate agent) pair: the agent is in the subnet's `via`, enrolled and not revoked. */
export interface ServingAssignment {
  subnet: string;
  agent: string;
  role: 'primary' | 'standby';
  /** The agent is the subnet's active gateway now (its current config carries the subnet). */
  isServing: boolean;
}

/** The subnets whose serving agent differs between `before` and `now` (subnet -> agent), by subnet. */
export function handoversBetween(
  before: ReadonlyMap<string, string>,
  now: ReadonlyMap<string, string>,
  policy: Policy | null,
  health: ReadonlyMap<string, boolean>,
): Handover[] {
  const handovers: Handover[] = [];
  const viaOf = new Map((policy?.subnets ?? []).map((s) => [s.name as string, s.via as string[]]));
  for (const subnet of [...new Set([...before.keys(), ...now.keys()])].sort()) {
    const from = before.get(subnet) ?? '';
    const to = now.get(subnet) ?? '';
    if (from === to) continue;
    const roleOf = (agent: string) =>
      agent === '' ? '' : (viaOf.get(subnet) ?? []).indexOf(agent) === 0 ? 'primary' : 'standby';
    handovers.push({
      subnet,
      from,
      to,
      role: roleOf(to),
      fromRole: roleOf(from),
      // Only the subnet's own candidates: the history named boxes that had nothing to do with it.
      unhealthy: [...health]
        .filter(([n, ok]) => !ok && (viaOf.get(subnet) ?? []).includes(n))
        .map(([n]) => n)
        .sort(),
    });
  }
  return handovers;
}
