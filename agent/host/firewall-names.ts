// Names in Crosslink's nft table that more than the renderer reads: the directions with their
// chains and drop counters, the per-rule counters and the ct marks behind them. PURE: no I/O.

/** Per-direction names: chain, named drop counter and set-name prefix. */
export const FIREWALL_DIRECTIONS = [
  { key: 'outbound', chain: 'to_overlay', counter: 'dropped_outbound', set: 'out' },
  { key: 'inbound', chain: 'from_overlay', counter: 'dropped_inbound', set: 'in' },
  { key: 'local', chain: 'lan_to_lan', counter: 'dropped_local', set: 'lan' },
] as const;

/**
 * The ct mark a flow gets when a rule admits its first packet: RULE_MARK_BASE + a 16-bit slot of
 * its (direction, rule name). The mark outlives the rule's set lookup, so every later packet of the
 * flow (both ways) is counted for the rule that let it in — also after a policy change, because a
 * rule keeps its slot while other rules come and go (a slot is a hash of the name, not a position).
 * Other software on the box that sets ct marks on forwarded flows would conflict (docs/metrics.md).
 */
export const RULE_MARK_BASE = 0x63780000;
export const RULE_MARK_MASK = 0xffff0000;

export interface RuleMark {
  direction: FirewallDirection;
  rule: string;
  mark: number;
}

/** FNV-1a, 32 bits. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * One mark per (direction, rule name): the slot is the low 16 bits of the name's hash, and when two
 * rules of the box want one slot, the one later in (direction, name) order takes the next free slot
 * (0 is never used). Deterministic: the same rules in any order get the same marks.
 */
export function assignRuleMarks(rules: Readonly<Record<FirewallDirection, readonly string[]>>): RuleMark[] {
  const out: RuleMark[] = [];
  const taken = new Set<number>();
  const total = FIREWALL_DIRECTIONS.reduce((n, d) => n + new Set(rules[d.key]).size, 0);
  if (total > 0xffff) throw new RangeError(`${total} rules on one box: at most 65,535 can be counted`);
  for (const dir of FIREWALL_DIRECTIONS) {
    for (const rule of [...new Set(rules[dir.key])].sort()) {
      let slot = fnv1a(`${dir.key}/${rule}`) & 0xffff;
      while (slot === 0 || taken.has(slot)) slot = (slot + 1) & 0xffff;
      taken.add(slot);
      out.push({ direction: dir.key, rule, mark: (RULE_MARK_BASE | slot) >>> 0 });
    }
  }
  return out;
}

/** Which named counter of the table counts what: flows admitted by a rule ("new": their first
 *  packets; "flows": all their packets and bytes, both ways), or a direction's drops. */
export type NamedCounter =
  | { kind: 'new' | 'flows'; direction: FirewallDirection; rule: string }
  | { kind: 'dropped'; direction: FirewallDirection }
  | { kind: 'zone-drop'; direction: FirewallDirection; sourceZone: string; destinationZone: string };

export type FirewallDirection = (typeof FIREWALL_DIRECTIONS)[number]['key'];

export const RULE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Zone names as the policy allows them (controller/policy/names.ts NAME_PATTERN). */
const ZONE_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Reads a counter name of Crosslink's table (`new/outbound/<rule>`, `flows/...`, `dropped_inbound`,
 *  `drop/outbound/<source zone>/<destination zone>`). */
export function parseCounterName(name: string): NamedCounter | null {
  const dropped = FIREWALL_DIRECTIONS.find((d) => d.counter === name);
  if (dropped) return { kind: 'dropped', direction: dropped.key };
  const z = /^drop\/(outbound|inbound|local)\/([^/]+)\/([^/]+)$/.exec(name);
  if (z) {
    if (!ZONE_NAME_RE.test(z[2]!) || !ZONE_NAME_RE.test(z[3]!)) return null;
    return { kind: 'zone-drop', direction: z[1] as FirewallDirection, sourceZone: z[2]!, destinationZone: z[3]! };
  }
  const m = /^(new|flows)\/(outbound|inbound|local)\/(.+)$/.exec(name);
  if (!m || !RULE_NAME_RE.test(m[3]!)) return null;
  return { kind: m[1] as 'new' | 'flows', direction: m[2] as FirewallDirection, rule: m[3]! };
}

export const newCounter = (direction: string, rule: string): string => `new/${direction}/${rule}`;
export const flowsCounter = (direction: string, rule: string): string => `flows/${direction}/${rule}`;
/** Drops of one direction whose source is in one zone and destination in another (or the same). */
export const zoneDropCounter = (direction: string, sourceZone: string, destinationZone: string): string =>
  `drop/${direction}/${sourceZone}/${destinationZone}`;

/**
 * Denied attempts are sent to these NFLOG groups (one per direction), at most DROP_LOG_LIMIT per
 * direction: a flood of refused packets gives a bounded trickle of log lines, never a flood. The
 * agent's drop log (agent/flows/drop-log.ts) reads them; with no reader the kernel discards them.
 */
export const DROP_LOG_GROUPS: Readonly<Record<FirewallDirection, number>> = {
  outbound: 25465,
  inbound: 25466,
  local: 25467,
};
export const DROP_LOG_LIMIT = '10/second burst 20 packets';
/** The octets of a logged packet the kernel copies to the drop log: the IP and TCP/UDP headers at
 *  most (IPv4 60 + TCP 60), never the payload. */
export const DROP_LOG_SNAPLEN = 128;
