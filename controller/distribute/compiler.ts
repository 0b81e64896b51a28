// What the distributor needs from the policy engine. The engine is pure; this seam lets the
// distributor be tested with a stand-in and keeps the wiring to controller/policy in one place.
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { Inventory, Policy } from '../policy/types.js';
import type { PairPathView, UnservedView } from './port.js';

export interface PolicyCompiler {
  /**
   * Every agent's config for this policy and inventory (keyed by agent name). An inventory agent
   * the result leaves out gets a config with no peers, routes or rules (deny everything).
   * `hint.changedAgents` names the inventory entries that changed since the previous call with the
   * same policy, so an incremental compiler can reuse the rest; absent means "anything may have
   * changed".
   */
  compile(policy: Policy, inventory: Inventory, hint?: { changedAgents?: readonly string[] }): ReadonlyMap<string, AgentConfig>;
  /** A one-off compile for a dry run: must not disturb the state `compile` keeps. */
  preview(policy: Policy, inventory: Inventory): { configs: ReadonlyMap<string, AgentConfig>; paths: PairPathView[]; unserved: UnservedView[] };
  /** The pairs of the last `compile` that do not peer directly (relayed, or no path). */
  indirectPaths(): PairPathView[];
  /** The subnets the last `compile` left unserved, and why (e.g. "cc-edge does not advertise fd20:8::/64"). */
  unserved(): UnservedView[];
  /** Human-readable change lines between two configs of one agent (either may be absent). */
  diff(before: AgentConfig | undefined, after: AgentConfig | undefined): string[];
}
