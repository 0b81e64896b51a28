// The liveness settings of a config, with the agent's defaults for absent or 0 fields
// (proto: AgentConfig.liveness). PURE. The one place the defaults live (docs/health.md: 150 ms x 5
// detects in 825 ms and is quiet on a link losing 5 % of its packets).
import type { Liveness } from '../../proto/gen/crosslink/v1/agent_pb.js';

export const DEFAULT_ECHO_INTERVAL_MS = 150;
export const DEFAULT_ECHO_MULTIPLIER = 5;
export const DEFAULT_HOLD_DOWN_MS = 30_000;
export const DEFAULT_LIVENESS_PORT = 51821;

export interface LivenessSettings {
  intervalMs: number;
  multiplier: number;
  holdDownMs: number;
  port: number;
}

/** `l` with every absent or 0 field replaced by its default (a port above 65535 is the caller's to refuse). */
export function livenessSettings(l: Liveness | undefined): LivenessSettings {
  return {
    intervalMs: l?.intervalMs || DEFAULT_ECHO_INTERVAL_MS,
    multiplier: l?.multiplier || DEFAULT_ECHO_MULTIPLIER,
    holdDownMs: l?.holdDownMs || DEFAULT_HOLD_DOWN_MS,
    port: l?.port || DEFAULT_LIVENESS_PORT,
  };
}
