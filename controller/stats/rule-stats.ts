// Per-rule traffic across the fleet: each agent's last reported counters (agent/health/
// rule-counters.ts), summed per rule, beside the rules of the current policy. PURE: no I/O.
import type { RuleCounter, ZoneDropCounter } from '../../proto/gen/crosslink/v1/agent_pb.js';

export interface BoxRuleStats {
  agent: string;
  direction: string;
  connections: number;
  packets: number;
  bytes: number;
  /** When the agent reported these (ISO 8601). */
  reportedAt: string;
}

export interface RuleStats {
  rule: string;
  /** false: the rule is no longer in the current policy (its counters are from before). */
  isInPolicy: boolean;
  /** Each flow once, where it started: outbound (into the overlay) plus local (LAN to LAN). */
  connections: number;
  packets: number;
  bytes: number;
  /** The same per direction; inbound counts the outbound flows again, at the boxes they reach. */
  byDirection: Record<'outbound' | 'inbound' | 'local', { connections: number; packets: number; bytes: number }>;
  /** Per box and direction, sorted by agent then direction; empty: no box counted it yet. */
  boxes: BoxRuleStats[];
}

export interface AgentCounters {
  agent: string;
  reportedAtMs: number;
  counters: readonly Pick<RuleCounter, 'rule' | 'direction' | 'connections' | 'packets' | 'bytes'>[];
  /** Drops per direction and zone pair (absent: an agent that reports none). */
  zoneDrops?: readonly Pick<ZoneDropCounter, 'direction' | 'sourceZone' | 'destinationZone' | 'packets' | 'bytes'>[];
}

/** What the firewalls refused between two zones in one direction, summed over the boxes. */
export interface ZoneDropStats {
  direction: string;
  sourceZone: string;
  destinationZone: string;
  packets: number;
  bytes: number;
  /** The boxes that counted any, sorted. */
  agents: string[];
}

/** Drops summed per (direction, source zone, destination zone), sorted; each packet is dropped (and
 *  counted) on one box only, so the sum counts it once. Pairs with nothing dropped are left out. */
export function zoneDropStats(agents: readonly AgentCounters[]): ZoneDropStats[] {
  const rows = new Map<string, ZoneDropStats>();
  for (const a of agents) {
    for (const z of a.zoneDrops ?? []) {
      if (z.packets === 0n) continue;
      const key = `${z.direction}\n${z.sourceZone}\n${z.destinationZone}`;
      let r = rows.get(key);
      if (!r) {
        r = {
          direction: z.direction,
          sourceZone: z.sourceZone,
          destinationZone: z.destinationZone,
          packets: 0,
          bytes: 0,
          agents: [],
        };
        rows.set(key, r);
      }
      r.packets += Number(z.packets);
      r.bytes += Number(z.bytes);
      r.agents.push(a.agent);
    }
  }
  return [...rows.values()]
    .map((r) => ({ ...r, agents: [...new Set(r.agents)].sort(cmp) }))
    .sort(
      (x, y) =>
        cmp(x.sourceZone, y.sourceZone) || cmp(x.destinationZone, y.destinationZone) || cmp(x.direction, y.direction),
    );
}

/** Sums each rule's counters over the boxes that reported them; every rule of the policy has a row. */
export function ruleStats(policyRules: readonly string[], agents: readonly AgentCounters[]): RuleStats[] {
  const byRule = new Map<string, RuleStats>();
  const row = (rule: string, isInPolicy: boolean): RuleStats => {
    let r = byRule.get(rule);
    if (!r) {
      const zero = () => ({ connections: 0, packets: 0, bytes: 0 });
      r = {
        rule,
        isInPolicy,
        connections: 0,
        packets: 0,
        bytes: 0,
        byDirection: { outbound: zero(), inbound: zero(), local: zero() },
        boxes: [],
      };
      byRule.set(rule, r);
    }
    return r;
  };
  const inPolicy = new Set(policyRules);
  for (const name of policyRules) row(name, true);
  for (const a of agents) {
    const reportedAt = new Date(a.reportedAtMs).toISOString();
    for (const c of a.counters) {
      row(c.rule, inPolicy.has(c.rule)).boxes.push({
        agent: a.agent,
        direction: c.direction,
        connections: Number(c.connections),
        packets: Number(c.packets),
        bytes: Number(c.bytes),
        reportedAt,
      });
    }
  }
  for (const r of byRule.values()) {
    r.boxes.sort((x, y) => cmp(x.agent, y.agent) || cmp(x.direction, y.direction));
    for (const b of r.boxes) {
      const d = r.byDirection[b.direction as keyof RuleStats['byDirection']];
      if (!d) continue; // a direction this controller does not know (a newer agent)
      d.connections += b.connections;
      d.packets += b.packets;
      d.bytes += b.bytes;
    }
    const { outbound, local } = r.byDirection;
    r.connections = outbound.connections + local.connections;
    r.packets = outbound.packets + local.packets;
    r.bytes = outbound.bytes + local.bytes;
  }
  return [...byRule.values()].sort((x, y) => cmp(x.rule, y.rule));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
