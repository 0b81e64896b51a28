// The rule side of an agent's config: each rule reduced once to its subnets grouped by serving
// agent, and then an agent's outbound, inbound and local flow rules and the peers they imply.
import type { FlowRule } from '../../../proto/gen/crosslink/v1/agent_pb.js';
import { mergeParsed, type ParsedPrefix } from '../prefixes.js';
import type { AgentName, SubnetName } from '../types.js';
import { cmp, EMPTY, serversOf, type CompilerState, type PolicyIndex, type Reduction, type RuleInfo } from './types.js';

export function reduce(st: CompilerState, idx: PolicyIndex, info: RuleInfo): Reduction {
  const side = (names: SubnetName[]): { by: Map<AgentName, SubnetName[]>; all: readonly string[] } => {
    const by = new Map<AgentName, SubnetName[]>();
    const prefixes: ParsedPrefix[] = [];
    for (const s of names) {
      const servers = serversOf(st, s);
      if (servers.length === 0) continue;
      // Every candidate of a serving group gets the rules, so a standby has them before traffic comes.
      for (const a of servers) {
        const l = by.get(a);
        if (l) l.push(s);
        else by.set(a, [s]);
      }
      for (const p of idx.subnets.get(s)?.prefixes ?? []) prefixes.push(p);
    }
    return { by, all: freezeTexts(mergeParsed(prefixes)) };
  };
  const f = side(info.from);
  const t = side(info.to);
  return { fromByAgent: f.by, toByAgent: t.by, fromAll: f.all, toAll: t.all };
}

export function addReductionAgents(red: Reduction, into: Set<AgentName>, isFromSide: boolean, isToSide: boolean): void {
  if (isFromSide) for (const a of red.fromByAgent.keys()) into.add(a);
  if (isToSide) for (const a of red.toByAgent.keys()) into.add(a);
}

function freezeTexts(prefixes: ParsedPrefix[]): readonly string[] {
  if (prefixes.length === 0) return EMPTY;
  return Object.freeze(prefixes.map((p) => p.text));
}

export function prefixesOf(idx: PolicyIndex, names: Iterable<SubnetName>): ParsedPrefix[] {
  const out: ParsedPrefix[] = [];
  for (const n of names) for (const p of idx.subnets.get(n)?.prefixes ?? []) out.push(p);
  return out;
}

export function mergedOf(idx: PolicyIndex, names: readonly SubnetName[]): readonly string[] {
  // Fast path: one subnet's own prefixes are already canonical, sorted and disjoint.
  const [only] = names;
  if (names.length === 1 && only !== undefined) return idx.subnets.get(only)?.texts ?? EMPTY;
  return mergeParsed(prefixesOf(idx, names)).map((p) => p.text);
}

/** `names` as their own serving box sees them: real prefixes for a mapped subnet (firewall.ts
 *  renders its rules in the forward chain, after the inbound translation and before the outbound). */
export function ownMergedOf(idx: PolicyIndex, names: readonly SubnetName[]): readonly string[] {
  if (!names.some((n) => idx.subnets.get(n)?.realPrefixes)) return mergedOf(idx, names);
  const out: ParsedPrefix[] = [];
  for (const n of names) {
    const info = idx.subnets.get(n);
    for (const p of info?.realPrefixes ?? info?.prefixes ?? []) out.push(p);
  }
  return mergeParsed(out).map((p) => p.text);
}

/**
 * Prefixes of `names` that may reach `self` through the overlay, merged: all but the ones it alone
 * serves. A serving group it is a candidate of stays in: while another candidate holds the group's
 * gateway, that subnet's traffic comes to this box through the tunnel.
 */
function remoteOf(st: CompilerState, idx: PolicyIndex, names: SubnetName[], self: AgentName): readonly string[] {
  return mergedOf(
    idx,
    names.filter((n) => st.candidates.has(n) || st.served.get(n) !== self),
  );
}

const NO_SUBNETS: readonly SubnetName[] = Object.freeze([]);

/** A peer's subnets: most come from one rule, kept as that rule's list; a Set once a second rule adds to it. */
export type PeerSubnets = Map<AgentName, readonly SubnetName[] | Set<SubnetName>>;

export interface AgentFirewall {
  outbound: FlowRule[];
  inbound: FlowRule[];
  local: FlowRule[];
  peerSubnets: PeerSubnets;
}

function flowRules(
  into: FlowRule[],
  info: RuleInfo,
  sources: readonly string[],
  destinations: readonly string[],
): void {
  info.flows.forEach((f, i) => {
    into.push({
      $typeName: 'crosslink.v1.FlowRule',
      rule: info.rule.name,
      sources: sources as string[],
      destinations: destinations as string[],
      protocol: f.protocol,
      ports: info.portRanges[i]!, // built from flows, one per flow
      notBeforeUnixMs: BigInt(info.rule.notBeforeMs ?? 0),
      notAfterUnixMs: BigInt(info.rule.notAfterMs ?? 0),
    });
  });
}

/** The flow rules of agent `name`, which serves the subnets `local`, and the peers they imply. */
export function firewallOf(
  st: CompilerState,
  idx: PolicyIndex,
  name: AgentName,
  local: readonly SubnetName[],
): AgentFirewall {
  const outRules = new Set<string>();
  const inRules = new Set<string>();
  for (const s of local) {
    for (const r of idx.asFrom.get(s) ?? []) outRules.add(r);
    for (const r of idx.asTo.get(s) ?? []) inRules.add(r);
  }
  // A hub has thousands of peers: this is its hot loop, hence no Set per peer until needed.
  const peerSubnets: PeerSubnets = new Map();
  const addPeer = (agent: AgentName, subnets: readonly SubnetName[]): void => {
    const have = peerSubnets.get(agent);
    if (have === undefined) {
      peerSubnets.set(agent, subnets);
    } else if (have !== subnets) {
      const set = have instanceof Set ? have : new Set(have);
      for (const x of subnets) set.add(x);
      peerSubnets.set(agent, set);
    }
  };
  const fw: AgentFirewall = { outbound: [], inbound: [], local: [], peerSubnets };
  for (const r of [...outRules].sort(cmp)) {
    const { info, red } = ruleAndReduction(st, idx, r);
    const mine = red.fromByAgent.get(name) ?? [];
    for (const [peer, subs] of red.toByAgent) if (peer !== name) addPeer(peer, subs);
    const sources = ownMergedOf(idx, mine);
    const localTo = red.toByAgent.get(name);
    const destinations = localTo ? remoteOf(st, idx, info.to, name) : red.toAll;
    if (destinations.length > 0) flowRules(fw.outbound, info, sources, destinations);
    if (localTo && !(mine.length === 1 && localTo.length === 1 && mine[0] === localTo[0])) {
      flowRules(fw.local, info, sources, ownMergedOf(idx, localTo));
    }
  }
  for (const r of [...inRules].sort(cmp)) {
    const { info, red } = ruleAndReduction(st, idx, r);
    const mine = red.toByAgent.get(name) ?? [];
    for (const [peer, subs] of red.fromByAgent) if (peer !== name) addPeer(peer, subs);
    const sources = red.fromByAgent.has(name) ? remoteOf(st, idx, info.from, name) : red.fromAll;
    if (sources.length > 0) flowRules(fw.inbound, info, sources, ownMergedOf(idx, mine));
  }
  // The other candidates of its serving groups: peers (overlay address only) to echo with, so a
  // standby knows from the overlay too whether the primary is alive. Also for a group no rule names
  // yet: its config lists the group, and a candidate that reaches no peer holds no gateway.
  for (const s of local) {
    for (const c of st.candidates.get(s) ?? []) if (c !== name) addPeer(c, NO_SUBNETS);
  }
  return fw;
}

function ruleAndReduction(st: CompilerState, idx: PolicyIndex, rule: string): { info: RuleInfo; red: Reduction } {
  const info = idx.rules.get(rule);
  const red = st.reductions.get(rule);
  // asFrom/asTo name only indexed rules, and every indexed rule is reduced.
  if (!info || !red) throw new Error(`compile: rule ${rule} is not indexed and reduced`);
  return { info, red };
}
