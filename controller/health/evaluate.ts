// Derives the state of every agent, link and path probe from what the agents reported and what the
// controller knows (desired generation, stream, last report time). PURE: no I/O and no clock; the
// time is an argument, and `sinceMs` is carried over from the previous snapshot while a state holds.
import type { ReportRequest } from '../../proto/gen/crosslink/v1/agent_pb.js';
import {
  DEFAULT_EVALUATE_OPTIONS,
  linkName,
  subjectOf,
  worstState,
  type AgentHealth,
  type AgentHealthInput,
  type ApplyErrorView,
  type EvaluateOptions,
  type HealthEvent,
  type HealthSnapshot,
  type HealthState,
  type LinkEnd,
  type LinkHealth,
  type PeerView,
  type ProbeHealth,
  type ProbeSpec,
  type StateCounts,
  type SubnetIssue,
} from './types.js';

type Finding = [HealthState, string];

/** The worst finding's state, and the reasons of every finding with that state. */
function conclude(findings: Finding[], okReason: string): { state: HealthState; reason: string } {
  const state = worstState(findings.map((f) => f[0]));
  if (state === null) return { state: 'ok', reason: okReason };
  return {
    state,
    reason: findings
      .filter((f) => f[0] === state)
      .map((f) => f[1])
      .join('; '),
  };
}

function since(prev: { state: HealthState; sinceMs: number } | undefined, state: HealthState, nowMs: number): number {
  return prev !== undefined && prev.state === state ? prev.sinceMs : nowMs;
}

const secs = (ms: number): number => Math.max(0, Math.round(ms / 1000));
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
const pct = (ratio: number): string => `${Math.round(ratio * 100)}%`;
const firstLine = (s: string): string => s.trim().split('\n')[0]?.trim() ?? '';

function peerViews(report: ReportRequest, lastReportAtMs: number, nowMs: number): PeerView[] {
  // Handshake ages are computed on the agent's clock at report time, then aged by the report's own
  // age on ours, so clock skew between the boxes and the controller cancels out.
  const agentNowMs = report.agentTimeUnixMs > 0n ? Number(report.agentTimeUnixMs) : lastReportAtMs;
  const reportAgeMs = Math.max(0, nowMs - lastReportAtMs);
  return report.peers
    .map((p): PeerView => ({
      name: p.name,
      handshakeAgeSeconds:
        p.latestHandshakeUnix > 0n ? secs(agentNowMs - Number(p.latestHandshakeUnix) * 1000 + reportAgeMs) : null,
      rxBytes: Number(p.rxBytes),
      txBytes: Number(p.txBytes),
      isProbed: p.isProbed,
      isReachable: p.isProbed && p.isReachable,
      rttMs: p.isProbed && p.rttMs > 0 ? p.rttMs : null,
      lossRatio: p.isProbed ? p.lossRatio : 0,
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function applyErrorText(e: ApplyErrorView): string {
  const what = e.command ? `${e.command} exited ${e.exitCode}` : `${e.step} failed`;
  return e.stderr ? `${what}: ${e.stderr}` : what;
}

function evaluateAgent(
  a: AgentHealthInput,
  nowMs: number,
  o: EvaluateOptions,
  prev: AgentHealth | undefined,
): AgentHealth {
  const silentMs = o.reportIntervalMs * o.silentIntervals;
  const report = a.lastReportAtMs === null ? null : a.lastReport;
  const ageMs = report === null || a.lastReportAtMs === null ? null : Math.max(0, nowMs - a.lastReportAtMs);
  const isReportFresh = ageMs !== null && ageMs < silentMs;
  const desiredSinceMs =
    prev !== undefined && prev.desiredGeneration === a.desiredGeneration ? prev.desiredSinceMs : nowMs;
  const streamDownSinceMs = a.isConnected ? null : (prev?.streamDownSinceMs ?? nowMs);
  const streamUpSinceMs = a.isConnected ? (a.connectedSinceMs ?? null) : null;
  const applied = report === null ? null : Number(report.generationApplied);
  const applyErrors: ApplyErrorView[] = (report?.applyErrors ?? []).map((e) => ({
    step: e.step,
    command: e.command,
    exitCode: e.exitCode,
    stderr: firstLine(e.stderr),
    isTerminal: e.isTerminal,
  }));

  const findings: Finding[] = [];
  if (a.isRevoked) {
    findings.push(['unknown', 'revoked']);
  } else if (report === null || ageMs === null) {
    const startedAgoMs = o.controllerStartedAtMs === null ? null : Math.max(0, nowMs - o.controllerStartedAtMs);
    // A box enrolled since the controller started is judged from its enrolment: "not reported since
    // controller start 215 s ago" about a box enrolled 5 s ago was a wrong answer.
    const enrolledAgoMs =
      a.enrolledAtMs === undefined || a.enrolledAtMs === null ? null : Math.max(0, nowMs - a.enrolledAtMs);
    const isNew = enrolledAgoMs !== null && (startedAgoMs === null || enrolledAgoMs < startedAgoMs);
    const graceAgoMs = isNew ? enrolledAgoMs : startedAgoMs;
    if (graceAgoMs !== null && graceAgoMs < silentMs) {
      findings.push([
        'unknown',
        isNew
          ? `enrolled ${secs(graceAgoMs)} s ago, no report yet`
          : `no report yet (controller started ${secs(graceAgoMs)} s ago)`,
      ]);
    } else if (a.isConnected) {
      findings.push(['degraded', 'config stream connected but no report received']);
    } else if (isNew) {
      findings.push([
        'down',
        `enrolled ${secs(graceAgoMs!)} s ago and not connected since: is its agent running (crosslink agent run)?`,
      ]);
    } else {
      findings.push([
        'down',
        startedAgoMs === null
          ? 'never reported, no config stream'
          : `not reported since controller start ${secs(startedAgoMs)} s ago, no config stream`,
      ]);
    }
  } else {
    if (!isReportFresh) {
      const text = `not reported for ${secs(ageMs)} s (${plural(Math.floor(ageMs / o.reportIntervalMs), 'interval')})`;
      findings.push(a.isConnected ? ['degraded', `${text}, config stream connected`] : ['down', text]);
    }
    const [first] = applyErrors;
    if (first) {
      const more = applyErrors.length > 1 ? ` (+${applyErrors.length - 1} more)` : '';
      findings.push([
        'degraded',
        `apply failed${first.isTerminal ? ' (config rejected, not retried)' : ''}: ${applyErrorText(first)}${more}`,
      ]);
    }
    if (a.desiredGeneration > 0 && applied !== a.desiredGeneration && nowMs - desiredSinceMs >= o.staleGraceMs) {
      findings.push(['degraded', `generation ${applied} applied, ${a.desiredGeneration} current`]);
    }
    if (isReportFresh && streamDownSinceMs !== null && nowMs - streamDownSinceMs >= silentMs) {
      findings.push(['degraded', `config stream down for ${secs(nowMs - streamDownSinceMs)} s`]);
    }
  }
  const okReason = `generation ${applied ?? 0} applied, reported ${secs(ageMs ?? 0)} s ago`;
  const { state, reason } = conclude(findings, okReason);
  return {
    name: a.name,
    state,
    sinceMs: since(prev, state, nowMs),
    reason,
    isRevoked: a.isRevoked,
    isConnected: a.isConnected,
    lastReportAtMs: a.lastReportAtMs,
    lastReportAgeSeconds: ageMs === null ? null : secs(ageMs),
    isReportFresh: isReportFresh && !a.isRevoked,
    desiredGeneration: a.desiredGeneration,
    desiredSinceMs,
    appliedGeneration: applied,
    seenGeneration: report === null ? null : Number(report.generationSeen),
    applyErrors,
    streamDownSinceMs,
    streamUpSinceMs,
    peers: report === null || a.lastReportAtMs === null ? [] : peerViews(report, a.lastReportAtMs, nowMs),
  };
}

function linkEnd(agent: AgentHealth, peer: string): LinkEnd & { why: string } {
  const view = agent.isReportFresh ? agent.peers.find((p) => p.name === peer) : undefined;
  if (view === undefined) {
    return {
      agent: agent.name,
      hasView: false,
      handshakeAgeSeconds: null,
      isProbed: false,
      isReachable: false,
      rttMs: null,
      lossRatio: 0,
      why: agent.isReportFresh ? `${agent.name} has no status for ${peer} yet` : `${agent.name} not reporting`,
    };
  }
  return {
    agent: agent.name,
    hasView: true,
    handshakeAgeSeconds: view.handshakeAgeSeconds,
    isProbed: view.isProbed,
    isReachable: view.isReachable,
    rttMs: view.rttMs,
    lossRatio: view.lossRatio,
    why: '',
  };
}

function evaluateLink(
  x: AgentHealth,
  y: AgentHealth,
  nowMs: number,
  o: EvaluateOptions,
  prev: LinkHealth | undefined,
): LinkHealth {
  const name = linkName(x.name, y.name);
  const configuredSinceMs = prev?.configuredSinceMs ?? nowMs;
  const withWhy = [linkEnd(x, y.name), linkEnd(y, x.name)];
  const ends = withWhy.map(({ why: _why, ...end }) => end) as [LinkEnd, LinkEnd];
  const viewed = ends.filter((e) => e.hasView);
  const peerOf = (e: LinkEnd): string => (e.agent === x.name ? y.name : x.name);

  const findings: Finding[] = [];
  for (const agent of [x, y])
    if (agent.state === 'down') findings.push(['down', `agent ${agent.name} down: ${agent.reason}`]);

  const ages = viewed.map((e) => e.handshakeAgeSeconds).filter((s): s is number => s !== null);
  const handshakeAgeSeconds = ages.length > 0 ? Math.min(...ages) : null;
  if (viewed.length === 0) {
    findings.push(['unknown', withWhy.map((e) => e.why).join(', ')]);
  } else if (handshakeAgeSeconds === null) {
    const configuredAgo = secs(nowMs - configuredSinceMs);
    if (configuredAgo >= o.handshakeDownSeconds)
      findings.push(['down', `no handshake since configured ${configuredAgo} s ago`]);
    else if (configuredAgo >= o.handshakeDegradedSeconds)
      findings.push(['degraded', `no handshake since configured ${configuredAgo} s ago`]);
    else findings.push(['unknown', 'no handshake yet']);
  } else if (handshakeAgeSeconds >= o.handshakeDownSeconds) {
    findings.push(['down', `no handshake for ${handshakeAgeSeconds} s`]);
  } else if (handshakeAgeSeconds >= o.handshakeDegradedSeconds) {
    findings.push(['degraded', `no handshake for ${handshakeAgeSeconds} s`]);
  }

  const probed = viewed.filter((e) => e.isProbed);
  const [one] = probed;
  if (one && probed.every((e) => e.lossRatio >= 1)) {
    findings.push([
      'down',
      probed.length === 2
        ? 'peer probes lost both ways (10 of last 10)'
        : `peer probe ${one.agent}->${peerOf(one)} lost (all of last 10)`,
    ]);
  }
  for (const e of probed) {
    if (!e.isReachable)
      findings.push(['degraded', `peer probe ${e.agent}->${peerOf(e)} failed (loss ${pct(e.lossRatio)})`]);
    else if (e.lossRatio >= o.lossDegradedRatio)
      findings.push(['degraded', `peer probe ${e.agent}->${peerOf(e)} loss ${pct(e.lossRatio)}`]);
  }

  const rtts = probed.map((e) => e.rttMs).filter((r): r is number => r !== null && r > 0);
  const rttMs = rtts.length > 0 ? rtts.reduce((s, r) => s + r, 0) / rtts.length : null;
  const lossRatio = probed.length > 0 ? Math.max(...probed.map((e) => e.lossRatio)) : null;
  const okParts = [`handshake ${handshakeAgeSeconds ?? '?'} s ago`];
  if (rttMs !== null) okParts.push(`rtt ${rttMs.toFixed(1)} ms`);
  if (lossRatio !== null) okParts.push(`loss ${pct(lossRatio)}`);
  const { state, reason } = conclude(findings, okParts.join(', '));
  return {
    name,
    agents: x.name < y.name ? [x.name, y.name] : [y.name, x.name],
    state,
    sinceMs: since(prev, state, nowMs),
    reason,
    handshakeAgeSeconds,
    rttMs,
    lossRatio,
    configuredSinceMs,
    ends,
  };
}

/** "10.20.1.5:443/tcp", "[2001:db8::5]:443/tcp", "10.20.1.5/icmp". */
export function probeTargetText(p: Pick<ProbeSpec, 'target' | 'port' | 'protocol'>): string {
  if (p.protocol === 'icmp' || p.port === 0) return `${p.target}/${p.protocol}`;
  const host = p.target.includes(':') ? `[${p.target}]` : p.target;
  return `${host}:${p.port}/${p.protocol}`;
}

function evaluateProbe(
  agent: AgentHealth,
  input: AgentHealthInput,
  spec: ProbeSpec,
  nowMs: number,
  o: EvaluateOptions,
  prev: ProbeHealth | undefined,
): ProbeHealth {
  const result = agent.isReportFresh ? input.lastReport?.probeResults.find((r) => r.name === spec.name) : undefined;
  const label = `probe ${probeTargetText(spec)}${spec.expectDeny ? ' (expect deny)' : ''}`;
  const checkedAtMs = result !== undefined && result.checkedAtUnixMs > 0n ? Number(result.checkedAtUnixMs) : null;
  const report = input.lastReport;
  const agentNowMs =
    report !== null && report.agentTimeUnixMs > 0n ? Number(report.agentTimeUnixMs) : (input.lastReportAtMs ?? nowMs);

  let finding: Finding | null = null;
  if (!agent.isReportFresh) finding = ['unknown', `agent ${agent.name} not reporting`];
  else if (result === undefined) finding = ['unknown', `${label}: no result yet`];
  else if (checkedAtMs !== null && agentNowMs - checkedAtMs > o.probeResultMaxAgeMs) {
    finding = ['unknown', `${label}: last result ${secs(agentNowMs - checkedAtMs)} s old`];
  } else if (!result.isOk) {
    finding = ['down', `${label}: ${result.detail || (spec.expectDeny ? 'connected' : 'failed')}`];
  }
  const okDetail = result?.detail || (spec.expectDeny ? 'denied as expected' : 'ok');
  const { state, reason } = conclude(finding === null ? [] : [finding], `${label}: ${okDetail}`);
  return {
    id: `${agent.name}/${spec.name}`,
    agent: agent.name,
    name: spec.name,
    target: spec.target,
    protocol: spec.protocol,
    port: spec.port,
    expectDeny: spec.expectDeny,
    state,
    sinceMs: since(prev, state, nowMs),
    reason,
    rttMs: result !== undefined && result.rttMs > 0 ? result.rttMs : null,
    checkedAtMs,
    detail: result?.detail ?? '',
  };
}

function countStates(items: readonly { state: HealthState }[]): StateCounts {
  const counts: StateCounts = { ok: 0, degraded: 0, down: 0, unknown: 0 };
  for (const i of items) counts[i.state] += 1;
  return counts;
}

function countsText(counts: StateCounts, noun: string, includeOk: boolean): string[] {
  const order: HealthState[] = ['down', 'degraded', 'unknown', 'ok'];
  return order.filter((s) => counts[s] > 0 && (includeOk || s !== 'ok')).map((s) => `${plural(counts[s], noun)} ${s}`);
}

const byName = <T extends { name: string }>(a: T, b: T): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Evaluates the health of the fleet at `nowMs` (controller clock). Pass the previous snapshot so
 * states that did not change keep their `sinceMs` (and grace periods keep counting).
 */
export function evaluateHealth(
  input: readonly AgentHealthInput[],
  nowMs: number,
  options: Partial<EvaluateOptions> = {},
  previous?: HealthSnapshot | null,
  subnets: readonly SubnetIssue[] = [],
): HealthSnapshot {
  const o: EvaluateOptions = { ...DEFAULT_EVALUATE_OPTIONS, ...options };
  const prevAgents = new Map((previous?.agents ?? []).map((a) => [a.name, a]));
  const prevLinks = new Map((previous?.links ?? []).map((l) => [l.name, l]));
  const prevProbes = new Map((previous?.probes ?? []).map((p) => [p.id, p]));

  const inputs = [...input].sort(byName);
  const agents = inputs.map((a) => evaluateAgent(a, nowMs, o, prevAgents.get(a.name)));
  const active = new Map<string, AgentHealth>();
  agents.forEach((a) => {
    if (!a.isRevoked) active.set(a.name, a);
  });

  // A link exists when either end's config lists the other: during a change the two configs may
  // briefly disagree, and the link is still one the policy permits.
  const pairs = new Map<string, [AgentHealth, AgentHealth]>();
  for (const a of inputs) {
    const self = active.get(a.name);
    if (self === undefined) continue;
    for (const peer of a.peers) {
      const other = active.get(peer);
      if (other === undefined || other.name === self.name) continue;
      const name = linkName(self.name, other.name);
      if (!pairs.has(name)) pairs.set(name, self.name < other.name ? [self, other] : [other, self]);
    }
  }
  const links = [...pairs.entries()]
    .sort((p, q) => (p[0] < q[0] ? -1 : 1))
    .map(([name, [x, y]]) => evaluateLink(x, y, nowMs, o, prevLinks.get(name)));

  const probes: ProbeHealth[] = [];
  for (const a of inputs) {
    const agent = active.get(a.name);
    if (agent === undefined) continue;
    for (const spec of a.probes)
      probes.push(evaluateProbe(agent, a, spec, nowMs, o, prevProbes.get(`${a.name}/${spec.name}`)));
  }
  probes.sort((p, q) => (p.id < q.id ? -1 : p.id > q.id ? 1 : 0));

  const counts = { agents: countStates([...active.values()]), links: countStates(links), probes: countStates(probes) };
  let state: HealthState;
  let reason: string;
  if (active.size === 0) {
    state = 'unknown';
    reason = 'no agents';
  } else {
    state = worstState([...active.values(), ...links, ...probes, ...subnets].map((i) => i.state)) ?? 'unknown';
    const problems = [
      ...countsText(counts.agents, 'agent', false),
      ...countsText(countStates(subnets), 'subnet', false),
      ...countsText(counts.links, 'link', false),
      ...countsText(counts.probes, 'probe', false),
    ];
    reason =
      problems.length > 0
        ? problems.join(', ')
        : [
            ...countsText(counts.agents, 'agent', true),
            ...countsText(counts.links, 'link', true),
            ...countsText(counts.probes, 'probe', true),
          ].join(', ');
  }
  return {
    atMs: nowMs,
    state,
    sinceMs: since(previous ?? undefined, state, nowMs),
    reason,
    counts,
    agents,
    links,
    probes,
  };
}

interface Subject {
  subject: string;
  kind: HealthEvent['kind'];
  state: HealthState;
  reason: string;
}

function subjects(s: HealthSnapshot | null | undefined): Map<string, Subject> {
  const out = new Map<string, Subject>();
  if (!s) return out;
  out.set('overall', { subject: 'overall', kind: 'overall', state: s.state, reason: s.reason });
  for (const a of s.agents)
    out.set(subjectOf('agent', a.name), {
      subject: subjectOf('agent', a.name),
      kind: 'agent',
      state: a.state,
      reason: a.reason,
    });
  for (const l of s.links)
    out.set(subjectOf('link', l.name), {
      subject: subjectOf('link', l.name),
      kind: 'link',
      state: l.state,
      reason: l.reason,
    });
  for (const p of s.probes)
    out.set(subjectOf('probe', p.id), {
      subject: subjectOf('probe', p.id),
      kind: 'probe',
      state: p.state,
      reason: p.reason,
    });
  return out;
}

/**
 * State changes between two snapshots, for the history: a subject whose state changed, one that
 * appeared (from: null) and one that disappeared (to: null). Changes of reason alone are not events.
 */
export function diffHealth(prev: HealthSnapshot | null | undefined, next: HealthSnapshot): HealthEvent[] {
  const before = subjects(prev);
  const after = subjects(next);
  const events: HealthEvent[] = [];
  for (const [key, now] of after) {
    const was = before.get(key);
    if (was === undefined)
      events.push({ subject: key, kind: now.kind, from: null, to: now.state, atMs: next.atMs, reason: now.reason });
    else if (was.state !== now.state)
      events.push({
        subject: key,
        kind: now.kind,
        from: was.state,
        to: now.state,
        atMs: next.atMs,
        reason: now.reason,
      });
  }
  for (const [key, was] of before) {
    if (!after.has(key)) {
      events.push({
        subject: key,
        kind: was.kind,
        from: was.state,
        to: null,
        atMs: next.atMs,
        reason: was.kind === 'agent' ? 'agent removed' : 'no longer in the configuration',
      });
    }
  }
  return events;
}
