// The liveness settings of a config, with the agent's defaults for absent or 0 fields
// (proto: AgentConfig.liveness). PURE.
import type { Liveness } from '../../proto/gen/crosslink/v1/agent_pb.js';

export const DEFAULT_ECHO_INTERVAL_MS = 200;
export const DEFAULT_ECHO_MULTIPLIER = 3;
export const DEFAULT_HOLD_DOWN_MS = 30_000;
export const DEFAULT_LIVENESS_PORT = 51821;

export interface LivenessSettings {
  intervalMs: number;
  multiplier: number;
  holdDownMs: number;
  port: number;
}

/** `l` with every absent or 0 field replaced by its default. A port above 65535 is refused. */
export function livenessSettings(l: Liveness | undefined): LivenessSettings {
  const port = l?.port || DEFAULT_LIVENESS_PORT;
  if (port > 65535) throw new RangeError(`liveness.port ${port} is above 65535`);
  return {
    intervalMs: l?.intervalMs || DEFAULT_ECHO_INTERVAL_MS,
    multiplier: l?.multiplier || DEFAULT_ECHO_MULTIPLIER,
    holdDownMs: l?.holdDownMs || DEFAULT_HOLD_DOWN_MS,
    port,
  };
}
