// Serving health: may an agent keep (or take over) the role of gateway for its subnets? PURE.
//
// This follows forwarding, not the control plane. An agent is unhealthy when
//   - it is unreachable: its config stream is down AND every live peer that probes it says its
//     last probe failed. The stream alone is control plane (a controller too busy to take reports,
//     a stream reconnecting); the peers' probes go through the tunnel, so together they say the
//     box is gone (power, uplink) without waiting for its silence. A live peer is one connected
//     now, reporting fresh, not down; peers report as soon as a probe verdict changes;
//   - its forwarding is broken: every peer probe it runs fails, at least one of them to a peer that
//     evidently forwards (alive, and reaching a third peer or passing a path probe in a report
//     newer than the agent's), AND every path probe it runs (allow probes) fails; or
//   - it is silent: no config stream and no report for `silentIntervals` report intervals.
// A slow control plane (stream reconnecting, reports late by less than that) never makes an agent
// unhealthy while a peer still reaches it, and neither does a dead peer or a dead server behind a
// probe. Once unhealthy, an agent must look healthy for `holdDownMs` before it is healthy again,
// so a flapping box does not drag its subnets back and forth; and an agent not heard from since it
// became unhealthy (no stream, no report) does not start that clock: its peers may simply have
// stopped probing it once it lost its subnets.
import type { AgentHealth, HealthSnapshot, ProbeHealth } from './types.js';

export interface ServingOptions {
  reportIntervalMs: number;
  silentIntervals: number;
  /** How long an unhealthy agent must look healthy before it is healthy again. */
  holdDownMs: number;
  /** A peer probe counts as failed when the last probe failed and at least this share of the last
   *  10 was lost (one lost echo is not a broken box). */
  peerLossUnhealthyRatio: number;
  /** How often agents probe their peers (ms): a probe result may be this old when reported. */
  probeIntervalMs: number;
}

export const DEFAULT_SERVING_OPTIONS: ServingOptions = {
  reportIntervalMs: 10_000,
  silentIntervals: 3,
  holdDownMs: 30_000,
  peerLossUnhealthyRatio: 0.3,
  probeIntervalMs: 5_000,
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

/** A peer whose report is evidence about others: connected now, reporting fresh, not down. */
function isLiveWitness(w: AgentHealth): boolean {
  return !w.isRevoked && w.isConnected && w.isReportFresh && w.state !== 'down';
}

/** The peer's fresh report shows it forwarding without `other`: it reaches a third peer, or one of
 *  its allow path probes passes. */
function isForwardingElsewhere(peer: AgentHealth, other: string, index: Index): boolean {
  if (!peer.isReportFresh) return false;
  return (
    peer.peers.some((q) => q.name !== other && q.isProbed && q.isReachable) ||
    (index.probes.get(peer.name) ?? []).some((p) => !p.expectDeny && p.state === 'ok')
  );
}

/** The agent's last report is a full probe round younger than the peer's config stream. */
function isMeasuredSinceBack(agent: AgentHealth, peer: AgentHealth, probeIntervalMs: number): boolean {
  if (peer.streamUpSinceMs === null) return true; // no stream, or not known since when
  return agent.lastReportAtMs !== null && agent.lastReportAtMs - probeIntervalMs >= peer.streamUpSinceMs;
}

/**
 * One evaluation's lookups, built once: every live witness's probe of each agent, and each agent's
 * path probes. Scanning every agent (and every probe) per agent made an evaluation of 10,000 boxes
 * quadratic: 1.5-2.5 s of the leader's event loop every 5 s.
 */
interface Index {
  agents: ReadonlyMap<string, AgentHealth>;
  /** Agent -> the live peers probing it, in agent order, and whether their last probe reached it. */
  views: ReadonlyMap<string, ReadonlyArray<{ name: string; isReachable: boolean }>>;
  /** Agent -> the probes it runs. */
  probes: ReadonlyMap<string, readonly ProbeHealth[]>;
  /** The agents unreachableProblem() found, with why (their peers are not blamed for them). */
  unreachable: Map<string, string>;
}

function buildIndex(snapshot: HealthSnapshot): Index {
  const agents = new Map(snapshot.agents.filter((a) => !a.isRevoked).map((a) => [a.name, a]));
  const views = new Map<string, Array<{ name: string; isReachable: boolean }>>();
  for (const w of agents.values()) {
    if (!isLiveWitness(w)) continue;
    for (const p of w.peers) {
      if (!p.isProbed || p.name === w.name) continue;
      const list = views.get(p.name);
      if (list) list.push({ name: w.name, isReachable: p.isReachable });
      else views.set(p.name, [{ name: w.name, isReachable: p.isReachable }]);
    }
  }
  const probes = new Map<string, ProbeHealth[]>();
  for (const p of snapshot.probes) {
    const list = probes.get(p.agent);
    if (list) list.push(p);
    else probes.set(p.agent, [p]);
  }
  const index: Index = { agents, views, probes, unreachable: new Map() };
  for (const agent of agents.values()) {
    const why = unreachableProblem(agent, index);
    if (why !== null) index.unreachable.set(agent.name, why);
  }
  return index;
}

/**
 * "no config stream and its peers cannot reach it" when the agent's stream is down and every live
 * peer that probes it reports that probe failing (at least one); else null.
 */
function unreachableProblem(agent: AgentHealth, index: Index): string | null {
  if (agent.streamDownSinceMs === null) return null;
  const views = index.views.get(agent.name) ?? [];
  if (views.length === 0 || views.some((v) => v.isReachable)) return null;
  return `no config stream and its peers cannot reach it (probes from ${views.map((v) => v.name).join(', ')} fail)`;
}

/** The peer's report came after the agent's: the peer was alive after the agent's last probe round
 *  (whose failures that report carries), so what it says of itself then is no older than them. */
function isReportedSince(peer: AgentHealth, agent: AgentHealth): boolean {
  return peer.lastReportAtMs !== null && agent.lastReportAtMs !== null && peer.lastReportAtMs >= agent.lastReportAtMs;
}

/**
 * Why the agent cannot serve now, or null if nothing says so. `wasUnhealthy`: it is unhealthy now
 * (the only hysteresis here: see the forwarding evidence below).
 */
function servingProblem(
  agent: AgentHealth,
  index: Index,
  nowMs: number,
  o: ServingOptions,
  wasUnhealthy: boolean,
): string | null {
  const silentMs = o.reportIntervalMs * o.silentIntervals;
  const reportAgeMs = agent.lastReportAtMs === null ? null : nowMs - agent.lastReportAtMs;
  const streamDownMs = agent.streamDownSinceMs === null ? null : nowMs - agent.streamDownSinceMs;
  if (streamDownMs !== null && streamDownMs >= silentMs && (reportAgeMs === null || reportAgeMs >= silentMs)) {
    return reportAgeMs === null
      ? `silent: never reported, no config stream for ${Math.round(streamDownMs / 1000)} s`
      : `silent: no report for ${Math.round(reportAgeMs / 1000)} s and no config stream`;
  }
  const unreachableWhy = index.unreachable.get(agent.name);
  if (unreachableWhy !== undefined) return unreachableWhy;
  // Forwarding evidence comes only from a report recent enough to believe.
  if (!agent.isReportFresh) return null;
  // A peer it reaches, whichever, shows its tunnel carries packets both ways: it forwards. (A
  // failure to one peer is that peer's, or that link's. Counting only the peers judged below, a
  // box lost its subnet when its one judged peer sat on a lossy link, though it reached another.)
  if (agent.peers.some((p) => p.isProbed && p.isReachable)) return null;
  // Only a peer that evidently forwards says something about this agent: not down, not
  // unreachable, and reaching another peer or passing a path probe. Between two boxes that probe
  // only each other, a failing probe does not say which one is broken (the other may have just lost
  // power, with its stream not yet found dead): their streams and silence decide instead.
  // Nor does a failure measured before the peer came back: a box that returns reports at once, and
  // those that probed it while it was dead report their failures for up to a probe round more.
  // Nor a peer's report older than the agent's: a box that has just lost power still has a fresh
  // report saying it forwards, and its stream is not found dead for seconds more; its peers'
  // failing probes of it then blamed them (a sending box with one peer lost its own subnet, and
  // the standby that had just taken over lost its gateway). Once the agent is unhealthy, the
  // peer's fresh report is enough to keep it so: the two report in turn, and the strict order
  // alone would let the verdict come and go with each report.
  const judged = agent.peers.filter((p) => {
    const peer = index.agents.get(p.name);
    return (
      p.isProbed &&
      peer !== undefined &&
      peer.state !== 'down' &&
      !index.unreachable.has(p.name) &&
      isForwardingElsewhere(peer, agent.name, index) &&
      (wasUnhealthy || isReportedSince(peer, agent)) &&
      isMeasuredSinceBack(agent, peer, o.probeIntervalMs)
    );
  });
  if (judged.length === 0) return null;
  const failed = judged.filter((p) => !p.isReachable && p.lossRatio >= o.peerLossUnhealthyRatio);
  if (failed.length < judged.length) return null;
  const path = (index.probes.get(agent.name) ?? []).filter(
    (p) => !p.expectDeny && (p.state === 'ok' || p.state === 'down'),
  );
  if (path.some((p) => p.state === 'ok')) return null;
  const peerText = `peer probes to ${failed.map((p) => p.name).join(', ')} failed`;
  return path.length > 0
    ? `forwarding broken: ${peerText} and ${path.length} path probe${path.length === 1 ? '' : 's'} failed`
    : `forwarding broken: ${peerText}`;
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
  const index = buildIndex(snapshot);
  const out = new Map<string, ServingState>();
  for (const agent of index.agents.values()) {
    const prev = previous?.get(agent.name);
    const problem = servingProblem(agent, index, nowMs, o, prev !== undefined && !prev.isHealthy);
    if (problem !== null) {
      out.set(agent.name, {
        isHealthy: false,
        sinceMs: prev && !prev.isHealthy ? prev.sinceMs : nowMs,
        reason: problem,
        clearSinceMs: null,
      });
    } else if (
      prev !== undefined &&
      !prev.isHealthy &&
      agent.streamDownSinceMs !== null &&
      (agent.lastReportAtMs === null || agent.lastReportAtMs <= prev.sinceMs)
    ) {
      // Nothing heard from it since it became unhealthy: no sign of recovery, whatever its peers
      // stopped saying (they drop a box from their probes once it serves nothing of theirs).
      out.set(agent.name, {
        isHealthy: false,
        sinceMs: prev.sinceMs,
        reason: 'not heard from since it became unhealthy (no config stream, no report)',
        clearSinceMs: null,
      });
    } else if (prev !== undefined && !prev.isHealthy) {
      const clearSinceMs = prev.clearSinceMs ?? nowMs;
      const clearForMs = nowMs - clearSinceMs;
      out.set(
        agent.name,
        clearForMs >= o.holdDownMs
          ? { isHealthy: true, sinceMs: nowMs, reason: 'forwarding', clearSinceMs: null }
          : {
              isHealthy: false,
              sinceMs: prev.sinceMs,
              clearSinceMs,
              reason: `recovering: healthy for ${Math.round(clearForMs / 1000)} s of ${Math.round(o.holdDownMs / 1000)} s hold-down`,
            },
      );
    } else {
      out.set(agent.name, {
        isHealthy: true,
        sinceMs: prev?.sinceMs ?? nowMs,
        reason: 'forwarding',
        clearSinceMs: null,
      });
    }
  }
  return out;
}
