// An agent's config in distribution: the current one with its generation and hash, and how it is made.
import { create } from '@bufbuild/protobuf';
import { AgentConfigSchema, type AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { InventoryAgent } from '../policy/types.js';
import { contentHash as contentHashOf } from '../policy/index.js';

/** The config an agent has now, as pushed. */
export interface Current {
  config: AgentConfig;
  generation: number;
  hash: string;
}

export function emptyConfig(a: InventoryAgent): AgentConfig {
  return create(AgentConfigSchema, { agentName: a.name, overlayAddress: a.overlayAddress });
}

export function withHash(c: AgentConfig): AgentConfig {
  return c.contentHash ? c : create(AgentConfigSchema, { ...c, contentHash: contentHashOf(c) });
}

/** A copy carrying generation and hash; the compiler's object is left alone (it may cache it). */
export function stamp(c: AgentConfig, generation: number, hash: string): AgentConfig {
  return create(AgentConfigSchema, { ...c, generation: BigInt(generation), contentHash: hash });
}
