// Wires the distributor to controller/policy: one stateful incremental compiler for the live policy
// (PolicyCompiler.update rebuilds only the agents a change touches) and a throw-away one for dry runs.
import { create } from '@bufbuild/protobuf';
import { AgentConfigSchema, type AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { compilePolicy, diffConfig, isAwaitingEnrolment, pairPathJson, PolicyCompiler as IncrementalCompiler, type CompileOptions, type PairRoute } from '../policy/index.js';
import type { Inventory, Policy } from '../policy/types.js';
import type { PolicyCompiler } from './compiler.js';
import type { UnservedView } from './port.js';

const unservedView = (u: { subnet: string; reason: string }): UnservedView => ({ subnet: u.subnet, reason: u.reason, isAwaitingEnrolment: isAwaitingEnrolment(u.reason) });

export function defaultCompiler(options: CompileOptions = {}): PolicyCompiler {
  const live = new IncrementalCompiler(options);
  let primedWith: Policy | null = null;
  let lastPairs: readonly PairRoute[] = [];
  let lastUnserved: UnservedView[] = [];
  const views = (pairs: readonly PairRoute[]) => pairs.map((p) => pairPathJson(p.a, p.b, p.path));
  return {
    compile(policy: Policy, inventory: Inventory): ReadonlyMap<string, AgentConfig> {
      // The first call, and the call after a failed one, start from scratch; later ones are
      // incremental (the compiler works out itself what changed).
      const previous = primedWith;
      primedWith = null;
      const r = previous === null ? live.compile(policy, inventory)
        : previous === policy ? live.update({ inventory })
        : live.update({ policy, inventory });
      primedWith = policy;
      lastPairs = r.indirectPairs;
      lastUnserved = r.unserved.map(unservedView);
      return r.configs;
    },
    preview(policy: Policy, inventory: Inventory) {
      const r = compilePolicy(policy, inventory, options);
      return { configs: r.configs, paths: views(r.indirectPairs), unserved: r.unserved.map(unservedView) };
    },
    indirectPaths: () => views(lastPairs),
    unserved: () => lastUnserved,
    diff(before: AgentConfig | undefined, after: AgentConfig | undefined): string[] {
      const empty = create(AgentConfigSchema);
      return diffConfig(before ?? empty, after ?? empty);
    },
  };
}
