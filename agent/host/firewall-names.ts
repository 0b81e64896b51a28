// Names in Crosslink's nft table that more than the renderer reads: the directions with their
// chains and drop counters, the per-rule counters and the ct marks behind them. PURE: no I/O.

/** Per-direction names: chain, named drop counter and set-name prefix. */
export const FIREWALL_DIRECTIONS = [
  { key: 'outbound', chain: 'to_overlay', counter: 'dropped_outbound', set: 'out' },
  { key: 'inbound', chain: 'from_overlay', counter: 'dropped_inbound', set: 'in' },
  { key: 'local', chain: 'lan_to_lan', counter: 'dropped_local', set: 'lan' },
] as const;

/**
 * The ct mark a flow gets when a rule admits its first packet: RULE_MARK_BASE + the rule's number
 * in this render (per direction and rule name, from 1). The mark outlives the rule's set lookup, so
 * every later packet of the flow (both ways) is counted for the rule that let it in. Other software
 * on the box that sets ct marks on forwarded flows would conflict (docs/metrics.md says so).
 */
export const RULE_MARK_BASE = 0x63780000;

/** Which named counter of the table counts what: flows admitted by a rule ("new": their first
 *  packets; "flows": all their packets and bytes, both ways), or a direction's drops. */
export type NamedCounter =
  | { kind: 'new' | 'flows'; direction: FirewallDirection; rule: string }
  | { kind: 'dropped'; direction: FirewallDirection };

export type FirewallDirection = (typeof FIREWALL_DIRECTIONS)[number]['key'];

export const RULE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Reads a counter name of Crosslink's table (`new/outbound/<rule>`, `flows/...`, `dropped_inbound`). */
export function parseCounterName(name: string): NamedCounter | null {
  const dropped = FIREWALL_DIRECTIONS.find((d) => d.counter === name);
  if (dropped) return { kind: 'dropped', direction: dropped.key };
  const m = /^(new|flows)\/(outbound|inbound|local)\/(.+)$/.exec(name);
  if (!m || !RULE_NAME_RE.test(m[3]!)) return null;
  return { kind: m[1] as 'new' | 'flows', direction: m[2] as FirewallDirection, rule: m[3]! };
}

export const newCounter = (direction: string, rule: string): string => `new/${direction}/${rule}`;
export const flowsCounter = (direction: string, rule: string): string => `flows/${direction}/${rule}`;
