// What the REST API needs from distribution (implemented by controller/distribute/distributor.ts).
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { Policy } from '../policy/types.js';
import type { LiveBox, LiveRequest } from '../trace/live-plan.js';

export interface AgentLiveView {
  /** A WatchConfig stream is open now. */
  isConnected: boolean;
  connectedSinceMs: number | null;
  /** Subnets this agent serves under the current policy and inventory. */
  servedSubnets: string[];
  /** Generation and hash of the config the controller wants it to run (0/"" if none). */
  desiredGeneration: number;
  desiredHash: string;
}

export interface AgentDiff {
  agent: string;
  /** Human-readable lines, e.g. "+ peer lcc-civic-hall (10.60.0.0/16)", "- rule care-records tcp/443". */
  changes: string[];
  /** Its config stream is open now: it gets the change at once (else when it reconnects). */
  isConnected: boolean;
}

/** How two boxes with a permitted flow reach each other (controller/policy/paths.ts pairPathJson). */
export interface PairPathView {
  a: string;
  b: string;
  kind: 'direct' | 'relay' | 'none';
  /** The relays, first choice first (kind relay). */
  relays: string[];
  /** direct: the shared underlay; relay: a's and b's underlays. */
  underlays: string[];
  /** kind none: why. */
  reason: string;
}

/** A subnet no box serves, and why. */
export interface UnservedView {
  subnet: string;
  reason: string;
  /** Only because no box of its `via` has enrolled yet (not deployed), not an enrolled box's fault. */
  isAwaitingEnrolment: boolean;
}

/** A subnet served on its boxes' own decision: the controller judges none of its serving group's
 *  candidates healthy (it lost their streams, or is cut off from them while they still reach each
 *  other), so it cannot confirm which, if any, serves it; the candidates choose by their own echo. */
export interface UnconfirmedView {
  subnet: string;
  /** The serving group's candidates in order; the first is the one `servingAgent` names. */
  candidates: string[];
  /** Why none is healthy, e.g. "lth-sjuh is unhealthy; lth-sjuh-standby is unhealthy". */
  reason: string;
}

export interface DryRun {
  /** Agents whose config would change. */
  agents: AgentDiff[];
  /** Pairs that would not peer directly (relayed, or with no path), by name. */
  paths: PairPathView[];
  /** Subnets no enrolled, healthy box would serve, and why. */
  unserved: UnservedView[];
}

export interface DistributionPort {
  /** The policy that became current (validated). Recompiles affected agents and pushes changed configs. */
  setPolicy(policy: Policy, version: number): Promise<void>;
  /** Agents whose inventory entry changed (enrolled, revoked, deleted, endpoint or advertised changed). */
  agentsChanged(names: string[]): Promise<void>;
  /** Per-agent diff between the current compiled configs and those `candidate` would give. Changes nothing. */
  dryRun(candidate: Policy): Promise<DryRun>;
  /** Pairs that do not peer directly under the current policy and inventory: relayed, or with no path. */
  indirectPaths(): PairPathView[];
  /** Subnets of the current policy that no enrolled, healthy box serves now, and why. */
  unservedSubnets(): UnservedView[];
  /** Subnets of the current policy served on their boxes' own decision (no candidate the controller
   *  judges healthy), and why. */
  unconfirmedSubnets(): UnconfirmedView[];
  /** The policy being distributed and its version; null before the first. */
  currentPolicy(): { policy: Policy; version: number } | null;
  /** The box serving `subnet` after the last compile; null: nobody (or no such subnet). */
  servingAgent(subnet: string): string | null;
  liveView(name: string): AgentLiveView;
  currentConfig(name: string): AgentConfig | undefined;
  /** Sends a live trace's requests to the boxes' open streams and waits for their answers (at most
   *  the window plus a grace period); boxes not connected or silent are listed as such. */
  runLiveTrace(requests: readonly LiveRequest[], windowMs: number): Promise<LiveBox[]>;
  /** Live traces running now (the API bounds them). */
  liveTracesInFlight(): number;
  /** Policy compiled and distribution running. */
  isReady(): boolean;
  connectedCount(): number;
}
