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
  /** `to` is only the first of a serving group none of whose boxes the controller judges healthy:
   *  the boxes choose among themselves which serves it (failover at the edges). */
  isUnconfirmed: boolean;
  /** The same, of `from` before this recompile. */
  wasUnconfirmed: boolean;
}

/** The subnets served on their boxes' own choice, before and after a recompile. */
export interface UnconfirmedBetween {
  before: ReadonlySet<string>;
  now: ReadonlySet<string>;
}

/** One (subnet, candidate agent) pair: the agent is in the subnet's `via`, enrolled and not revoked. */
export interface ServingAssignment {
  subnet: string;
  agent: string;
  role: 'primary' | 'standby';
  /** The agent is the subnet's active gateway now (its current config carries the subnet). */
  isServing: boolean;
}

/** The subnets whose serving agent differs between `before` and `now` (subnet -> agent), or that
 *  came to be (or stopped being) served on their boxes' own choice, by subnet. */
export function handoversBetween(
  before: ReadonlyMap<string, string>,
  now: ReadonlyMap<string, string>,
  policy: Policy | null,
  health: ReadonlyMap<string, boolean>,
  unconfirmed: UnconfirmedBetween = { before: new Set(), now: new Set() },
): Handover[] {
  const handovers: Handover[] = [];
  const viaOf = new Map((policy?.subnets ?? []).map((s) => [s.name as string, s.via as string[]]));
  for (const subnet of [...new Set([...before.keys(), ...now.keys()])].sort()) {
    const from = before.get(subnet) ?? '';
    const to = now.get(subnet) ?? '';
    const isUnconfirmed = to !== '' && unconfirmed.now.has(subnet);
    const wasUnconfirmed = from !== '' && unconfirmed.before.has(subnet);
    if (from === to && isUnconfirmed === wasUnconfirmed) continue;
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
      isUnconfirmed,
      wasUnconfirmed,
    });
  }
  return handovers;
}
