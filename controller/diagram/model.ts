// buildDiagramModel(): the overlay as a picture (types.ts) from what the controller already knows —
// the current policy, the inventory, /v1/health's snapshot, the pair paths and the serving map.
// PURE: no I/O, no clock (the caller passes `atMs`). Positions come from layout.ts.
//
// Links are /v1/health's links: the pairs the compiled configs make peers, which are the pairs with
// a permitted flow, and the candidates of a serving group (they watch each other over the tunnel to
// fail over; such a link may carry no rule). Plus, for boxes the policy names that have not enrolled
// yet, the pairs the policy's rules will join, drawn "unknown" ("planned"), so the paperwork shows the
// whole overlay. Relays of planned links are every policy relay on both sides, by name: which one the
// compiler picks depends on live endpoints.
import type { AgentHealth, LinkHealth } from '../health/types.js';
import { linkName } from '../health/types.js';
import type { PairPathView, UnservedView } from '../distribute/port.js';
import { NameResolver } from '../policy/resolve.js';
import type { Policy, PolicyAgent, Subnet } from '../policy/types.js';
import { layoutDiagram } from './layout.js';
import type { DiagramBox, DiagramLink, DiagramModel, DiagramState, DiagramSubnet } from './types.js';

/** One inventory agent, as the diagram needs it. */
export interface DiagramAgentInput {
  name: string;
  /** Underlays it announced endpoints on (`endpoints[].underlay`, or "default" for a bare endpoint). */
  underlays: readonly string[];
  /** The box consents to relay (`--relay`). */
  isRelay: boolean;
  isRevoked: boolean;
}

export interface DiagramInput {
  /** Controller clock (ms). */
  atMs: number;
  policy: Policy | null;
  policyVersion: number | null;
  agents: readonly DiagramAgentInput[];
  /** /v1/health's snapshot (only agents and links are read); null before the first evaluation. */
  health: {
    agents: readonly Pick<AgentHealth, 'name' | 'state' | 'reason' | 'isConnected'>[];
    links: readonly Pick<LinkHealth, 'name' | 'agents' | 'state' | 'reason'>[];
  } | null;
  /** DistributionPort.indirectPaths(): pairs not listed peer directly. */
  indirectPaths: readonly PairPathView[];
  /** DistributionPort.servingAgent(). */
  servingAgent: (subnet: string) => string | null;
  unserved: readonly Pick<UnservedView, 'subnet' | 'reason'>[];
}

const NOT_ENROLLED = 'in the policy, not enrolled yet';
const NOT_EVALUATED = 'health not evaluated yet';

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function intersect(a: readonly string[], b: readonly string[]): string[] {
  return a.filter((x) => b.includes(x));
}

/**
 * For each box, the rules it takes part in as a source and as a destination: it serves (or stands by
 * for) a subnet the rule names on that side, after group expansion (NameResolver, as the compiler's
 * index does). A rule permits a flow between two boxes when one is on its `from` side and the other
 * on its `to` side.
 */
function ruleSides(
  policy: Policy,
  servers: (subnet: string) => readonly string[],
): {
  asFrom: Map<string, Set<string>>;
  asTo: Map<string, Set<string>>;
  fromServers: Map<string, Set<string>>;
  toServers: Map<string, Set<string>>;
} {
  const resolver = new NameResolver(policy);
  const asFrom = new Map<string, Set<string>>();
  const asTo = new Map<string, Set<string>>();
  const fromServers = new Map<string, Set<string>>();
  const toServers = new Map<string, Set<string>>();
  const add = (m: Map<string, Set<string>>, k: string, v: string) => {
    const s = m.get(k);
    if (s) s.add(v);
    else m.set(k, new Set([v]));
  };
  for (const rule of policy.rules) {
    for (const s of resolver.resolveAll(rule.from))
      for (const a of servers(s)) {
        add(asFrom, a, rule.name);
        add(fromServers, rule.name, a);
      }
    for (const s of resolver.resolveAll(rule.to))
      for (const a of servers(s)) {
        add(asTo, a, rule.name);
        add(toServers, rule.name, a);
      }
  }
  return { asFrom, asTo, fromServers, toServers };
}

function rulesBetween(
  a: string,
  b: string,
  asFrom: Map<string, Set<string>>,
  asTo: Map<string, Set<string>>,
): string[] {
  const out = new Set<string>();
  for (const [x, y] of [
    [a, b],
    [b, a],
  ] as const) {
    const from = asFrom.get(x);
    const to = asTo.get(y);
    if (!from || !to) continue;
    const [small, big] = from.size <= to.size ? [from, to] : [to, from];
    for (const r of small) if (big.has(r)) out.add(r);
  }
  return [...out].sort();
}

export function buildDiagramModel(input: DiagramInput): DiagramModel {
  const { policy } = input;
  const zoneOrder = new Map((policy?.zones ?? []).map((z, i) => [z.name, i]));
  const policyAgents = new Map<string, PolicyAgent>((policy?.agents ?? []).map((a) => [a.name, a]));
  const enrolled = new Map(input.agents.filter((a) => !a.isRevoked).map((a) => [a.name, a]));
  const healthAgents = new Map((input.health?.agents ?? []).map((a) => [a.name, a]));

  // Which box serves each subnet now, and which stand by (the rest of its via).
  const subnetsByBox = new Map<string, DiagramSubnet[]>();
  const servingOf = new Map<string, string | null>();
  for (const s of policy?.subnets ?? []) {
    const serving = input.servingAgent(s.name);
    servingOf.set(s.name, serving);
    for (const a of new Set([...(serving === null ? [] : [serving]), ...s.via])) {
      const list = subnetsByBox.get(a) ?? [];
      list.push({ name: s.name, cidrs: [...s.cidrs], zone: s.zone, role: a === serving ? 'serving' : 'standby' });
      subnetsByBox.set(a, list);
    }
  }

  const names = [...new Set([...policyAgents.keys(), ...enrolled.keys()])].sort();
  const boxes: DiagramBox[] = names.map((name) => {
    const pa = policyAgents.get(name);
    const inv = enrolled.get(name);
    const h = healthAgents.get(name);
    const zones = [...(pa?.zones ?? [])].sort((x, y) => (zoneOrder.get(x) ?? 0) - (zoneOrder.get(y) ?? 0));
    let state: DiagramState = 'unknown';
    let reason = NOT_ENROLLED;
    if (inv) {
      state = h?.state ?? 'unknown';
      reason = h?.reason ?? NOT_EVALUATED;
    }
    return {
      name,
      site: pa?.site ?? '',
      zones,
      group: zones.join('+'),
      underlays: [...(pa?.underlays ?? inv?.underlays ?? [])].sort(),
      isRelay: (pa?.isRelay ?? false) && (inv?.isRelay ?? false),
      isEnrolled: inv !== undefined,
      isConnected: h?.isConnected ?? false,
      state,
      reason,
      subnets: (subnetsByBox.get(name) ?? []).sort(byName),
      x: 0,
      y: 0,
    };
  });
  const boxByName = new Map(boxes.map((b) => [b.name, b]));

  // A subnet's servers for rule attribution: its serving box and every box of its via (a standby gets
  // the rules too, so its links carry them).
  const subnetIndex = new Map<string, Subnet>((policy?.subnets ?? []).map((s) => [s.name, s]));
  const servers = (subnet: string): readonly string[] => {
    const s = subnetIndex.get(subnet);
    const serving = servingOf.get(subnet) ?? null;
    if (!s) return serving === null ? [] : [serving];
    return serving === null || (s.via as readonly string[]).includes(serving) ? s.via : [serving, ...s.via];
  };
  const sides = policy ? ruleSides(policy, servers) : undefined;
  const rulesOf = (a: string, b: string) => (sides ? rulesBetween(a, b, sides.asFrom, sides.asTo) : []);

  const indirect = new Map(input.indirectPaths.map((p) => [linkName(p.a, p.b), p]));
  const links = new Map<string, DiagramLink>();
  for (const l of input.health?.links ?? []) {
    const [a, b] = l.agents[0] < l.agents[1] ? l.agents : [l.agents[1], l.agents[0]];
    const p = indirect.get(l.name);
    const shared = intersect(boxByName.get(a)?.underlays ?? [], boxByName.get(b)?.underlays ?? []);
    links.set(l.name, {
      name: l.name,
      a,
      b,
      state: l.state,
      reason: l.reason,
      path: p?.kind ?? 'direct',
      relays: p ? [...p.relays] : [],
      underlays: p ? [...p.underlays] : shared.slice(0, 1),
      rules: rulesOf(a, b),
    });
  }
  if (sides) addPlannedLinks(boxes, sides, links, rulesOf, policyAgents);

  return layoutDiagram({
    atMs: input.atMs,
    policyVersion: input.policyVersion,
    zones: (policy?.zones ?? []).map((z) => ({ name: z.name, description: z.description })),
    underlays: (policy?.underlays ?? []).map((u) => ({ name: u.name, description: u.description })),
    groups: [],
    boxes,
    links: [...links.values()].sort(byName),
    unserved: input.unserved
      .map((u) => ({ subnet: u.subnet, reason: u.reason }))
      .sort((x, y) => (x.subnet < y.subnet ? -1 : x.subnet > y.subnet ? 1 : 0)),
    width: 0,
    height: 0,
  });
}

/**
 * Links of boxes the policy names that have not enrolled: the compiled configs have no peers for
 * them, so health has no links; the rules say which pairs they will be. Cost: for each such box,
 * the other sides of its rules (bounded by what its rules name, not by the fleet squared).
 */
function addPlannedLinks(
  boxes: readonly DiagramBox[],
  sides: ReturnType<typeof ruleSides>,
  links: Map<string, DiagramLink>,
  rulesOf: (a: string, b: string) => string[],
  policyAgents: ReadonlyMap<string, PolicyAgent>,
): void {
  const relays = [...policyAgents.values()].filter((a) => a.isRelay);
  const enrolled = new Set(boxes.filter((b) => b.isEnrolled).map((b) => b.name));
  for (const box of boxes) {
    if (box.isEnrolled || !policyAgents.has(box.name)) continue;
    const others = new Set<string>();
    for (const r of sides.asFrom.get(box.name) ?? []) for (const o of sides.toServers.get(r) ?? []) others.add(o);
    for (const r of sides.asTo.get(box.name) ?? []) for (const o of sides.fromServers.get(r) ?? []) others.add(o);
    others.delete(box.name);
    for (const other of others) {
      const name = linkName(box.name, other);
      if (links.has(name)) continue;
      const [a, b] = box.name < other ? [box.name, other] : [other, box.name];
      const pa = policyAgents.get(a);
      const pb = policyAgents.get(b);
      if (!pa || !pb) continue;
      const shared = intersect(pa.underlays, pb.underlays);
      const via = relays
        .filter(
          (r) =>
            r.name !== a &&
            r.name !== b &&
            intersect(pa.underlays, r.underlays).length > 0 &&
            intersect(pb.underlays, r.underlays).length > 0,
        )
        .map((r) => r.name)
        .sort();
      // The relays the compiler could choose, by name (it picks by live endpoints and health).
      const absent = [a, b].filter((n) => !enrolled.has(n)).join(' and ');
      const noPath =
        shared.length === 0 && via.length === 0 ? `; no path: they share no underlay and no relay sits on both` : '';
      const first = relays.find((r) => r.name === via[0]);
      links.set(name, {
        name,
        a,
        b,
        state: 'unknown',
        reason: `planned: ${absent} not enrolled yet${noPath}`,
        path: shared.length > 0 ? 'direct' : via.length > 0 ? 'relay' : 'none',
        relays: shared.length > 0 ? [] : via,
        underlays:
          shared.length > 0
            ? shared.slice(0, 1)
            : first
              ? [intersect(pa.underlays, first.underlays)[0]!, intersect(pb.underlays, first.underlays)[0]!]
              : [],
        rules: rulesOf(a, b),
      });
    }
  }
}
