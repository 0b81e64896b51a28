// The policy side of a compile, independent of any agent: subnets with their merged prefixes and
// overlap clusters, rules resolved to subnets, and the reverse maps. Rebuilt incrementally: parts
// equal to the previous index are reused.
import type { PortRange } from '../../../proto/gen/crosslink/v1/agent_pb.js';
import { normalizePorts } from '../ports.js';
import { mergeParsed, type ParsedPrefix, type PrefixCache } from '../prefixes.js';
import { NameResolver } from '../resolve.js';
import type { Policy, Rule, Subnet, SubnetName } from '../types.js';
import type { PolicyIndex, ProbeEntry, RuleInfo, SubnetInfo } from './types.js';

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

export function buildIndex(cache: PrefixCache, policy: Policy, previous?: PolicyIndex): PolicyIndex {
  const { subnets, clusters, viaClusters, isSubnetSideSame } = indexSubnets(cache, policy, previous);
  // Rules: group expansion is memoized in the resolver, kept while subnets and groups are equal.
  const groupsSig =
    previous && previous.policy.groups === policy.groups ? previous.groupsSig : JSON.stringify(policy.groups);
  const isResolverSame = previous !== undefined && isSubnetSideSame && previous.groupsSig === groupsSig;
  const resolver = isResolverSame && previous ? previous.resolver : new NameResolver(policy);
  const { rules, changedRules } = indexRules(policy, resolver, isResolverSame, previous);
  const { asFrom, asTo } = previous && isResolverSame ? patchRuleMaps(previous, changedRules) : ruleMaps(rules);
  const probesBySubnet = new Map<SubnetName, ProbeEntry[]>();
  for (const rule of policy.rules)
    rule.probes.forEach((probe, i) => push(probesBySubnet, probe.from, { name: `${rule.name}/${i}`, probe }));
  const agentsSig =
    previous && previous.policy.agents === policy.agents
      ? previous.agentsSig
      : JSON.stringify(policy.agents.map((a) => [a.name, a.underlays, a.isRelay]));
  const policyAgents =
    previous && previous.agentsSig === agentsSig
      ? previous.policyAgents
      : new Map(policy.agents.map((a) => [a.name as string, a]));
  return {
    policy,
    subnets,
    clusters,
    rules,
    asFrom,
    asTo,
    viaClusters,
    probesBySubnet,
    resolver,
    groupsSig,
    policyAgents,
    agentsSig,
  };
}

interface SubnetSide {
  subnets: Map<SubnetName, SubnetInfo>;
  clusters: Map<string, SubnetName[]>;
  viaClusters: Map<string, string[]>;
  /** Subnets, clusters and via index equal the previous index's. */
  isSubnetSideSame: boolean;
}

/** Subnets, clusters, via index: reused whole when no subnet changed (the common policy edit
 *  touches rules only), so a one-rule change does not pay for 20,000 subnets. */
function indexSubnets(cache: PrefixCache, policy: Policy, previous?: PolicyIndex): SubnetSide {
  if (previous && previous.policy.subnets === policy.subnets) {
    const { subnets, clusters, viaClusters } = previous;
    return { subnets, clusters, viaClusters, isSubnetSideSame: true };
  }
  const subnets = new Map<SubnetName, SubnetInfo>();
  let isAllSame = previous !== undefined && previous.subnets.size === policy.subnets.length;
  for (const s of policy.subnets) {
    const old = previous?.subnets.get(s.name);
    if (old !== undefined && isSameSubnet(old.subnet, s)) {
      subnets.set(s.name, { ...old, subnet: s });
      continue;
    }
    isAllSame = false;
    const prefixes = mergeParsed(s.cidrs.map((c) => cache.get(c)));
    const texts = Object.freeze(prefixes.map((p) => p.text));
    const info: SubnetInfo = {
      subnet: s,
      prefixes,
      texts,
      cluster: s.name,
      sig: JSON.stringify([s.cidrs, s.zone, s.via, s.masquerade, s.gateways ?? [], s.realCidrs ?? []]),
    };
    if (s.realCidrs) {
      info.realPrefixes = mergeParsed(s.realCidrs.map((c) => cache.get(c)));
      info.realTexts = Object.freeze(info.realPrefixes.map((p) => p.text));
    }
    subnets.set(s.name, info);
  }
  if (isAllSame && previous)
    return { subnets, clusters: previous.clusters, viaClusters: previous.viaClusters, isSubnetSideSame: true };
  const clusters = buildClusters(subnets);
  const viaClusters = new Map<string, string[]>();
  for (const [id, members] of clusters) {
    const via = new Set<string>();
    for (const m of members) for (const a of subnets.get(m)?.subnet.via ?? []) via.add(a);
    for (const a of via) push(viaClusters, a, id);
  }
  return { subnets, clusters, viaClusters, isSubnetSideSame: false };
}

type RuleChange = { old?: RuleInfo; now?: RuleInfo };

function indexRules(
  policy: Policy,
  resolver: NameResolver,
  isResolverSame: boolean,
  previous?: PolicyIndex,
): { rules: Map<string, RuleInfo>; changedRules: RuleChange[] } {
  const rules = new Map<string, RuleInfo>();
  const changedRules: RuleChange[] = [];
  for (const rule of policy.rules) {
    const old = previous?.rules.get(rule.name);
    let info: RuleInfo;
    if (isResolverSame && old && old.rule === rule) {
      info = old;
    } else if (isResolverSame && old && isSameRule(old.rule, rule)) {
      // Same definition in a re-validated document: nothing to resolve again.
      info = { ...old, rule };
    } else {
      const from = resolver.resolveAll(rule.from);
      const to = resolver.resolveAll(rule.to);
      const flows = normalizePorts(rule.ports);
      const sig = JSON.stringify([from, to, flows, rule.probes, rule.notBeforeMs ?? 0, rule.notAfterMs ?? 0]);
      const portRanges = flows.map((f) =>
        f.ranges.map((r): PortRange => ({ $typeName: 'crosslink.v1.PortRange', first: r.first, last: r.last })),
      );
      info = old && old.sig === sig ? { ...old, rule } : { rule, from, to, flows, portRanges, sig };
      if (!old || old.from !== info.from || old.to !== info.to) changedRules.push({ old, now: info });
    }
    rules.set(rule.name, info);
  }
  if (previous) for (const [name, old] of previous.rules) if (!rules.has(name)) changedRules.push({ old });
  return { rules, changedRules };
}

type RuleMaps = { asFrom: Map<SubnetName, string[]>; asTo: Map<SubnetName, string[]> };

function ruleMaps(rules: Map<string, RuleInfo>): RuleMaps {
  const asFrom = new Map<SubnetName, string[]>();
  const asTo = new Map<SubnetName, string[]>();
  for (const info of rules.values()) {
    for (const s of info.from) push(asFrom, s, info.rule.name);
    for (const s of info.to) push(asTo, s, info.rule.name);
  }
  return { asFrom, asTo };
}

/** Copies of the previous maps, patched for the rules whose subnets changed. */
function patchRuleMaps(previous: PolicyIndex, changedRules: readonly RuleChange[]): RuleMaps {
  const asFrom = new Map(previous.asFrom);
  const asTo = new Map(previous.asTo);
  const patch = (m: Map<SubnetName, string[]>, name: string, was: SubnetName[], now: SubnetName[]): void => {
    const touched = new Set<SubnetName>([...was, ...now]);
    const nowSet = new Set(now);
    for (const s of touched) {
      const list = (m.get(s) ?? []).filter((r) => r !== name);
      if (nowSet.has(s)) list.push(name);
      if (list.length > 0) m.set(s, list);
      else m.delete(s);
    }
  };
  for (const c of changedRules) {
    const info = c.now ?? c.old;
    if (!info) continue; // a change always carries the old rule, the new one, or both
    patch(asFrom, info.rule.name, c.old?.from ?? [], c.now?.from ?? []);
    patch(asTo, info.rule.name, c.old?.to ?? [], c.now?.to ?? []);
  }
  return { asFrom, asTo };
}

/** Overlapping subnets (same zone and via, or validation would have refused them) form a cluster. */
function buildClusters(subnets: Map<SubnetName, SubnetInfo>): Map<string, SubnetName[]> {
  const items: Array<{ p: ParsedPrefix; s: SubnetName }> = [];
  for (const [name, info] of subnets) for (const p of info.prefixes) items.push({ p, s: name });
  items.sort(
    (a, b) =>
      a.p.family - b.p.family || (a.p.start < b.p.start ? -1 : a.p.start > b.p.start ? 1 : a.p.length - b.p.length),
  );
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    for (let up = parent.get(r); up !== undefined; up = parent.get(r)) r = up;
    for (let next = parent.get(x); next !== undefined && x !== r; next = parent.get(x)) {
      parent.set(x, r);
      x = next;
    }
    return r;
  };
  const union = (a: string, b: string): void => {
    const ra = find(a);
    const rb = find(b);
    if (ra === rb) return;
    if (ra < rb) parent.set(rb, ra);
    else parent.set(ra, rb);
  };
  let open: { p: ParsedPrefix; s: SubnetName } | undefined;
  for (const it of items) {
    // Prefixes nest or are disjoint: anything starting inside the open one overlaps it.
    if (open && open.p.family === it.p.family && it.p.start <= open.p.end) {
      union(open.s, it.s);
      if (it.p.end > open.p.end) open = it;
    } else {
      open = it;
    }
  }
  const clusters = new Map<string, SubnetName[]>();
  for (const [name, info] of [...subnets].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const root = find(name);
    const l = clusters.get(root);
    if (l) l.push(name);
    else clusters.set(root, [name]);
    info.cluster = root;
  }
  return clusters;
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isSameSubnet(a: Subnet, b: Subnet): boolean {
  return (
    a === b ||
    (a.zone === b.zone &&
      a.masquerade === b.masquerade &&
      sameList(a.cidrs, b.cidrs) &&
      sameList(a.via, b.via) &&
      sameList(a.gateways ?? [], b.gateways ?? []) &&
      sameList(a.realCidrs ?? [], b.realCidrs ?? []))
  );
}

function isSameRule(a: Rule, b: Rule): boolean {
  if (a === b) return true;
  if (
    !sameList(a.from, b.from) ||
    !sameList(a.to, b.to) ||
    a.ports.length !== b.ports.length ||
    a.probes.length !== b.probes.length ||
    a.notBeforeMs !== b.notBeforeMs ||
    a.notAfterMs !== b.notAfterMs
  )
    return false;
  const isSamePorts = a.ports.every((x, i) => {
    const y = b.ports[i];
    return y !== undefined && x.protocol === y.protocol && x.first === y.first && x.last === y.last;
  });
  return (
    isSamePorts &&
    a.probes.every((x, i) => {
      const y = b.probes[i];
      return (
        y !== undefined &&
        x.from === y.from &&
        x.to === y.to &&
        x.port === y.port &&
        x.proto === y.proto &&
        x.expect === y.expect
      );
    })
  );
}
