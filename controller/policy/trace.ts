// "Why is this dropped?": one flow through the live overlay. PURE: the policy's decision (evaluate.ts)
// joined with what the controller has deployed — which box serves each end's subnet now (or why
// none does) and how the two boxes' configs reach each other (direct to an endpoint, or through
// relays). `crosslink trace` and GET /v1/trace; `policy whatif` stays the offline, file-only half.
import { CrosslinkError } from '../../lib/errors.js';
import { evaluate, type EvalProtocol } from './evaluate.js';
import { containsAddress, parseAddress, PrefixCache } from './prefixes.js';
import type { Policy } from './types.js';

/** What the controller has deployed, as trace asks for it. */
export interface TraceDeployment {
  /** The box serving `subnet` now, or null. */
  servedBy(subnet: string): string | null;
  /** Why nobody serves `subnet` (null: someone does, or no reason is known). */
  unservedReason(subnet: string): string | null;
  /** Why the controller judges none of the boxes that may serve `subnet` healthy while they still
   *  choose among themselves which serves it (null: it judges one healthy, or nobody serves it). */
  unconfirmedReason(subnet: string): string | null;
  /** Box `a`'s configured peer entry for box `b`: its endpoint and the relays it may use, first
   *  choice first (each a whole path on its own, not hops of one), or null when `a` has no such peer. */
  peer(a: string, b: string): { endpoint: string; relays: Array<{ relay: string; endpoint: string }> } | null;
  /** Why `a` and `b` have no path (no shared underlay, no usable relay), or null. */
  pathProblem(a: string, b: string): string | null;
}

export interface TraceEnd {
  address: string;
  /** The most specific subnet of the policy holding the address; null: none. */
  subnet: string | null;
  zone: string | null;
  servedBy: string | null;
  /** Why nobody serves the subnet; null when a box does (or there is no subnet). */
  unserved: string | null;
  /** Served, but on its boxes' own choice: why the controller judges none of them healthy (then
   *  `servedBy` is the first of them, not a box known to carry it). null: not so. */
  unconfirmed: string | null;
}

export interface TracePath {
  /** same-box: both subnets are served by one box (LAN to LAN on it). */
  kind: 'same-box' | 'direct' | 'relay';
  from: string;
  to: string;
  /** Where `from` sends the tunnel's packets ("" for same-box). */
  endpoint: string;
  /** kind relay: the relay in use (the one `endpoint` belongs to); else null. */
  relay: string | null;
  /** kind relay: the other relays the pair may move to, in order. */
  standbyRelays: string[];
}

export type TraceOutcome = 'passes' | 'denied' | 'unserved' | 'no-path';

export interface TraceResult {
  from: TraceEnd;
  to: TraceEnd;
  proto: EvalProtocol;
  port: number | null;
  decision: 'allow' | 'deny';
  rule: string | null;
  /** The policy's reason (evaluate.ts). */
  reason: string;
  path: TracePath | null;
  outcome: TraceOutcome;
  /** One line for a person: what happens to the flow and why. */
  summary: string;
}

function end(policy: Policy, text: string, deployment: TraceDeployment, cache: PrefixCache): TraceEnd {
  const addr = parseAddress(text);
  if (!addr) throw new CrosslinkError('invalid_request', `"${text}" is not an IP address`);
  let best: { name: string; zone: string; length: number } | null = null;
  for (const s of policy.subnets) {
    for (const c of s.cidrs) {
      const p = cache.get(c);
      if (containsAddress(p, addr.family, addr.value) && (best === null || p.length > best.length))
        best = { name: s.name, zone: s.zone, length: p.length };
    }
  }
  if (best === null)
    return { address: addr.text, subnet: null, zone: null, servedBy: null, unserved: null, unconfirmed: null };
  const servedBy = deployment.servedBy(best.name);
  return {
    address: addr.text,
    subnet: best.name,
    zone: best.zone,
    servedBy,
    unserved: servedBy === null ? (deployment.unservedReason(best.name) ?? 'no box serves it now') : null,
    unconfirmed: servedBy === null ? null : deployment.unconfirmedReason(best.name),
  };
}

/** Traces one flow. Throws CrosslinkError(invalid_request) for an address that does not parse or a
 *  flow that mixes IPv4 and IPv6. */
export function traceFlow(
  policy: Policy,
  from: string,
  to: string,
  proto: EvalProtocol,
  port: number | undefined,
  deployment: TraceDeployment,
): TraceResult {
  const cache = new PrefixCache();
  const a = end(policy, from, deployment, cache);
  const b = end(policy, to, deployment, cache);
  const d = evaluate(policy, a.address, b.address, proto, port);
  const base = {
    from: a,
    to: b,
    proto,
    port: port ?? null,
    decision: d.decision,
    rule: d.rule ?? null,
    reason: d.reason,
    path: null,
  };
  if (d.decision === 'deny') return { ...base, outcome: 'denied', summary: `denied: ${d.reason}` };
  for (const e of [a, b]) {
    if (e.servedBy === null)
      return {
        ...base,
        outcome: 'unserved',
        summary: `allowed by rule "${d.rule}", but nobody serves subnet ${e.subnet} (${e.address}): ${e.unserved}`,
      };
  }
  const [boxA, boxB] = [a.servedBy as string, b.servedBy as string];
  // The controller names a serving group's first box when it judges none healthy; say so.
  const caveat = [a, b]
    .filter((e, i) => e.unconfirmed !== null && (i === 0 || e.subnet !== a.subnet))
    .map(
      (e) =>
        `; unconfirmed: subnet ${e.subnet}'s boxes choose which serves it, none healthy to the controller (${e.unconfirmed})`,
    )
    .join('');
  if (boxA === boxB) {
    const path: TracePath = { kind: 'same-box', from: boxA, to: boxB, endpoint: '', relay: null, standbyRelays: [] };
    return {
      ...base,
      path,
      outcome: 'passes',
      summary: `passes: allowed by rule "${d.rule}"; ${boxA} serves both subnets and forwards it between its LANs${caveat}`,
    };
  }
  const peer = deployment.peer(boxA, boxB);
  if (peer === null) {
    const why =
      deployment.pathProblem(boxA, boxB) ??
      `${boxA} has no peer ${boxB} in its current config (not yet pushed, or the box has not applied it)`;
    return {
      ...base,
      outcome: 'no-path',
      summary: `allowed by rule "${d.rule}", but ${boxA} cannot reach ${boxB}: ${why}`,
    };
  }
  if (peer.relays.length === 0) {
    const path: TracePath = {
      kind: 'direct',
      from: boxA,
      to: boxB,
      endpoint: peer.endpoint,
      relay: null,
      standbyRelays: [],
    };
    return {
      ...base,
      path,
      outcome: 'passes',
      summary: `passes: allowed by rule "${d.rule}"; ${boxA} -> ${boxB} directly to ${peer.endpoint}${caveat}`,
    };
  }
  const inUse = peer.relays.find((r) => r.endpoint === peer.endpoint) ?? peer.relays[0]!;
  const standby = peer.relays.filter((r) => r !== inUse).map((r) => r.relay);
  const path: TracePath = {
    kind: 'relay',
    from: boxA,
    to: boxB,
    endpoint: peer.endpoint,
    relay: inUse.relay,
    standbyRelays: standby,
  };
  const how = `through relay ${inUse.relay} (${peer.endpoint})${standby.length > 0 ? `; standby relay ${standby.join(', ')}` : ''}`;
  return {
    ...base,
    path,
    outcome: 'passes',
    summary: `passes: allowed by rule "${d.rule}"; ${boxA} -> ${boxB} ${how}${caveat}`,
  };
}
