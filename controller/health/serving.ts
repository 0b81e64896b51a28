// Serving health: may an agent keep (or take over) the role of gateway for its subnets? PURE.
//
// This follows forwarding, not the control plane. An agent is unhealthy when
//   - its forwarding is broken: every peer probe it runs fails (to peers that are themselves alive)
//     AND every path probe it runs (allow probes) fails; or
//   - it is silent: no config stream and no report for `silentIntervals` report intervals.
// A slow control plane (stream reconnecting, reports late by less than that) never makes an agent
// unhealthy, and neither does a dead peer or a dead server behind a probe. Once unhealthy, an
// agent must look healthy for `holdDownMs` before it is healthy again, so a flapping box does not
// drag its subnets back and forth.
import type { AgentHealth, HealthSnapshot, ProbeHealth } from './types.js';

export interface ServingOptions {
  reportIntervalMs: number;
  silentIntervals: number;
  /** How long an unhealthy agent must look healthy before it is healthy again. */
  holdDownMs: number;
  /** A peer probe counts as failed when the last probe failed and at least this share of the last
   *  10 was lost (one lost echo is not a broken box). */
  peerLossUnhealthyRatio: number;
}

export const DEFAULT_SERVING_OPTIONS: ServingOptions = {
  reportIntervalMs: 10_000,
  silentIntervals: 3,
  holdDownMs: 30_000,
  peerLossUnhealthyRatio: 0.3,
};

export interface ServingState {
  isHealthy: boolean;
  /** Controller clock (ms) since when `isHealthy` has had this value. */
  sinceMs: number;
  /** One line: why unhealthy, or "recovering ..." during the hold-down, or "forwarding". */
  reason: string;
  /** While unhealthy: since when the agent has looked healthy (the hold-down clock); else null. */
  clearSinceMs: number | null;
}

/** Why the agent cannot serve now, or null if nothing says so. Ignores hysteresis. */
export function servingProblem(agent: AgentHealth, probes: readonly ProbeHealth[], agentStates: ReadonlyMap<string, AgentHealth>, nowMs: number, o: ServingOptions): string | null {
  const silentMs = o.reportIntervalMs * o.silentIntervals;
  const reportAgeMs = agent.lastReportAtMs === null ? null : nowMs - agent.lastReportAtMs;
  const streamDownMs = agent.streamDownSinceMs === null ? null : nowMs - agent.streamDownSinceMs;
  if (streamDownMs !== null && streamDownMs >= silentMs && (reportAgeMs === null || reportAgeMs >= silentMs)) {
    return reportAgeMs === null
      ? `silent: never reported, no config stream for ${Math.round(streamDownMs / 1000)} s`
      : `silent: no report for ${Math.round(reportAgeMs / 1000)} s and no config stream`;
  }
  // Forwarding evidence comes only from a report recent enough to believe.
  if (!agent.isReportFresh) return null;
  // A peer that is itself down says nothing about this agent.
  const judged = agent.peers.filter((p) => p.isProbed && agentStates.get(p.name)?.state !== 'down' && agentStates.has(p.name));
  if (judged.length === 0) return null;
  const failed = judged.filter((p) => !p.isReachable && p.lossRatio >= o.peerLossUnhealthyRatio);
  if (failed.length < judged.length) return null;
  const path = probes.filter((p) => p.agent === agent.name && !p.expectDeny && (p.state === 'ok' || p.state === 'down'));
  if (path.some((p) => p.state === 'ok')) return null;
  const peerText = `peer probes to ${failed.map((p) => p.name).join(', ')} failed`;
  return path.length > 0 ? `forwarding broken: ${peerText} and ${path.length} path probe${path.length === 1 ? '' : 's'} failed` : `forwarding broken: ${peerText}`;
}

/**
 * Serving health of every non-revoked agent at `nowMs`, with hysteresis carried in `previous`.
 * An agent seen for the first time starts healthy unless a problem is visible right away, so a
 * controller restart never moves subnets by itself.
 */
export function evaluateServing(
  snapshot: HealthSnapshot,
  nowMs: number,
  options: Partial<ServingOptions> = {},
  previous?: ReadonlyMap<string, ServingState>,
): Map<string, ServingState> {
  const o: ServingOptions = { ...DEFAULT_SERVING_OPTIONS, ...options };
  const agentStates = new Map(snapshot.agents.filter((a) => !a.isRevoked).map((a) => [a.name, a]));
  const out = new Map<string, ServingState>();
  for (const agent of agentStates.values()) {
    const prev = previous?.get(agent.name);
    const problem = servingProblem(agent, snapshot.probes, agentStates, nowMs, o);
    if (problem !== null) {
      out.set(agent.name, { isHealthy: false, sinceMs: prev && !prev.isHealthy ? prev.sinceMs : nowMs, reason: problem, clearSinceMs: null });
    } else if (prev !== undefined && !prev.isHealthy) {
      const clearSinceMs = prev.clearSinceMs ?? nowMs;
      const clearForMs = nowMs - clearSinceMs;
      out.set(agent.name, clearForMs >= o.holdDownMs
        ? { isHealthy: true, sinceMs: nowMs, reason: 'forwarding', clearSinceMs: null }
        : {
          isHealthy: false, sinceMs: prev.sinceMs, clearSinceMs,
          reason: `recovering: healthy for ${Math.round(clearForMs / 1000)} s of ${Math.round(o.holdDownMs / 1000)} s hold-down`,
        });
    } else {
      out.set(agent.name, { isHealthy: true, sinceMs: prev?.sinceMs ?? nowMs, reason: 'forwarding', clearSinceMs: null });
    }
  }
  return out;
}
