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
// The sections live in compile/: policy-index, serving, firewall, peers, relays, agent, update, hash.
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { PrefixCache } from './prefixes.js';
import type { AgentName, Inventory, Policy } from './types.js';
import { buildAgent } from './compile/agent.js';
import { reduce } from './compile/firewall.js';
import { buildIndex } from './compile/policy-index.js';
import { computeRelaySig, resetPaths, takeDirtyRelays } from './compile/relays.js';
import { buildAgents, buildLocalByAgent, buildOverlayHosts, serveCluster } from './compile/serving.js';
import {
  cmp,
  type CompileOptions,
  type CompileResult,
  type CompilerState,
  type PairRoute,
  type PolicyChange,
  type PolicyIndex,
} from './compile/types.js';
import { applyInventory, diffIndexes, rebuild, reduceDirty, reserve } from './compile/update.js';

export type {
  CompileOptions,
  CompileResult,
  PairRoute,
  PolicyChange,
  UnconfirmedSubnet,
  UnservedSubnet,
} from './compile/types.js';
export { contentHash } from './compile/hash.js';
export { announcedEndpoints } from './compile/relays.js';

/** One-shot full compile. */
export function compilePolicy(policy: Policy, inventory: Inventory, opts: CompileOptions = {}): CompileResult {
  return new PolicyCompiler(opts).compile(policy, inventory);
}

export class PolicyCompiler {
  private readonly st: CompilerState;
  /** The policy index and inventory of the last result; absent before the first compile. */
  private live?: { index: PolicyIndex; inventory: Inventory };

  constructor(opts: CompileOptions = {}) {
    this.st = {
      cache: new PrefixCache(),
      keepalive: opts.persistentKeepaliveSeconds ?? 25,
      probeInterval: opts.probeIntervalSeconds ?? 0,
      isHashed: opts.isHashed ?? true,
      liveness: {
        intervalMs: opts.liveness?.intervalMs ?? 0,
        multiplier: opts.liveness?.multiplier ?? 0,
        holdDownMs: opts.liveness?.holdDownMs ?? 0,
        port: opts.liveness?.port ?? 0,
      },
      agents: new Map(),
      overlayHosts: { 4: [], 6: [] },
      overlayHosts4: [],
      served: new Map(),
      candidates: new Map(),
      unservedReason: new Map(),
      unconfirmedReason: new Map(),
      localByAgent: new Map(),
      reductions: new Map(),
      configs: new Map(),
      pathAgents: new Map(),
      relaySig: '',
      indirectByAgent: new Map(),
      relayPairs: new Map(),
      registeredBy: new Map(),
      dirtyRelays: new Set(),
    };
  }

  /** The last result's configs (empty before the first compile). */
  get current(): ReadonlyMap<AgentName, AgentConfig> {
    return this.st.configs;
  }

  /** Full compile from scratch (also resets any previous state). */
  compile(policy: Policy, inventory: Inventory): CompileResult {
    const st = this.st;
    const before = st.configs;
    const idx = buildIndex(st.cache, policy);
    this.live = { index: idx, inventory };
    st.agents = buildAgents(st.cache, inventory);
    resetPaths(st);
    st.relaySig = computeRelaySig(st, idx);
    st.indirectByAgent = new Map();
    st.relayPairs = new Map();
    st.registeredBy = new Map();
    st.dirtyRelays = new Set();
    buildOverlayHosts(st);
    st.served = new Map();
    st.candidates = new Map();
    st.unservedReason = new Map();
    st.unconfirmedReason = new Map();
    for (const cluster of idx.clusters.keys()) serveCluster(st, idx, cluster);
    st.localByAgent = buildLocalByAgent(st);
    st.reductions = new Map();
    for (const [name, info] of idx.rules) st.reductions.set(name, reduce(st, idx, info));
    st.configs = new Map();
    st.servingView = undefined;
    const names = [...st.agents.keys()].sort();
    for (const name of names) st.configs.set(name, buildAgent(st, idx, name));
    // Relays were built before every pair through them was known.
    let recomputed = names.length;
    for (const r of takeDirtyRelays(st)) {
      st.configs.set(r, buildAgent(st, idx, r));
      recomputed++;
    }
    return this.result(before, recomputed);
  }

  /**
   * Applies a change and rebuilds only the agents it touches. The result equals a full compile of
   * the new policy and inventory (a property test holds it to that).
   */
  update(change: PolicyChange): CompileResult {
    if (!this.live) {
      if (!change.policy || !change.inventory)
        throw new Error('PolicyCompiler.update: the first call needs both policy and inventory (or use compile())');
      return this.compile(change.policy, change.inventory);
    }
    const st = this.st;
    const before = st.configs;
    const oldIndex = this.live.index;
    const newIndex = change.policy ? buildIndex(st.cache, change.policy, oldIndex) : oldIndex;
    const inventory = change.inventory ?? this.live.inventory;
    // Underlays and relays of the policy's agents decide every pair's path: rare edits, so a full
    // compile (the result is the same; only the work differs).
    if (newIndex.agentsSig !== oldIndex.agentsSig) return this.compile(newIndex.policy, inventory);
    const d = diffIndexes(oldIndex, newIndex);
    if (change.inventory) applyInventory(st, newIndex, change.inventory, before, d);
    this.live = { index: newIndex, inventory };
    const servingBefore = reserve(st, oldIndex, newIndex, d);
    reduceDirty(st, oldIndex, newIndex, d, servingBefore);
    return this.result(before, rebuild(st, newIndex, before, d.affected));
  }

  private result(before: Map<AgentName, AgentConfig>, recomputed: number): CompileResult {
    const st = this.st;
    const changed: AgentName[] = [];
    for (const [name, cfg] of st.configs) {
      const old = before.get(name);
      if (!old || !st.isHashed || old.contentHash !== cfg.contentHash) changed.push(name);
    }
    const removed = [...before.keys()].filter((n) => !st.configs.has(n)).sort();
    st.servingView ??= {
      unserved: [...st.unservedReason]
        .map(([subnet, reason]) => ({ subnet, reason }))
        .sort((a, b) => cmp(a.subnet, b.subnet)),
      unconfirmed: [...st.unconfirmedReason]
        .map(([subnet, reason]) => ({ subnet, reason }))
        .sort((a, b) => cmp(a.subnet, b.subnet)),
      servedBy: new Map([...st.served].sort((a, b) => cmp(a[0], b[0]))),
      candidates: new Map([...st.candidates].sort((a, b) => cmp(a[0], b[0]))),
    };
    const { unserved, unconfirmed, servedBy, candidates } = st.servingView;
    if (!st.indirectView) {
      const out: PairRoute[] = [];
      for (const [a, peers] of st.indirectByAgent) for (const [b, path] of peers) if (a < b) out.push({ a, b, path });
      st.indirectView = out.sort((x, y) => cmp(x.a, y.a) || cmp(x.b, y.b));
    }
    return {
      configs: st.configs,
      unserved,
      unconfirmed,
      servedBy,
      candidates,
      changed,
      removed,
      recomputedAgents: recomputed,
      indirectPairs: st.indirectView,
    };
  }
}
