// Policy + live inventory -> one AgentConfig per agent. Pure and deterministic.
//
// Shape of the work (headscale's lesson): everything that does not depend on the agent is resolved
// once — groups into subnets, subnets into their serving agent, each rule into "its source and
// destination subnets grouped by serving agent" with merged prefix lists — and then each agent's
// config is a reduction over only the rules that touch its own subnets. No step loops over all
// agents for each agent, and prefixes are handled as intervals, never expanded into addresses.
//
// Incremental: PolicyCompiler.update() works out which subnets changed server or content and which
// rules changed, and rebuilds only the agents those touch; everything else keeps its config object.
import { NOT_ENROLLED } from './unserved.js';
import { createHash } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import {
  AgentConfigSchema, type AgentConfig, type FlowRule, type Peer, type PeerPath, type Probe, type LocalSubnet, type PortRange, type RelayForward,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import { choosePath, overlaySlot, pairKey, type PairPath, type PathAgent, type RelayCandidate } from './paths.js';
import { normalizePorts, type NormalizedPorts } from './ports.js';
import { mergeParsed, PrefixCache, type ParsedPrefix, hostPrefixOf, prefixContains } from './prefixes.js';
import { NameResolver } from './resolve.js';
import { DEFAULT_UNDERLAY, type AgentName, type Inventory, type InventoryAgent, type Policy, type PolicyAgent, type Rule, type Subnet, type SubnetName } from './types.js';


export interface CompileOptions {
  /** PersistentKeepalive given for every peer. Default 25 s (keeps NAT mappings open). */
  persistentKeepaliveSeconds?: number;
  /** Written to AgentConfig.probe_interval_seconds; 0 = the agent's default. */
  probeIntervalSeconds?: number;
  /** Compute each config's content_hash (default). `policy check`, which sends no config anywhere,
   *  turns it off: a quarter of the compile of a 10,000-box policy. Without it every config's
   *  contentHash is "" and every config counts as changed. */
  isHashed?: boolean;
}

export interface UnservedSubnet {
  subnet: SubnetName;
  /** One line: why no agent serves it, e.g. "lth-sjuh is unhealthy; lth-sjuh-standby does not advertise 10.20.1.0/24". */
  reason: string;
}

/** A pair of peers and how they reach each other, for dry runs and status. */
export interface PairRoute {
  /** The pair, ordered by name. */
  a: AgentName;
  b: AgentName;
  path: PairPath;
}

export interface CompileResult {
  /** One config per inventory agent, in name order. Treat as immutable: configs share prefix arrays. */
  configs: Map<AgentName, AgentConfig>;
  /** Subnets that no agent serves (reported, not routed), sorted by name. Shared: do not modify. */
  unserved: readonly UnservedSubnet[];
  /** The active serving agent of every served subnet, by subnet name. */
  servedBy: ReadonlyMap<SubnetName, AgentName>;
  /** Agents whose content_hash differs from the previous result of this compiler (all, on the first). */
  changed: AgentName[];
  /** Agents that were in the previous result and are gone. */
  removed: AgentName[];
  /** How many agent configs were rebuilt to produce this result. */
  recomputedAgents: number;
  /**
   * Pairs of peers that do not share an underlay, by pair: relayed (and through which relays) or
   * without a path (and why), sorted. Pairs that peer directly are left out. Shared: do not modify.
   */
  indirectPairs: readonly PairRoute[];
}

export interface PolicyChange {
  policy?: Policy;
  inventory?: Inventory;
}

/** One-shot full compile. */
export function compilePolicy(policy: Policy, inventory: Inventory, opts: CompileOptions = {}): CompileResult {
  return new PolicyCompiler(opts).compile(policy, inventory);
}

// ---------------------------------------------------------------------------------------------------

interface SubnetInfo {
  subnet: Subnet;
  prefixes: ParsedPrefix[];
  /** Canonical prefix texts, sorted (shared by every config that lists this subnet alone). */
  texts: readonly string[];
  /** Overlap cluster (subnets whose prefixes overlap are served together); id = first member's name. */
  cluster: string;
  /** Everything about the subnet that reaches a config. */
  sig: string;
}

interface RuleInfo {
  rule: Rule;
  from: SubnetName[];
  to: SubnetName[];
  flows: NormalizedPorts[];
  /** PortRange messages per flow, built once and shared by every agent's FlowRule. */
  portRanges: PortRange[][];
  sig: string;
}

interface PolicyIndex {
  policy: Policy;
  subnets: Map<SubnetName, SubnetInfo>;
  clusters: Map<string, SubnetName[]>;
  rules: Map<string, RuleInfo>;
  /** For each subnet, the rules naming it (after group expansion) as source / destination. */
  asFrom: Map<SubnetName, string[]>;
  asTo: Map<SubnetName, string[]>;
  /** For each agent name, the clusters whose via lists it. */
  viaClusters: Map<string, string[]>;
  /** Probes by source subnet. */
  probesBySubnet: Map<SubnetName, Array<{ name: string; rule: Rule; index: number }>>;
  resolver: NameResolver;
  groupsSig: string;
  /** The policy's agents (underlays, relay) by name, and their signature. */
  policyAgents: Map<string, PolicyAgent>;
  agentsSig: string;
}

interface Reduction {
  fromByAgent: Map<AgentName, SubnetName[]>;
  toByAgent: Map<AgentName, SubnetName[]>;
  /** Merged prefixes of all served source / destination subnets. */
  fromAll: readonly string[];
  toAll: readonly string[];
}

interface AgentMeta {
  agent: InventoryAgent;
  advertised: ParsedPrefix[];
  hostPrefix?: string;
  host?: ParsedPrefix;
  overlayIp: string;
  /** Key, endpoint, overlay address: what peers see. */
  identitySig: string;
  /** Advertised prefixes and health: what serving depends on. */
  servingSig: string;
}

const EMPTY: readonly string[] = Object.freeze([]);

export class PolicyCompiler {
  private readonly cache = new PrefixCache();
  private readonly keepalive: number;
  private readonly probeInterval: number;

  private index?: PolicyIndex;
  private agents = new Map<AgentName, AgentMeta>();
  private overlayHosts: { 4: bigint[]; 6: bigint[] } = { 4: [], 6: [] };
  private overlayHosts4: number[] = [];
  private served = new Map<SubnetName, AgentName>();
  private unservedReason = new Map<SubnetName, string>();
  private localByAgent = new Map<AgentName, SubnetName[]>();
  private reductions = new Map<string, Reduction>();
  private configs = new Map<AgentName, AgentConfig>();
  private inventory?: Inventory;
  /** Path view of each agent, built on demand; reset with the inventory or the policy's agents. */
  private pathAgents = new Map<AgentName, PathAgent>();
  private relayCandidates?: RelayCandidate[];
  private relaySig = '';
  /** Agents with at least one peer not reached directly (relayed or no path), and those pairs. */
  private indirectByAgent = new Map<AgentName, Map<AgentName, PairPath>>();
  /** Each relay's forwards by pair, registered by the pair's first agent (by name). */
  private relayPairs = new Map<AgentName, Map<string, RelayForward[]>>();
  private registeredBy = new Map<AgentName, Array<{ relay: AgentName; key: string }>>();
  private dirtyRelays = new Set<AgentName>();
  private indirectView?: PairRoute[];
  /** Sorted served/unserved lists of the last result; cleared when serving changes. */
  private servingView?: { unserved: UnservedSubnet[]; servedBy: Map<SubnetName, AgentName> };

  private readonly isHashed: boolean;

  constructor(opts: CompileOptions = {}) {
    this.keepalive = opts.persistentKeepaliveSeconds ?? 25;
    this.probeInterval = opts.probeIntervalSeconds ?? 0;
    this.isHashed = opts.isHashed ?? true;
  }

  /** The last result's configs (empty before the first compile). */
  get current(): ReadonlyMap<AgentName, AgentConfig> {
    return this.configs;
  }

  /** Full compile from scratch (also resets any previous state). */
  compile(policy: Policy, inventory: Inventory): CompileResult {
    const before = this.configs;
    this.index = this.buildIndex(policy);
    this.inventory = inventory;
    this.agents = this.buildAgents(inventory);
    this.resetPaths();
    this.relaySig = this.computeRelaySig();
    this.indirectByAgent = new Map();
    this.relayPairs = new Map();
    this.registeredBy = new Map();
    this.dirtyRelays = new Set();
    this.overlayHosts = this.buildOverlayHosts();
    this.served = new Map();
    this.unservedReason = new Map();
    for (const cluster of this.index.clusters.keys()) this.serveCluster(cluster);
    this.localByAgent = this.buildLocalByAgent();
    this.reductions = new Map();
    for (const name of this.index.rules.keys()) this.reductions.set(name, this.reduce(name));
    this.configs = new Map();
    this.servingView = undefined;
    const names = [...this.agents.keys()].sort();
    for (const name of names) this.configs.set(name, this.buildAgent(name));
    // Relays were built before every pair through them was known.
    let recomputed = names.length;
    for (const r of this.takeDirtyRelays()) {
      this.configs.set(r, this.buildAgent(r));
      recomputed++;
    }
    return this.result(before, recomputed);
  }

  /**
   * Applies a change and rebuilds only the agents it touches. The result equals a full compile of
   * the new policy and inventory (a property test holds it to that).
   */
  update(change: PolicyChange): CompileResult {
    if (!this.index) {
      if (!change.policy || !change.inventory) throw new Error('PolicyCompiler.update: the first call needs both policy and inventory (or use compile())');
      return this.compile(change.policy, change.inventory);
    }
    const before = this.configs;
    const oldIndex = this.index;
    const newIndex = change.policy ? this.buildIndex(change.policy, oldIndex) : oldIndex;
    // Underlays and relays of the policy's agents decide every pair's path: rare edits, so a full
    // compile (the result is the same; only the work differs).
    if (newIndex.agentsSig !== oldIndex.agentsSig) return this.compile(newIndex.policy, change.inventory ?? (this.inventory as Inventory));
    const affected = new Set<AgentName>();

    // 1. Subnets whose own content changed, and rules whose resolution, ports or probes changed.
    const candidateClusters = new Set<string>();
    const dirtySubnets = new Set<SubnetName>();
    const dirtyRules = new Set<string>();
    if (newIndex !== oldIndex && newIndex.subnets !== oldIndex.subnets) {
      for (const [name, info] of newIndex.subnets) {
        const old = oldIndex.subnets.get(name);
        if (!old || old.sig !== info.sig || old.cluster !== info.cluster) {
          dirtySubnets.add(name);
          candidateClusters.add(info.cluster);
        }
      }
      for (const name of oldIndex.subnets.keys()) if (!newIndex.subnets.has(name)) dirtySubnets.add(name);
    }
    if (newIndex !== oldIndex) {
      for (const [name, info] of newIndex.rules) {
        const old = oldIndex.rules.get(name);
        if (old !== info && (!old || old.sig !== info.sig)) dirtyRules.add(name);
      }
      for (const name of oldIndex.rules.keys()) if (!newIndex.rules.has(name)) dirtyRules.add(name);
    }

    // 2. Agents whose live facts changed.
    let newAgents = this.agents;
    let isOverlayChanged = false;
    if (change.inventory) {
      this.inventory = change.inventory;
      newAgents = this.buildAgents(change.inventory, this.agents);
      for (const [name, meta] of newAgents) {
        const old = this.agents.get(name);
        if (old === meta) continue;
        affected.add(name);
        // Its peers carry its key, endpoint and overlay address; health and advertised subnets
        // reach others only through serving, handled below.
        if (!old || old.identitySig !== meta.identitySig) for (const p of before.get(name)?.peers ?? []) affected.add(p.name as AgentName);
        if (!old || old.hostPrefix !== meta.hostPrefix) isOverlayChanged = true;
        if (!old || old.servingSig !== meta.servingSig) for (const c of newIndex.viaClusters.get(name) ?? []) candidateClusters.add(c);
      }
      for (const [name] of this.agents) {
        if (newAgents.has(name)) continue;
        isOverlayChanged = true;
        for (const p of before.get(name)?.peers ?? []) affected.add(p.name as AgentName);
        for (const c of newIndex.viaClusters.get(name) ?? []) candidateClusters.add(c);
      }
    }
    this.index = newIndex;
    if (newAgents !== this.agents) {
      this.agents = newAgents;
      this.resetPaths();
      // A relay that appeared, went, moved or changed health: every pair that does not peer
      // directly may take another way now.
      const relaySig = this.computeRelaySig();
      if (relaySig !== this.relaySig) {
        this.relaySig = relaySig;
        for (const a of this.indirectByAgent.keys()) affected.add(a);
      }
    }
    if (isOverlayChanged) {
      this.overlayHosts = this.buildOverlayHosts();
      for (const c of newIndex.clusters.keys()) candidateClusters.add(c);
    }

    // 3. Re-serve candidate clusters; a subnet whose server changed is dirty. A dirty subnet's old
    // cluster partners are candidates too (it may have left their cluster).
    for (const name of [...dirtySubnets]) {
      const old = oldIndex.subnets.get(name);
      if (!old || newIndex === oldIndex) continue;
      for (const m of oldIndex.clusters.get(old.cluster) ?? []) {
        const info = newIndex.subnets.get(m);
        if (info) candidateClusters.add(info.cluster);
      }
    }
    const isServingTouched = candidateClusters.size > 0 || dirtySubnets.size > 0;
    const servedBefore = isServingTouched ? new Map(this.served) : this.served;
    for (const name of dirtySubnets) {
      if (!newIndex.subnets.has(name)) {
        this.served.delete(name);
        this.unservedReason.delete(name);
      }
    }
    for (const cluster of candidateClusters) {
      this.serveCluster(cluster);
      for (const m of newIndex.clusters.get(cluster) ?? []) {
        if (this.served.get(m) !== servedBefore.get(m)) dirtySubnets.add(m);
      }
    }
    // Unserved reasons can change without any server changing, so any re-serving refreshes the view.
    if (isServingTouched) this.servingView = undefined;
    if (dirtySubnets.size > 0) this.localByAgent = this.buildLocalByAgent();

    // 4. Rules touching a dirty subnet must be reduced again. A changed rule affects every agent on
    // either side; a rule that only saw a subnet move (or change prefixes) on one side affects the
    // agents on the other side (their peers, routes and rule lists name it) — the agents on the same
    // side only list their own subnets and the other side's, which did not change.
    const sideDirty = new Map<string, { isFrom: boolean; isTo: boolean }>();
    const mark = (rule: string, isFrom: boolean): void => {
      if (dirtyRules.has(rule)) return;
      const m = sideDirty.get(rule) ?? { isFrom: false, isTo: false };
      if (isFrom) m.isFrom = true;
      else m.isTo = true;
      sideDirty.set(rule, m);
    };
    for (const s of dirtySubnets) {
      for (const idx of [oldIndex, newIndex]) {
        for (const r of idx.asFrom.get(s) ?? []) mark(r, true);
        for (const r of idx.asTo.get(s) ?? []) mark(r, false);
      }
    }
    for (const name of dirtyRules) {
      const old = this.reductions.get(name);
      if (old) addReductionAgents(old, affected, true, true);
      if (newIndex.rules.has(name)) {
        const red = this.reduce(name);
        this.reductions.set(name, red);
        addReductionAgents(red, affected, true, true);
      } else {
        this.reductions.delete(name);
      }
    }
    for (const [name, side] of sideDirty) {
      // A subnet on the from side dirties the to-side agents, and the reverse.
      const old = this.reductions.get(name);
      if (old) addReductionAgents(old, affected, side.isTo, side.isFrom);
      const red = this.reduce(name);
      this.reductions.set(name, red);
      addReductionAgents(red, affected, side.isTo, side.isFrom);
    }
    // The old and new servers of a dirty subnet (local subnets, masquerade, probes).
    for (const s of dirtySubnets) {
      const was = servedBefore.get(s);
      const now = this.served.get(s);
      if (was) affected.add(was);
      if (now) affected.add(now);
    }

    // 5. Rebuild affected agents; drop removed ones.
    for (const name of before.keys()) if (!this.agents.has(name)) this.forgetAgent(name);
    let configs: Map<AgentName, AgentConfig>;
    let recomputed = 0;
    const isSameAgentSet = this.agents.size === before.size && [...this.agents.keys()].every((n) => before.has(n));
    if (isSameAgentSet) {
      // Same names: keep the (sorted) map order, replace only what is affected.
      configs = new Map(before);
      for (const name of affected) {
        if (!configs.has(name)) continue;
        configs.set(name, this.buildAgent(name));
        recomputed++;
      }
    } else {
      configs = new Map();
      for (const name of [...this.agents.keys()].sort()) {
        if (affected.has(name) || !before.has(name)) {
          configs.set(name, this.buildAgent(name));
          recomputed++;
        } else {
          configs.set(name, before.get(name) as AgentConfig);
        }
      }
    }
    // 6. Relays whose pairs changed: their forwards.
    for (const r of this.takeDirtyRelays()) {
      if (!configs.has(r)) continue;
      configs.set(r, this.buildAgent(r));
      recomputed++;
    }
    this.configs = configs;
    return this.result(before, recomputed);
  }


  private result(before: Map<AgentName, AgentConfig>, recomputed: number): CompileResult {
    const changed: AgentName[] = [];
    for (const [name, cfg] of this.configs) {
      const old = before.get(name);
      if (!old || !this.isHashed || old.contentHash !== cfg.contentHash) changed.push(name);
    }
    const removed = [...before.keys()].filter((n) => !this.configs.has(n)).sort();
    if (!this.servingView) {
      this.servingView = {
        unserved: [...this.unservedReason].map(([subnet, reason]) => ({ subnet, reason })).sort((a, b) => cmp(a.subnet, b.subnet)),
        servedBy: new Map([...this.served].sort((a, b) => cmp(a[0], b[0]))),
      };
    }
    const { unserved, servedBy } = this.servingView;
    if (!this.indirectView) {
      const out: PairRoute[] = [];
      for (const [a, peers] of this.indirectByAgent) for (const [b, path] of peers) if (a < b) out.push({ a, b, path });
      this.indirectView = out.sort((x, y) => cmp(x.a, y.a) || cmp(x.b, y.b));
    }
    return { configs: this.configs, unserved, servedBy, changed, removed, recomputedAgents: recomputed, indirectPairs: this.indirectView };
  }

  // --- policy index --------------------------------------------------------------------------------

  private buildIndex(policy: Policy, previous?: PolicyIndex): PolicyIndex {
    const push = <K, V>(m: Map<K, V[]>, k: K, v: V): void => {
      const l = m.get(k);
      if (l) l.push(v);
      else m.set(k, [v]);
    };

    // Subnets, clusters, via index: reused whole when no subnet changed (the common policy edit
    // touches rules only), so a one-rule change does not pay for 20,000 subnets.
    let subnets: Map<SubnetName, SubnetInfo>;
    let clusters: Map<string, SubnetName[]>;
    let viaClusters: Map<string, string[]>;
    let isSubnetSideSame = false;
    if (previous && previous.policy.subnets === policy.subnets) {
      ({ subnets, clusters, viaClusters } = previous);
      isSubnetSideSame = true;
    } else {
      subnets = new Map();
      let isAllSame = previous !== undefined && previous.subnets.size === policy.subnets.length;
      for (const s of policy.subnets) {
        const old = previous?.subnets.get(s.name);
        if (old !== undefined && isSameSubnet(old.subnet, s)) {
          subnets.set(s.name, { ...old, subnet: s });
          continue;
        }
        isAllSame = false;
        const prefixes = mergeParsed(s.cidrs.map((c) => this.cache.get(c)));
        const texts = Object.freeze(prefixes.map((p) => p.text));
        subnets.set(s.name, { subnet: s, prefixes, texts, cluster: s.name, sig: JSON.stringify([s.cidrs, s.zone, s.via, s.masquerade, s.gateways ?? []]) });
      }
      if (isAllSame && previous) {
        clusters = previous.clusters;
        viaClusters = previous.viaClusters;
        isSubnetSideSame = true;
      } else {
        clusters = this.buildClusters(subnets);
        viaClusters = new Map();
        for (const [id, members] of clusters) {
          const via = new Set<string>();
          for (const m of members) for (const a of (subnets.get(m) as SubnetInfo).subnet.via) via.add(a);
          for (const a of via) push(viaClusters, a, id);
        }
      }
    }

    // Rules: group expansion is memoized in the resolver, kept while subnets and groups are equal.
    const groupsSig = previous && previous.policy.groups === policy.groups ? previous.groupsSig : JSON.stringify(policy.groups);
    const isResolverSame = previous !== undefined && isSubnetSideSame && previous.groupsSig === groupsSig;
    const resolver = isResolverSame && previous ? previous.resolver : new NameResolver(policy);
    const rules = new Map<string, RuleInfo>();
    const changedRules: Array<{ old?: RuleInfo; now?: RuleInfo }> = [];
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
        const sig = JSON.stringify([from, to, flows, rule.probes]);
        const portRanges = flows.map((f) => f.ranges.map((r): PortRange => ({ $typeName: 'crosslink.v1.PortRange', first: r.first, last: r.last })));
        info = old && old.sig === sig ? { ...old, rule } : { rule, from, to, flows, portRanges, sig };
        if (!old || old.from !== info.from || old.to !== info.to) changedRules.push({ old, now: info });
      }
      rules.set(rule.name, info);
    }
    if (previous) for (const [name, old] of previous.rules) if (!rules.has(name)) changedRules.push({ old });

    let asFrom: Map<SubnetName, string[]>;
    let asTo: Map<SubnetName, string[]>;
    if (previous && isResolverSame) {
      // Patch copies of the previous maps for the rules whose subnets changed.
      asFrom = new Map(previous.asFrom);
      asTo = new Map(previous.asTo);
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
        const name = (c.now ?? c.old)?.rule.name as string;
        patch(asFrom, name, c.old?.from ?? [], c.now?.from ?? []);
        patch(asTo, name, c.old?.to ?? [], c.now?.to ?? []);
      }
    } else {
      asFrom = new Map();
      asTo = new Map();
      for (const info of rules.values()) {
        for (const s of info.from) push(asFrom, s, info.rule.name);
        for (const s of info.to) push(asTo, s, info.rule.name);
      }
    }
    const probesBySubnet = new Map<SubnetName, Array<{ name: string; rule: Rule; index: number }>>();
    for (const rule of policy.rules) rule.probes.forEach((p, i) => push(probesBySubnet, p.from, { name: `${rule.name}/${i}`, rule, index: i }));
    const agentsSig = previous && previous.policy.agents === policy.agents ? previous.agentsSig : JSON.stringify(policy.agents.map((a) => [a.name, a.underlays, a.isRelay]));
    const policyAgents = previous && previous.agentsSig === agentsSig ? previous.policyAgents : new Map(policy.agents.map((a) => [a.name as string, a]));
    return { policy, subnets, clusters, rules, asFrom, asTo, viaClusters, probesBySubnet, resolver, groupsSig, policyAgents, agentsSig };
  }

  /** Overlapping subnets (same zone and via, or validation would have refused them) form a cluster. */
  private buildClusters(subnets: Map<SubnetName, SubnetInfo>): Map<string, SubnetName[]> {
    const items: Array<{ p: ParsedPrefix; s: SubnetName }> = [];
    for (const [name, info] of subnets) for (const p of info.prefixes) items.push({ p, s: name });
    items.sort((a, b) => a.p.family - b.p.family || (a.p.start < b.p.start ? -1 : a.p.start > b.p.start ? 1 : a.p.length - b.p.length));
    const parent = new Map<string, string>();
    const find = (x: string): string => {
      let r = x;
      while (parent.has(r)) r = parent.get(r) as string;
      while (x !== r) {
        const next = parent.get(x) as string;
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
    for (const name of [...subnets.keys()].sort()) {
      const root = find(name);
      const l = clusters.get(root);
      if (l) l.push(name);
      else clusters.set(root, [name]);
      (subnets.get(name) as SubnetInfo).cluster = root;
    }
    return clusters;
  }

  // --- inventory -----------------------------------------------------------------------------------

  private buildAgents(inventory: Inventory, previous?: Map<AgentName, AgentMeta>): Map<AgentName, AgentMeta> {
    const out = new Map<AgentName, AgentMeta>();
    for (const a of [...inventory.agents].sort((x, y) => cmp(x.name, y.name))) {
      const identitySig = JSON.stringify([a.publicKey, a.endpoint, a.overlayAddress, a.endpoints ?? [], a.isRelay === true]);
      const servingSig = JSON.stringify([[...a.advertised].sort(), a.isHealthy]);
      const old = previous?.get(a.name);
      if (old && old.identitySig === identitySig && old.servingSig === servingSig) {
        out.set(a.name, old);
        continue;
      }
      const advertised: ParsedPrefix[] = [];
      for (const text of a.advertised) {
        const p = this.cache.lenient(text);
        if (p) advertised.push(p);
      }
      const overlayIp = a.overlayAddress.split('/')[0] ?? '';
      const hostPrefix = hostPrefixOf(overlayIp);
      out.set(a.name, { agent: a, advertised, hostPrefix, host: hostPrefix ? this.cache.get(hostPrefix) : undefined, overlayIp, identitySig, servingSig });
    }
    return out;
  }

  private buildOverlayHosts(): { 4: bigint[]; 6: bigint[] } {
    const hosts: { 4: bigint[]; 6: bigint[] } = { 4: [], 6: [] };
    for (const m of this.agents.values()) {
      if (!m.hostPrefix) continue;
      const p = this.cache.get(m.hostPrefix);
      hosts[p.family].push(p.start);
    }
    hosts[4].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    this.overlayHosts4 = hosts[4].map((x) => Number(x));
    hosts[6].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return hosts;
  }

  private overlapsOverlay(p: ParsedPrefix): boolean {
    // Binary search for the first overlay host >= start (numbers for IPv4, bigints for IPv6).
    if (p.family === 4) {
      const list = this.overlayHosts4;
      let lo = 0;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (list[mid] < p.key) lo = mid + 1;
        else hi = mid;
      }
      return lo < list.length && list[lo] <= p.endKey;
    }
    const list = this.overlayHosts[6];
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid] < p.start) lo = mid + 1;
      else hi = mid;
    }
    return lo < list.length && list[lo] <= p.end;
  }

  /** A cluster is served by the first agent of its via that is enrolled, healthy and advertises all of it. */
  private serveCluster(cluster: string): void {
    const idx = this.index as PolicyIndex;
    const members = idx.clusters.get(cluster) ?? [];
    const infos = members.map((m) => idx.subnets.get(m) as SubnetInfo);
    const prefixes = infos.flatMap((i) => i.prefixes);
    const via = infos[0]?.subnet.via ?? [];
    let server: AgentName | undefined;
    const why: string[] = [];
    const clash = prefixes.find((p) => this.overlapsOverlay(p));
    if (clash) {
      why.push(`${clash.text} overlaps an agent's overlay address`);
    } else {
      for (const a of via) {
        const meta = this.agents.get(a);
        if (!meta) why.push(`${a}${NOT_ENROLLED}`);
        else if (!meta.agent.isHealthy) why.push(`${a} is unhealthy`);
        else {
          const missing = prefixes.find((p) => !meta.advertised.some((o) => prefixContains(o, p)));
          if (missing) why.push(`${a} does not advertise ${missing.text}`);
          else {
            server = a;
            break;
          }
        }
      }
    }
    for (const m of members) {
      if (server) {
        this.served.set(m, server);
        this.unservedReason.delete(m);
      } else {
        this.served.delete(m);
        this.unservedReason.set(m, why.length > 0 ? why.join('; ') : 'via names no agent');
      }
    }
  }

  private buildLocalByAgent(): Map<AgentName, SubnetName[]> {
    const out = new Map<AgentName, SubnetName[]>();
    for (const [s, a] of this.served) {
      const l = out.get(a);
      if (l) l.push(s);
      else out.set(a, [s]);
    }
    for (const l of out.values()) l.sort(cmp);
    return out;
  }

  // --- paths and relays ---------------------------------------------------------------------------

  private resetPaths(): void {
    this.pathAgents = new Map();
    this.relayCandidates = undefined;
  }

  /** How path selection sees an agent: the policy's underlays for it (else what it announced) and
   *  its announced endpoints on them. A bare HOST:PORT (underlay "default") of a box the policy puts
   *  on exactly one underlay is on that one, so boxes keep working while they are upgraded. */
  private pathAgent(name: AgentName): PathAgent {
    let pa = this.pathAgents.get(name);
    if (pa) return pa;
    const meta = this.agents.get(name);
    const declared = (this.index as PolicyIndex).policyAgents.get(name)?.underlays;
    const announced = meta ? announcedEndpoints(meta.agent) : [];
    const underlays = declared ?? [...new Set(announced.map((e) => e.underlay))].sort();
    const endpoints: Array<{ underlay: string; endpoint: string }> = [];
    for (const e of announced) {
      const u = e.underlay === DEFAULT_UNDERLAY && underlays.length === 1 ? underlays[0]! : e.underlay;
      if (underlays.includes(u) && !endpoints.some((x) => x.underlay === u)) endpoints.push({ underlay: u, endpoint: e.endpoint });
    }
    endpoints.sort((x, y) => cmp(x.underlay, y.underlay));
    pa = { name, underlays, endpoints, isHealthy: meta?.agent.isHealthy ?? false };
    const slot = meta ? overlaySlot(meta.agent.overlayAddress) : undefined;
    if (slot !== undefined) pa.slot = slot;
    this.pathAgents.set(name, pa);
    return pa;
  }

  /** The policy's relays, each usable or with the reason it is not. */
  private relaysFor(): RelayCandidate[] {
    if (this.relayCandidates) return this.relayCandidates;
    const out: RelayCandidate[] = [];
    for (const pa of (this.index as PolicyIndex).policyAgents.values()) {
      if (!pa.isRelay) continue;
      const meta = this.agents.get(pa.name);
      const agent = this.pathAgent(pa.name);
      if (!meta) out.push({ agent, unusable: 'is not enrolled' });
      else if (meta.agent.isRelay !== true) out.push({ agent, unusable: 'has not consented (its agent runs without --relay)' });
      else out.push({ agent });
    }
    this.relayCandidates = out;
    return out;
  }

  private computeRelaySig(): string {
    return JSON.stringify(this.relaysFor().map((c) => [c.agent.name, c.unusable ?? '', c.agent.underlays, c.agent.endpoints, c.agent.slot ?? -1, c.agent.isHealthy]));
  }

  private register(owner: AgentName, relay: AgentName, key: string, forwards: readonly RelayForward[]): void {
    let pairs = this.relayPairs.get(relay);
    if (!pairs) this.relayPairs.set(relay, (pairs = new Map()));
    pairs.set(key, [...forwards]);
    let list = this.registeredBy.get(owner);
    if (!list) this.registeredBy.set(owner, (list = []));
    list.push({ relay, key });
    this.dirtyRelays.add(relay);
  }

  private unregister(owner: AgentName): void {
    const list = this.registeredBy.get(owner);
    if (!list) return;
    for (const { relay, key } of list) {
      const pairs = this.relayPairs.get(relay);
      if (pairs?.delete(key)) this.dirtyRelays.add(relay);
      if (pairs && pairs.size === 0) this.relayPairs.delete(relay);
    }
    this.registeredBy.delete(owner);
  }

  private forgetAgent(name: AgentName): void {
    this.unregister(name);
    if (this.indirectByAgent.delete(name)) this.indirectView = undefined;
  }

  /** Relays whose pairs changed since the last call, sorted. */
  private takeDirtyRelays(): AgentName[] {
    const out = [...this.dirtyRelays].filter((r) => this.agents.has(r)).sort(cmp);
    this.dirtyRelays = new Set();
    return out;
  }

  // --- per rule ------------------------------------------------------------------------------------

  private reduce(ruleName: string): Reduction {
    const info = (this.index as PolicyIndex).rules.get(ruleName) as RuleInfo;
    const side = (names: SubnetName[]): { by: Map<AgentName, SubnetName[]>; all: readonly string[] } => {
      const by = new Map<AgentName, SubnetName[]>();
      const prefixes: ParsedPrefix[] = [];
      for (const s of names) {
        const a = this.served.get(s);
        if (!a) continue;
        const l = by.get(a);
        if (l) l.push(s);
        else by.set(a, [s]);
        for (const p of (this.index as PolicyIndex).subnets.get(s)?.prefixes ?? []) prefixes.push(p);
      }
      return { by, all: freezeTexts(mergeParsed(prefixes)) };
    };
    const f = side(info.from);
    const t = side(info.to);
    return { fromByAgent: f.by, toByAgent: t.by, fromAll: f.all, toAll: t.all };
  }

  // --- per agent -----------------------------------------------------------------------------------

  private prefixesOf(names: Iterable<SubnetName>): ParsedPrefix[] {
    const idx = this.index as PolicyIndex;
    const out: ParsedPrefix[] = [];
    for (const n of names) for (const p of idx.subnets.get(n)?.prefixes ?? []) out.push(p);
    return out;
  }

  private mergedOf(names: readonly SubnetName[]): readonly string[] {
    // Fast path: one subnet's own prefixes are already canonical, sorted and disjoint.
    if (names.length === 1) return (this.index as PolicyIndex).subnets.get(names[0])?.texts ?? EMPTY;
    return mergeParsed(this.prefixesOf(names)).map((p) => p.text);
  }

  /** Prefixes of `names` not served by `self`, merged. */
  private remoteOf(names: SubnetName[], self: AgentName): readonly string[] {
    return this.mergedOf(names.filter((n) => this.served.get(n) !== self));
  }

  private buildAgent(name: AgentName): AgentConfig {
    const idx = this.index as PolicyIndex;
    const meta = this.agents.get(name) as AgentMeta;
    const local = this.localByAgent.get(name) ?? [];
    const outRules = new Set<string>();
    const inRules = new Set<string>();
    for (const s of local) {
      for (const r of idx.asFrom.get(s) ?? []) outRules.add(r);
      for (const r of idx.asTo.get(s) ?? []) inRules.add(r);
    }
    // Most peers get their subnets from one rule: keep that list as is and make a Set only when a
    // second rule adds to it (a hub has thousands of peers; this is its hot loop).
    const peerSubnets = new Map<AgentName, readonly SubnetName[] | Set<SubnetName>>();
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
    const outbound: FlowRule[] = [];
    const inbound: FlowRule[] = [];
    const localRules: FlowRule[] = [];
    const flowRules = (into: FlowRule[], info: RuleInfo, sources: readonly string[], destinations: readonly string[]): void => {
      info.flows.forEach((f, i) => {
        into.push({
          $typeName: 'crosslink.v1.FlowRule',
          rule: info.rule.name,
          sources: sources as string[],
          destinations: destinations as string[],
          protocol: f.protocol,
          ports: info.portRanges[i],
        });
      });
    };

    for (const r of [...outRules].sort(cmp)) {
      const info = idx.rules.get(r) as RuleInfo;
      const red = this.reductions.get(r) as Reduction;
      const mine = red.fromByAgent.get(name) ?? [];
      for (const [peer, subs] of red.toByAgent) if (peer !== name) addPeer(peer, subs);
      const sources = this.mergedOf(mine);
      const localTo = red.toByAgent.get(name);
      const destinations = localTo ? this.remoteOf(info.to, name) : red.toAll;
      if (destinations.length > 0) flowRules(outbound, info, sources, destinations);
      if (localTo && !(mine.length === 1 && localTo.length === 1 && mine[0] === localTo[0])) {
        flowRules(localRules, info, sources, this.mergedOf(localTo));
      }
    }
    for (const r of [...inRules].sort(cmp)) {
      const info = idx.rules.get(r) as RuleInfo;
      const red = this.reductions.get(r) as Reduction;
      const mine = red.toByAgent.get(name) ?? [];
      for (const [peer, subs] of red.fromByAgent) if (peer !== name) addPeer(peer, subs);
      const sources = red.fromByAgent.has(name) ? this.remoteOf(info.from, name) : red.fromAll;
      if (sources.length > 0) flowRules(inbound, info, sources, this.mergedOf(mine));
    }

    const peers: Peer[] = [];
    const routePrefixes: ParsedPrefix[] = [];
    this.unregister(name);
    let indirect: Map<AgentName, PairPath> | undefined;
    const self = this.pathAgent(name);
    for (const peerName of [...peerSubnets.keys()].sort(cmp)) {
      const pm = this.agents.get(peerName) as AgentMeta;
      const subnetPrefixes = this.prefixesOf(peerSubnets.get(peerName) as Iterable<SubnetName>);
      for (const p of subnetPrefixes) routePrefixes.push(p);
      if (pm.host) subnetPrefixes.push(pm.host);
      const other = this.pathAgent(peerName);
      const path = choosePath(self, other, this.relaysFor());
      let endpoint = '';
      let paths: PeerPath[] = [];
      if (path.kind === 'direct') {
        endpoint = other.endpoints.find((e) => e.underlay === path.underlay)?.endpoint ?? '';
      } else {
        (indirect ??= new Map()).set(peerName, path);
        if (path.kind === 'relay') {
          const isA = name < peerName;
          paths = path.hops.map((h) => ({ $typeName: 'crosslink.v1.PeerPath', endpoint: isA ? h.endpointForA : h.endpointForB, relay: h.relay, underlay: isA ? h.underlayA : h.underlayB }));
          endpoint = paths[0]!.endpoint;
          if (isA) for (const h of path.hops) this.register(name, h.relay, pairKey(name, peerName), h.forwards);
        }
      }
      peers.push({
        $typeName: 'crosslink.v1.Peer',
        name: peerName,
        publicKey: pm.agent.publicKey,
        endpoint,
        persistentKeepaliveSeconds: this.keepalive,
        allowedIps: mergeParsed(subnetPrefixes).map((p) => p.text),
        overlayIp: pm.overlayIp,
        paths,
      });
    }
    if (indirect) this.indirectByAgent.set(name, indirect);
    else this.indirectByAgent.delete(name);
    this.indirectView = undefined;
    const relay: RelayForward[] = [];
    for (const forwards of this.relayPairs.get(name)?.values() ?? []) for (const f of forwards) relay.push(f);
    relay.sort((x, y) => cmp(x.listen, y.listen) || cmp(x.source, y.source));

    const localSubnets: LocalSubnet[] = local.map((s) => {
      const sub = (idx.subnets.get(s) as SubnetInfo).subnet;
      return { $typeName: 'crosslink.v1.LocalSubnet', name: s, zone: sub.zone, prefixes: sub.cidrs, masquerade: sub.masquerade, gateways: sub.gateways ?? [] };
    });
    const masquerade = this.mergedOf(local.filter((s) => (idx.subnets.get(s) as SubnetInfo).subnet.masquerade)) as string[];

    const probes: Probe[] = [];
    for (const s of local) {
      for (const pr of idx.probesBySubnet.get(s) ?? []) {
        const probe = pr.rule.probes[pr.index];
        const family = probe.to.includes(':') ? 6 : 4;
        const source = (idx.subnets.get(s) as SubnetInfo).prefixes.find((p) => p.family === family);
        probes.push({
          $typeName: 'crosslink.v1.Probe',
          name: pr.name,
          target: probe.to,
          protocol: probe.proto,
          port: probe.port ?? 0,
          expectDeny: probe.expect === 'deny',
          sourcePrefix: source?.text ?? '',
        });
      }
    }
    probes.sort((a, b) => cmp(a.name, b.name));

    const cfg = create(AgentConfigSchema, {
      agentName: name,
      overlayAddress: meta.agent.overlayAddress,
      peers,
      routes: mergeParsed(routePrefixes).map((p) => p.text),
      firewall: {
        outbound,
        inbound,
        local: localRules,
        masquerade,
        localPrefixes: this.mergedOf(local) as string[],
        relay,
      },
      localSubnets,
      probes,
      probeIntervalSeconds: this.probeInterval,
    });
    if (this.isHashed) cfg.contentHash = contentHash(cfg);
    return cfg;
  }
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isSameSubnet(a: Subnet, b: Subnet): boolean {
  return a === b || (a.zone === b.zone && a.masquerade === b.masquerade && sameList(a.cidrs, b.cidrs) && sameList(a.via, b.via) && sameList(a.gateways ?? [], b.gateways ?? []));
}

function isSameRule(a: Rule, b: Rule): boolean {
  if (a === b) return true;
  if (!sameList(a.from, b.from) || !sameList(a.to, b.to) || a.ports.length !== b.ports.length || a.probes.length !== b.probes.length) return false;
  for (let i = 0; i < a.ports.length; i++) {
    const x = a.ports[i];
    const y = b.ports[i];
    if (x.protocol !== y.protocol || x.first !== y.first || x.last !== y.last) return false;
  }
  for (let i = 0; i < a.probes.length; i++) {
    const x = a.probes[i];
    const y = b.probes[i];
    if (x.from !== y.from || x.to !== y.to || x.port !== y.port || x.proto !== y.proto || x.expect !== y.expect) return false;
  }
  return true;
}

function addReductionAgents(red: Reduction, into: Set<AgentName>, isFromSide: boolean, isToSide: boolean): void {
  if (isFromSide) for (const a of red.fromByAgent.keys()) into.add(a);
  if (isToSide) for (const a of red.toByAgent.keys()) into.add(a);
}

function freezeTexts(prefixes: ParsedPrefix[]): readonly string[] {
  if (prefixes.length === 0) return EMPTY;
  return Object.freeze(prefixes.map((p) => p.text));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const listDigests = new WeakMap<readonly string[], string>();

/**
 * A long list shared by many configs (a group's merged prefixes: frozen, built once per rule) stands
 * in the hashed text as "#" + its own SHA-256, computed once; equal content still gives an equal
 * digest, so the config hash stays a function of content alone.
 */
function list(items: readonly string[]): readonly string[] | string {
  if (items.length < 64 || !Object.isFrozen(items)) return items;
  let d = listDigests.get(items);
  if (d === undefined) {
    d = `#${createHash('sha256').update(JSON.stringify(items)).digest('hex')}`;
    listDigests.set(items, d);
  }
  return d;
}

/**
 * SHA-256 (hex) of the config's canonical content: every field except generation and content_hash,
 * in field-number order, as compact JSON of nested arrays. Lists are already sorted by the compiler,
 * so equal content gives equal text. (Several times faster than hashing the protobuf encoding,
 * which dominated a 10,000-agent compile.)
 */
export function contentHash(cfg: AgentConfig): string {
  const fw = cfg.firewall;
  const flow = (r: FlowRule): unknown[] => [r.rule, list(r.sources), list(r.destinations), r.protocol, r.ports.map((p) => [p.first, p.last])];
  const canonical = [
    cfg.agentName,
    cfg.overlayAddress,
    // Paths and relay forwards only when present, so configs without them keep their hash.
    cfg.peers.map((p) => (p.paths.length > 0
      ? [p.name, p.publicKey, p.endpoint, p.persistentKeepaliveSeconds, p.allowedIps, p.overlayIp, p.paths.map((x) => [x.endpoint, x.relay, x.underlay])]
      : [p.name, p.publicKey, p.endpoint, p.persistentKeepaliveSeconds, p.allowedIps, p.overlayIp])),
    cfg.routes,
    fw ? (fw.relay.length > 0
      ? [fw.outbound.map(flow), fw.inbound.map(flow), fw.local.map(flow), fw.masquerade, fw.localPrefixes, fw.relay.map((r) => [r.source, r.listen, r.target, r.snat, r.fromAgent, r.toAgent])]
      : [fw.outbound.map(flow), fw.inbound.map(flow), fw.local.map(flow), fw.masquerade, fw.localPrefixes]) : null,
    // Gateways only when present, so configs without one keep the hash they had before the field.
    cfg.localSubnets.map((l) => (l.gateways.length > 0 ? [l.name, l.zone, l.prefixes, l.masquerade, l.gateways] : [l.name, l.zone, l.prefixes, l.masquerade])),
    cfg.probes.map((p) => [p.name, p.target, p.protocol, p.port, p.expectDeny, p.sourcePrefix]),
    cfg.probeIntervalSeconds,
  ];
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

/** An inventory agent's endpoints by underlay: `endpoints`, or the bare `endpoint` on "default". */
export function announcedEndpoints(a: InventoryAgent): Array<{ underlay: string; endpoint: string }> {
  if (a.endpoints && a.endpoints.length > 0) return a.endpoints;
  return a.endpoint !== '' ? [{ underlay: DEFAULT_UNDERLAY, endpoint: a.endpoint }] : [];
}
