// The content hash of an AgentConfig: sha256 (hex) of its binary encoding with `generation` and
// `content_hash` cleared. protobuf-es encodes fields in field-number order and repeated fields in
// list order, and the compiler emits sorted lists, so equal content gives equal bytes.
import { createHash } from 'node:crypto';
import { create, toBinary } from '@bufbuild/protobuf';
import { AgentConfigSchema, type AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';

export function contentHashOf(config: AgentConfig): string {
  const bare = create(AgentConfigSchema, { ...config, generation: 0n, contentHash: '' });
  return createHash('sha256').update(toBinary(AgentConfigSchema, bare)).digest('hex');
}
