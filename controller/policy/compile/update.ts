// The steps of an incremental update: what changed in the policy and the inventory, which clusters
// to serve again, which rules to reduce again, and which agents to rebuild. Together they give the
// same result as a full compile (property.test.ts holds them to that).
import type { AgentConfig } from '../../../proto/gen/crosslink/v1/agent_pb.js';
import type { AgentName, Inventory, SubnetName } from '../types.js';
import { buildAgent } from './agent.js';
import { addReductionAgents, reduce } from './firewall.js';
import { computeRelaySig, forgetAgent, resetPaths, takeDirtyRelays } from './relays.js';
import { buildAgents, buildLocalByAgent, buildOverlayHosts, serveCluster } from './serving.js';
import type { CompilerState, PolicyIndex } from './types.js';

/** What an update must redo, filled in step by step. */
export interface Dirty {
  /** Agents whose config must be rebuilt. */
  affected: Set<AgentName>;
  /** Clusters whose server may have changed. */
  candidateClusters: Set<string>;
  /** Subnets whose content or server changed. */
  dirtySubnets: Set<SubnetName>;
  /** Rules whose resolution, ports or probes changed (or that came or went). */
  dirtyRules: Set<string>;
}

/** Step 1: subnets whose own content changed, and rules whose resolution, ports or probes changed. */
export function diffIndexes(oldIndex: PolicyIndex, newIndex: PolicyIndex): Dirty {
  const d: Dirty = {
    affected: new Set(),
    candidateClusters: new Set(),
    dirtySubnets: new Set(),
    dirtyRules: new Set(),
  };
  if (newIndex === oldIndex) return d;
  if (newIndex.subnets !== oldIndex.subnets) {
    for (const [name, info] of newIndex.subnets) {
      const old = oldIndex.subnets.get(name);
      if (!old || old.sig !== info.sig || old.cluster !== info.cluster) {
        d.dirtySubnets.add(name);
        d.candidateClusters.add(info.cluster);
      }
    }
    for (const name of oldIndex.subnets.keys()) if (!newIndex.subnets.has(name)) d.dirtySubnets.add(name);
  }
  for (const [name, info] of newIndex.rules) {
    const old = oldIndex.rules.get(name);
    if (old !== info && (!old || old.sig !== info.sig)) d.dirtyRules.add(name);
  }
  for (const name of oldIndex.rules.keys()) if (!newIndex.rules.has(name)) d.dirtyRules.add(name);
  return d;
}

/** Step 2: agents whose live facts changed; sets st.agents (and what hangs on them) to the new inventory. */
export function applyInventory(
  st: CompilerState,
  idx: PolicyIndex,
  inventory: Inventory,
  before: Map<AgentName, AgentConfig>,
  d: Dirty,
): void {
  const newAgents = buildAgents(st.cache, inventory, st.agents);
  let isOverlayChanged = false;
  for (const [name, meta] of newAgents) {
    const old = st.agents.get(name);
    if (old === meta) continue;
    d.affected.add(name);
    // Its peers carry its key, endpoint and overlay address; health and advertised subnets
    // reach others only through serving, handled below.
    if (!old || old.identitySig !== meta.identitySig)
      for (const p of before.get(name)?.peers ?? []) d.affected.add(p.name as AgentName);
    if (!old || old.hostPrefix !== meta.hostPrefix) isOverlayChanged = true;
    if (!old || old.servingSig !== meta.servingSig)
      for (const c of idx.viaClusters.get(name) ?? []) d.candidateClusters.add(c);
  }
  for (const [name] of st.agents) {
    if (newAgents.has(name)) continue;
    isOverlayChanged = true;
    for (const p of before.get(name)?.peers ?? []) d.affected.add(p.name as AgentName);
    for (const c of idx.viaClusters.get(name) ?? []) d.candidateClusters.add(c);
  }
  if (newAgents !== st.agents) {
    st.agents = newAgents;
    resetPaths(st);
    // A relay that appeared, went, moved or changed health: every pair that does not peer
    // directly may take another way now.
    const relaySig = computeRelaySig(st, idx);
    if (relaySig !== st.relaySig) {
      st.relaySig = relaySig;
      for (const a of st.indirectByAgent.keys()) d.affected.add(a);
    }
  }
  if (isOverlayChanged) {
    buildOverlayHosts(st);
    for (const c of idx.clusters.keys()) d.candidateClusters.add(c);
  }
}

/** Who served what before a re-serve: the servers, and the serving groups' candidates. */
export interface ServingBefore {
  served: ReadonlyMap<SubnetName, AgentName>;
  candidates: ReadonlyMap<SubnetName, readonly AgentName[]>;
}

/** Step 3: re-serves candidate clusters; a subnet whose server or candidates changed is dirty. */
export function reserve(st: CompilerState, oldIndex: PolicyIndex, newIndex: PolicyIndex, d: Dirty): ServingBefore {
  // A dirty subnet's old cluster partners are candidates too (it may have left their cluster).
  for (const name of [...d.dirtySubnets]) {
    const old = oldIndex.subnets.get(name);
    if (!old || newIndex === oldIndex) continue;
    for (const m of oldIndex.clusters.get(old.cluster) ?? []) {
      const info = newIndex.subnets.get(m);
      if (info) d.candidateClusters.add(info.cluster);
    }
  }
  const isServingTouched = d.candidateClusters.size > 0 || d.dirtySubnets.size > 0;
  const servedBefore = isServingTouched ? new Map(st.served) : st.served;
  const candidatesBefore = isServingTouched ? new Map(st.candidates) : st.candidates;
  for (const name of d.dirtySubnets) {
    if (!newIndex.subnets.has(name)) {
      st.served.delete(name);
      st.candidates.delete(name);
      st.unservedReason.delete(name);
      st.unconfirmedReason.delete(name);
    }
  }
  for (const cluster of d.candidateClusters) {
    serveCluster(st, newIndex, cluster);
    for (const m of newIndex.clusters.get(cluster) ?? []) {
      if (st.served.get(m) !== servedBefore.get(m) || st.candidates.get(m) !== candidatesBefore.get(m))
        d.dirtySubnets.add(m);
    }
  }
  // Unserved reasons can change without any server changing, so any re-serving refreshes the view.
  if (isServingTouched) st.servingView = undefined;
  if (d.dirtySubnets.size > 0) st.localByAgent = buildLocalByAgent(st);
  return { served: servedBefore, candidates: candidatesBefore };
}

/**
 * Step 4: rules touching a dirty subnet are reduced again. A changed rule affects every agent on
 * either side; a rule that only saw a subnet move (or change prefixes) on one side affects the
 * agents on the other side (their peers, routes and rule lists name it) — the agents on the same
 * side only list their own subnets and the other side's, which did not change.
 */
export function reduceDirty(
  st: CompilerState,
  oldIndex: PolicyIndex,
  newIndex: PolicyIndex,
  d: Dirty,
  before: ServingBefore,
): void {
  const sideDirty = new Map<string, { isFrom: boolean; isTo: boolean }>();
  const mark = (rule: string, isFrom: boolean): void => {
    if (d.dirtyRules.has(rule)) return;
    const m = sideDirty.get(rule) ?? { isFrom: false, isTo: false };
    if (isFrom) m.isFrom = true;
    else m.isTo = true;
    sideDirty.set(rule, m);
  };
  for (const s of d.dirtySubnets) {
    for (const idx of [oldIndex, newIndex]) {
      for (const r of idx.asFrom.get(s) ?? []) mark(r, true);
      for (const r of idx.asTo.get(s) ?? []) mark(r, false);
    }
  }
  for (const name of d.dirtyRules) {
    const old = st.reductions.get(name);
    if (old) addReductionAgents(old, d.affected, true, true);
    const info = newIndex.rules.get(name);
    if (info) {
      const red = reduce(st, newIndex, info);
      st.reductions.set(name, red);
      addReductionAgents(red, d.affected, true, true);
    } else {
      st.reductions.delete(name);
    }
  }
  for (const [name, side] of sideDirty) {
    // A subnet on the from side dirties the to-side agents, and the reverse.
    const old = st.reductions.get(name);
    if (old) addReductionAgents(old, d.affected, side.isTo, side.isFrom);
    const info = newIndex.rules.get(name);
    // A rule not in dirtyRules is in the new index (a removed rule is dirty).
    if (!info) throw new Error(`compile: rule ${name} is not in the new index`);
    const red = reduce(st, newIndex, info);
    st.reductions.set(name, red);
    addReductionAgents(red, d.affected, side.isTo, side.isFrom);
  }
  // The old and new servers and candidates of a dirty subnet (local subnets, masquerade, probes,
  // the serving group's order).
  for (const s of d.dirtySubnets) {
    const was = before.served.get(s);
    const now = st.served.get(s);
    if (was) d.affected.add(was);
    if (now) d.affected.add(now);
    for (const a of before.candidates.get(s) ?? []) d.affected.add(a);
    for (const a of st.candidates.get(s) ?? []) d.affected.add(a);
  }
}

/** Steps 5 and 6: rebuilds affected agents, drops removed ones, then the relays whose pairs changed.
 *  Sets st.configs; returns how many configs were rebuilt. */
export function rebuild(
  st: CompilerState,
  idx: PolicyIndex,
  before: Map<AgentName, AgentConfig>,
  affected: ReadonlySet<AgentName>,
): number {
  for (const name of before.keys()) if (!st.agents.has(name)) forgetAgent(st, name);
  let configs: Map<AgentName, AgentConfig>;
  let recomputed = 0;
  const isSameAgentSet = st.agents.size === before.size && [...st.agents.keys()].every((n) => before.has(n));
  if (isSameAgentSet) {
    // Same names: keep the (sorted) map order, replace only what is affected.
    configs = new Map(before);
    for (const name of affected) {
      if (!configs.has(name)) continue;
      configs.set(name, buildAgent(st, idx, name));
      recomputed++;
    }
  } else {
    configs = new Map();
    for (const name of [...st.agents.keys()].sort()) {
      const kept = affected.has(name) ? undefined : before.get(name);
      if (kept === undefined) recomputed++;
      configs.set(name, kept ?? buildAgent(st, idx, name));
    }
  }
  for (const r of takeDirtyRelays(st)) {
    if (!configs.has(r)) continue;
    configs.set(r, buildAgent(st, idx, r));
    recomputed++;
  }
  st.configs = configs;
  return recomputed;
}
