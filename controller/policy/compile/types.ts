// The compiler's public result types, and the state its steps share (compile.ts owns one of each).
import type { AgentConfig, PortRange, RelayForward } from '../../../proto/gen/crosslink/v1/agent_pb.js';
import type { PairPath, PathAgent, RelayCandidate } from '../paths.js';
import type { NormalizedPorts } from '../ports.js';
import type { ParsedPrefix, PrefixCache } from '../prefixes.js';
import type { NameResolver } from '../resolve.js';
import type {
  AgentName,
  Inventory,
  InventoryAgent,
  Policy,
  PolicyAgent,
  Rule,
  RuleProbe,
  Subnet,
  SubnetName,
} from '../types.js';

export interface CompileOptions {
  /** PersistentKeepalive given for every peer. Default 25 s (keeps NAT mappings open). */
  persistentKeepaliveSeconds?: number;
  /** Written to AgentConfig.probe_interval_seconds; 0 = the agent's default. */
  probeIntervalSeconds?: number;
  /** Compute each config's content_hash (default). `policy check`, which sends no config anywhere,
   *  turns it off: a quarter of the compile of a 10,000-box policy. Without it every config's
   *  contentHash is "" and every config counts as changed. */
  isHashed?: boolean;
  /** Written to AgentConfig.liveness of every config with serving groups (0 fields: the agent's
   *  defaults). */
  liveness?: { intervalMs?: number; multiplier?: number; holdDownMs?: number; port?: number };
}

export interface UnservedSubnet {
  subnet: SubnetName;
  /** One line: why no agent serves it, e.g. "lth-sjuh is unhealthy; lth-sjuh-standby does not advertise 10.20.1.0/24". */
  reason: string;
}

/** A subnet served on the edges' decision alone: a serving group none of whose candidates the
 *  controller judges healthy. The edges choose among the candidates by their own echo. */
export interface UnconfirmedSubnet {
  subnet: SubnetName;
  /** One line: why the controller judges no candidate healthy, e.g. "p is unhealthy; s is unhealthy". */
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
  /** Subnets served on the edges' decision alone (no candidate healthy), sorted by name. Shared: do
   *  not modify. They are in `servedBy` (their first candidate) and `candidates`, not in `unserved`. */
  unconfirmed: readonly UnconfirmedSubnet[];
  /** The active serving agent of every served subnet, by subnet name. */
  servedBy: ReadonlyMap<SubnetName, AgentName>;
  /** Subnets more than one agent may serve (serving groups): those agents in serving order. */
  candidates: ReadonlyMap<SubnetName, readonly AgentName[]>;
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

// --- internal ---------------------------------------------------------------------------------------

export interface SubnetInfo {
  subnet: Subnet;
  prefixes: ParsedPrefix[];
  /** Canonical prefix texts, sorted (shared by every config that lists this subnet alone). */
  texts: readonly string[];
  /**
   * `map-to`: the real (LAN) prefixes, merged, which only its own serving box sees (its forward
   * chain runs between the translations); `prefixes`/`texts` are then the mapped ones. Absent: not mapped.
   */
  realPrefixes?: ParsedPrefix[];
  realTexts?: readonly string[];
  /** Overlap cluster (subnets whose prefixes overlap are served together); id = first member's name. */
  cluster: string;
  /** Everything about the subnet that reaches a config. */
  sig: string;
}

export interface RuleInfo {
  rule: Rule;
  from: SubnetName[];
  to: SubnetName[];
  flows: NormalizedPorts[];
  /** PortRange messages per flow, built once and shared by every agent's FlowRule. */
  portRanges: PortRange[][];
  sig: string;
}

export interface ProbeEntry {
  /** "<rule>/<index in the rule's probes>". */
  name: string;
  probe: RuleProbe;
}

export interface PolicyIndex {
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
  probesBySubnet: Map<SubnetName, ProbeEntry[]>;
  resolver: NameResolver;
  groupsSig: string;
  /** The policy's agents (underlays, relay) by name, and their signature. */
  policyAgents: Map<string, PolicyAgent>;
  agentsSig: string;
}

export interface Reduction {
  fromByAgent: Map<AgentName, SubnetName[]>;
  toByAgent: Map<AgentName, SubnetName[]>;
  /** Merged prefixes of all served source / destination subnets. */
  fromAll: readonly string[];
  toAll: readonly string[];
}

export interface AgentMeta {
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

/** What the compiler keeps between calls (everything but the policy index, which steps take as a parameter). */
export interface CompilerState {
  readonly cache: PrefixCache;
  readonly keepalive: number;
  readonly probeInterval: number;
  readonly isHashed: boolean;
  readonly liveness: { intervalMs: number; multiplier: number; holdDownMs: number; port: number };
  agents: Map<AgentName, AgentMeta>;
  overlayHosts: { 4: bigint[]; 6: bigint[] };
  overlayHosts4: number[];
  served: Map<SubnetName, AgentName>;
  /** Subnets more than one agent may serve (a serving group): those agents in serving order, the
   *  ones judged healthy first. Only for served subnets; the same array for a cluster's members. */
  candidates: Map<SubnetName, readonly AgentName[]>;
  unservedReason: Map<SubnetName, string>;
  /** Served subnets whose serving group has no candidate judged healthy: why (the edges decide). */
  unconfirmedReason: Map<SubnetName, string>;
  localByAgent: Map<AgentName, SubnetName[]>;
  reductions: Map<string, Reduction>;
  configs: Map<AgentName, AgentConfig>;
  /** Path view of each agent, built on demand; reset with the inventory or the policy's agents. */
  pathAgents: Map<AgentName, PathAgent>;
  relayCandidates?: RelayCandidate[];
  relaySig: string;
  /** Agents with at least one peer not reached directly (relayed or no path), and those pairs. */
  indirectByAgent: Map<AgentName, Map<AgentName, PairPath>>;
  /** Each relay's forwards by pair, registered by the pair's first agent (by name). */
  relayPairs: Map<AgentName, Map<string, RelayForward[]>>;
  registeredBy: Map<AgentName, Array<{ relay: AgentName; key: string }>>;
  dirtyRelays: Set<AgentName>;
  indirectView?: PairRoute[];
  /** Sorted served/unserved lists of the last result; cleared when serving changes. */
  servingView?: {
    unserved: UnservedSubnet[];
    unconfirmed: UnconfirmedSubnet[];
    servedBy: Map<SubnetName, AgentName>;
    candidates: Map<SubnetName, readonly AgentName[]>;
  };
}

export const EMPTY: readonly string[] = Object.freeze([]);

/** The agents that serve subnet `s`: every candidate of its serving group, or its one server. */
export function serversOf(st: CompilerState, s: SubnetName): readonly AgentName[] {
  const c = st.candidates.get(s);
  if (c) return c;
  const a = st.served.get(s);
  return a === undefined ? NO_AGENTS : [a];
}

const NO_AGENTS: readonly AgentName[] = Object.freeze([]);

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
