// The health model: what the controller knows about each agent (input), and the states it derives
// for every agent, link (pair of agents that are peers) and path probe (output). Pure data; the
// snapshot is plain JSON (no bigint) so the API serves it as it is.
import type { ReportRequest } from '../../proto/gen/crosslink/v1/agent_pb.js';

/**
 * ok: works. degraded: works but something needs attention (stale config, failed apply, slow
 * handshakes, probe loss). down: does not work. unknown: not enough fresh information to say.
 */
export type HealthState = 'ok' | 'degraded' | 'down' | 'unknown';

export const HEALTH_STATES: readonly HealthState[] = ['ok', 'degraded', 'down', 'unknown'];

/** Worst first: down, degraded, unknown, ok. Used for the overall state, sorting and exit codes. */
export const STATE_SEVERITY: Readonly<Record<HealthState, number>> = { down: 3, degraded: 2, unknown: 1, ok: 0 };

export function worstState(states: Iterable<HealthState>): HealthState | null {
  let worst: HealthState | null = null;
  for (const s of states) if (worst === null || STATE_SEVERITY[s] > STATE_SEVERITY[worst]) worst = s;
  return worst;
}

/**
 * A subnet of the policy that no box serves (down: every flow to or from it fails) or that its boxes
 * serve by their own choice, none healthy to the controller (degraded). It counts in the overall
 * state, as `crosslink check` counts it. A subnet whose boxes have not enrolled yet is not one.
 */
export interface SubnetIssue {
  subnet: string;
  state: HealthState;
  reason: string;
}

/** A path probe as the agent's config carries it (the proto `Probe` message fits this shape). */
export interface ProbeSpec {
  /** Stable name "<rule>/<index>". */
  name: string;
  target: string;
  protocol: string;
  /** 0 for icmp. */
  port: number;
  expectDeny: boolean;
}

/** What the controller knows about one agent at evaluation time. */
export interface AgentHealthInput {
  name: string;
  /** Revoked agents are listed with state unknown and take no part in the overall state or links. */
  isRevoked: boolean;
  /** A WatchConfig stream is open now. */
  isConnected: boolean;
  /** Since when (controller clock, ms) its oldest open stream has been open; absent: unknown. */
  connectedSinceMs?: number | null;
  /** Controller clock (ms) of the last Report received; null: none since the controller started. */
  lastReportAtMs: number | null;
  /** Generation the controller wants this agent to run; 0: none compiled yet. */
  desiredGeneration: number;
  /** The last Report received, as sent; null: none. */
  lastReport: ReportRequest | null;
  /** Names of the peers its current config gives it (each pair of peers is a link). */
  peers: readonly string[];
  /** The path probes its current config asks it to run. */
  probes: readonly ProbeSpec[];
  /** Controller clock (ms) of its enrolment; absent: unknown. A box enrolled after the controller
   *  started is judged from its enrolment (grace, and "never connected"), not from the start. */
  enrolledAtMs?: number | null;
}

export interface EvaluateOptions {
  /** How often agents report (ms). An agent silent for `silentIntervals` of these is not ok. */
  reportIntervalMs: number;
  silentIntervals: number;
  /** Handshake older than this: link degraded. */
  handshakeDegradedSeconds: number;
  /** Handshake older than this (or none since the link was configured this long ago): link down. */
  handshakeDownSeconds: number;
  /** Peer-probe loss (0..1, over the agent's last 10 probes) at or above this: link degraded. */
  lossDegradedRatio: number;
  /** A config newer than the applied one is tolerated this long before the agent is "stale". */
  staleGraceMs: number;
  /** A probe result older than this (agent clock) counts as no result: state unknown. */
  probeResultMaxAgeMs: number;
  /** Controller start (ms). An agent that has not reported since is unknown, not down, until
   *  `silentIntervals` report intervals have passed since then. null: no grace. */
  controllerStartedAtMs: number | null;
}

export const DEFAULT_EVALUATE_OPTIONS: EvaluateOptions = {
  reportIntervalMs: 10_000,
  silentIntervals: 3,
  handshakeDegradedSeconds: 180,
  handshakeDownSeconds: 300,
  lossDegradedRatio: 0.2,
  staleGraceMs: 30_000,
  probeResultMaxAgeMs: 60_000,
  controllerStartedAtMs: null,
};

export interface HealthStatus {
  state: HealthState;
  /** Controller clock (ms) since when the subject has been in this state. */
  sinceMs: number;
  /** One line saying why, e.g. "no handshake for 190 s". */
  reason: string;
}

/** One agent's view of one of its peers, from its last report. */
export interface PeerView {
  name: string;
  /** Seconds since the latest handshake (agent clock, aged by the report's age); null: never. */
  handshakeAgeSeconds: number | null;
  rxBytes: number;
  txBytes: number;
  /** false: no peer probe has run yet (the three fields below mean nothing). */
  isProbed: boolean;
  isReachable: boolean;
  /** RTT of the last successful probe (ms); null: none. */
  rttMs: number | null;
  lossRatio: number;
}

export interface ApplyErrorView {
  step: string;
  command: string;
  exitCode: number;
  /** First line of stderr. */
  stderr: string;
  isTerminal: boolean;
}

export interface AgentHealth extends HealthStatus {
  name: string;
  isRevoked: boolean;
  isConnected: boolean;
  lastReportAtMs: number | null;
  /** Seconds since the last report (controller clock); null: none. */
  lastReportAgeSeconds: number | null;
  /** The last report is recent enough to be believed (younger than `silentIntervals`). */
  isReportFresh: boolean;
  desiredGeneration: number;
  /** Since when (controller clock) `desiredGeneration` has been the desired one. */
  desiredSinceMs: number;
  /** null: never reported. */
  appliedGeneration: number | null;
  seenGeneration: number | null;
  applyErrors: ApplyErrorView[];
  /** Since when the config stream has been down (controller clock); null: connected. */
  streamDownSinceMs: number | null;
  /** Since when the config stream has been up (controller clock); null: down, or not known. */
  streamUpSinceMs: number | null;
  /** From the last report (also when stale), sorted by name. */
  peers: PeerView[];
}

/** One end of a link: what that agent reported about the other. */
export interface LinkEnd {
  agent: string;
  /** false: this end's view is missing or too old to use. */
  hasView: boolean;
  handshakeAgeSeconds: number | null;
  isProbed: boolean;
  isReachable: boolean;
  rttMs: number | null;
  lossRatio: number;
}

export interface LinkHealth extends HealthStatus {
  /** "a:b" with a < b. */
  name: string;
  agents: [string, string];
  /** Youngest handshake either end saw; null: none. */
  handshakeAgeSeconds: number | null;
  /** Mean RTT of the ends' last successful peer probes (ms); null: none. */
  rttMs: number | null;
  /** Worst loss of the two ends; null: neither end has probed. */
  lossRatio: number | null;
  /** Since when (controller clock) the link has been in the configs. */
  configuredSinceMs: number;
  ends: [LinkEnd, LinkEnd];
}

export interface ProbeHealth extends HealthStatus {
  /** "<agent>/<probe name>": probe names are unique per agent, not across agents. */
  id: string;
  agent: string;
  name: string;
  target: string;
  protocol: string;
  port: number;
  expectDeny: boolean;
  rttMs: number | null;
  /** Agent clock (ms) of the result; null: no result. */
  checkedAtMs: number | null;
  /** The agent's one-line detail, "" when none. */
  detail: string;
}

export type StateCounts = Record<HealthState, number>;

export interface HealthSnapshot extends HealthStatus {
  /** Controller clock (ms) of the evaluation. */
  atMs: number;
  counts: { agents: StateCounts; links: StateCounts; probes: StateCounts };
  /** Sorted by name; revoked agents included (state unknown), not counted. */
  agents: AgentHealth[];
  /** Sorted by name. */
  links: LinkHealth[];
  /** Sorted by id. */
  probes: ProbeHealth[];
}

export type HealthSubjectKind = 'overall' | 'agent' | 'link' | 'probe' | 'serving' | 'subnet';

/**
 * A state change, for the history. Subjects: "overall", "agent:NAME", "link:A:B", "probe:AGENT/NAME",
 * "serving:NAME" for serving health (healthy is recorded as ok, unhealthy as down), and
 * "subnet:NAME" when a subnet changes hands (ok: its primary serves it, degraded: a standby does,
 * down: nobody can).
 */
export interface HealthEvent {
  subject: string;
  kind: HealthSubjectKind;
  /** null: the subject appeared (first evaluation, new agent or link). */
  from: HealthState | null;
  /** null: the subject disappeared (agent deleted, link no longer in the configs). */
  to: HealthState | null;
  atMs: number;
  reason: string;
}

export function subjectOf(kind: HealthSubjectKind, name: string): string {
  return kind === 'overall' ? 'overall' : `${kind}:${name}`;
}

export function linkName(a: string, b: string): string {
  return a < b ? `${a}:${b}` : `${b}:${a}`;
}
