// Pure formatting for `crosslink status` and `crosslink check`: the table for people, and the
// monitoring-plugin verdict (Nagios conventions: one line, exit 0 OK, 1 WARNING, 2 CRITICAL,
// 3 UNKNOWN, performance data after "|"). No I/O: the commands fetch and print.
import type { HealthSnapshot, HealthState, StateCounts } from '../controller/health/types.js';
import { STATE_SEVERITY } from '../controller/health/types.js';
import { isUnservedBecauseOf } from '../controller/policy/unserved.js';
import { subnetIssues } from '../controller/health/subnets.js';
import type { PolicyRuleWindow } from '../controller/policy/rule-windows.js';

/** What GET /v1/health answers. */
export interface HealthResponse extends HealthSnapshot {
  serving?: Array<{ agent: string; isHealthy: boolean; sinceMs: number; reason: string }>;
  /** Subnets of the policy no box serves now, and why (older controllers leave it out).
   *  `isAwaitingEnrolment`: only because no box of its via has enrolled yet. */
  unserved?: Array<{ subnet: string; reason: string; isAwaitingEnrolment?: boolean }>;
  /** Subnets served on their boxes' own decision: no candidate healthy in the controller's view
   *  (older controllers leave it out). */
  unconfirmed?: Array<{ subnet: string; candidates: string[]; reason: string }>;
  /** The policy's rules with a not-before / not-after (older controllers leave it out). */
  ruleWindows?: PolicyRuleWindow[];
}

export type NagiosStatus = 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN';
export const NAGIOS_EXIT: Readonly<Record<NagiosStatus, 0 | 1 | 2 | 3>> = {
  OK: 0,
  WARNING: 1,
  CRITICAL: 2,
  UNKNOWN: 3,
};
/** Which status wins when several apply: CRITICAL, WARNING, UNKNOWN, OK. */
const NAGIOS_RANK: Readonly<Record<NagiosStatus, number>> = { OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3 };

/**
 * down -> CRITICAL, degraded -> WARNING, unknown -> UNKNOWN, ok -> OK. With several subjects the
 * worst wins, in the order CRITICAL, WARNING, UNKNOWN, OK (a known fault outranks missing data).
 */
export const STATE_TO_NAGIOS: Readonly<Record<HealthState, NagiosStatus>> = {
  down: 'CRITICAL',
  degraded: 'WARNING',
  unknown: 'UNKNOWN',
  ok: 'OK',
};

export interface CheckFilter {
  agent?: string;
  /** "a:b" in either order. */
  link?: string;
  /** A probe name "<rule>/<index>" (every agent running it), or "<agent>/<rule>/<index>". */
  probe?: string;
}

/** A Nagios plugin range (plugin development guidelines): "10" alerts outside 0..10, "10:" below
 *  10, "~:10" above 10, "10:20" outside 10..20, "@10:20" inside 10..20. */
export interface Range {
  start: number;
  end: number;
  isInside: boolean;
  text: string;
}

/** The measured values thresholds apply to: RTT (ms), loss (%), handshake age (s). */
export const METRICS = { rtt: 'ms', loss: '%', handshake: 's' } as const;
export type Metric = keyof typeof METRICS;

export interface Thresholds {
  warning: Partial<Record<Metric, Range>>;
  critical: Partial<Record<Metric, Range>>;
}

/** Parses a range; throws Error with a message naming the problem. */
export function parseRange(text: string): Range {
  const m = /^(@)?(?:(~|-?\d+(?:\.\d+)?):)?(-?\d+(?:\.\d+)?)?$/.exec(text.trim());
  if (!m || (m[2] === undefined && m[3] === undefined) || (text.includes(':') && m[2] === undefined)) {
    throw new Error(`"${text}" is not a range (10, 10:, ~:10, 10:20 or @10:20)`);
  }
  const start = m[2] === undefined ? 0 : m[2] === '~' ? -Infinity : Number(m[2]);
  const end = m[3] === undefined ? Infinity : Number(m[3]);
  if (start > end) throw new Error(`"${text}": the start is above the end`);
  return { start, end, isInside: m[1] === '@', text: text.trim() };
}

/** True when `value` raises an alert for `r`. */
export function isAlert(r: Range, value: number): boolean {
  const inRange = value >= r.start && value <= r.end;
  return r.isInside ? inRange : !inRange;
}

/** "rtt=100" items of -w/-c into thresholds; throws Error naming the bad item. */
export function parseThresholds(warning: readonly string[] = [], critical: readonly string[] = []): Thresholds {
  const one = (items: readonly string[], flag: string): Partial<Record<Metric, Range>> => {
    const out: Partial<Record<Metric, Range>> = {};
    for (const item of items) {
      const [name, range] = item.split('=', 2);
      if (range === undefined || !(name! in METRICS))
        throw new Error(
          `${flag} takes METRIC=RANGE with METRIC one of ${Object.keys(METRICS).join(', ')}; got "${item}"`,
        );
      try {
        out[name as Metric] = parseRange(range);
      } catch (e) {
        throw new Error(`${flag} ${name}: ${(e as Error).message}`, { cause: e });
      }
    }
    return out;
  };
  return { warning: one(warning, '--warning'), critical: one(critical, '--critical') };
}

export interface CheckResult {
  status: NagiosStatus;
  exitCode: 0 | 1 | 2 | 3;
  /** The single output line, without a newline. */
  line: string;
  /** The line's parts, for --json. */
  summary?: string;
  perfdata?: Record<string, string>;
}

type Kind = 'agent' | 'link' | 'probe' | 'subnet';
interface Item {
  kind: Kind;
  name: string;
  state: HealthState;
  reason: string;
  sinceMs: number;
}

const KIND_ORDER: Record<Kind, number> = { agent: 0, subnet: 1, link: 2, probe: 3 };
const PLURAL: Record<Kind, string> = { agent: 'agents', link: 'links', probe: 'probes', subnet: 'subnets' };
const STATE_ORDER: HealthState[] = ['ok', 'degraded', 'down', 'unknown'];

/** Worst first, then agents, links, probes, then by name. */
function worstFirst(a: Item, b: Item): number {
  return (
    STATE_SEVERITY[b.state] - STATE_SEVERITY[a.state] ||
    KIND_ORDER[a.kind] - KIND_ORDER[b.kind] ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
}

/** Unserved and unconfirmed subnets (controller/health/subnets.ts: the same states as the overall). */
function subnetItems(s: HealthResponse, o: { withAwaiting: boolean }): Item[] {
  return subnetIssues(s.unserved ?? [], s.unconfirmed ?? [], o).map((i) => ({
    kind: 'subnet',
    name: i.subnet,
    state: i.state,
    reason: i.reason,
    sinceMs: s.atMs,
  }));
}

function items(s: HealthResponse, o: { withAwaiting: boolean } = { withAwaiting: false }): Item[] {
  return [
    ...s.agents
      .filter((a) => !a.isRevoked)
      .map((a): Item => ({ kind: 'agent', name: a.name, state: a.state, reason: a.reason, sinceMs: a.sinceMs })),
    ...subnetItems(s, o),
    ...s.links.map((l): Item => ({ kind: 'link', name: l.name, state: l.state, reason: l.reason, sinceMs: l.sinceMs })),
    ...s.probes.map((p): Item => ({ kind: 'probe', name: p.id, state: p.state, reason: p.reason, sinceMs: p.sinceMs })),
  ];
}

/** One line for a plugin: no newlines, and no "|" (it starts the performance data). */
function oneLine(text: string): string {
  return text
    .replace(/[\r\n]+/g, ' ')
    .replace(/\|/g, '/')
    .trim();
}

function normaliseLink(name: string): string {
  const [a, b, ...rest] = name.split(':');
  if (!a || !b || rest.length > 0) return name;
  return a < b ? `${a}:${b}` : `${b}:${a}`;
}

function countsOf(selected: Item[], kind: Kind): StateCounts {
  const c: StateCounts = { ok: 0, degraded: 0, down: 0, unknown: 0 };
  for (const i of selected) if (i.kind === kind) c[i.state] += 1;
  return c;
}

function num(n: number): string {
  return String(Math.round(n * 1000) / 1000);
}

export function unreachableResult(message: string): CheckResult {
  return { status: 'UNKNOWN', exitCode: 3, line: `CROSSLINK UNKNOWN - ${oneLine(message)}` };
}

/** The subjects `check` judges, the kinds it counts, and the values measured on them. */
interface Selection {
  selected: Item[];
  kinds: Set<Kind>;
  rtts: number[];
  losses: number[];
  handshakes: number[];
}

type Measured = { rttMs: number | null; lossRatio: number | null; handshakeAgeSeconds: number | null };

function measure(sel: Selection, l: Measured): void {
  if (l.rttMs !== null) sel.rtts.push(l.rttMs);
  if (l.lossRatio !== null) sel.losses.push(l.lossRatio * 100);
  if (l.handshakeAgeSeconds !== null) sel.handshakes.push(l.handshakeAgeSeconds);
}

/** Every subject without a filter, else the ones it names; `missing`: what it names that is not there. */
function select(s: HealthResponse, filter: CheckFilter): Selection | { missing: string[] } {
  const all = items(s);
  const sel: Selection = { selected: [], kinds: new Set(), rtts: [], losses: [], handshakes: [] };
  if (!filter.agent && !filter.link && !filter.probe) {
    sel.selected = all;
    sel.kinds.add('agent').add('link').add('probe');
    if (s.unserved !== undefined) sel.kinds.add('subnet');
    for (const l of s.links) measure(sel, l);
    return sel;
  }
  const missing: string[] = [];
  if (filter.agent) {
    sel.kinds.add('agent');
    const agent = s.agents.find((a) => a.name === filter.agent && !a.isRevoked);
    if (agent === undefined) missing.push(`no agent named "${filter.agent}"`);
    else {
      sel.selected.push(...all.filter((i) => i.kind === 'agent' && i.name === agent.name));
      // Subnets left unserved or unconfirmed because of this box (the reason names it: "cc-edge does
      // not advertise fd20:8::/64", "cc-edge is unhealthy").
      const because = new Set(
        [...(s.unserved ?? []), ...(s.unconfirmed ?? [])]
          .filter((u) => isUnservedBecauseOf(agent.name, u.reason))
          .map((u) => u.subnet),
      );
      sel.selected.push(...all.filter((i) => i.kind === 'subnet' && because.has(i.name)));
      for (const p of agent.peers)
        measure(sel, {
          rttMs: p.rttMs,
          lossRatio: p.isProbed ? p.lossRatio : null,
          handshakeAgeSeconds: p.handshakeAgeSeconds,
        });
    }
  }
  if (filter.link) {
    sel.kinds.add('link');
    const name = normaliseLink(filter.link);
    const link = s.links.find((l) => l.name === name);
    if (link === undefined) missing.push(`no link "${filter.link}"`);
    else {
      sel.selected.push(...all.filter((i) => i.kind === 'link' && i.name === name));
      measure(sel, link);
    }
  }
  if (filter.probe) {
    sel.kinds.add('probe');
    const probes = s.probes.filter((p) => p.name === filter.probe || p.id === filter.probe);
    if (probes.length === 0) missing.push(`no probe "${filter.probe}"`);
    else {
      const ids = new Set(probes.map((p) => p.id));
      sel.selected.push(...all.filter((i) => i.kind === 'probe' && ids.has(i.name)));
      for (const p of probes) if (p.rttMs !== null) sel.rtts.push(p.rttMs);
    }
  }
  return missing.length > 0 ? { missing } : sel;
}

/** The worst measured value of each metric. */
function worstValues(sel: Selection): Partial<Record<Metric, number>> {
  const values: Partial<Record<Metric, number>> = {};
  if (sel.rtts.length > 0) values.rtt = Math.max(...sel.rtts);
  if (sel.losses.length > 0) values.loss = Math.max(...sel.losses);
  if (sel.handshakes.length > 0) values.handshake = Math.max(...sel.handshakes);
  return values;
}

/** Thresholds on the worst measured value of each metric: the alerts, and the higher of `status` and theirs. */
function thresholdAlerts(
  values: Partial<Record<Metric, number>>,
  thresholds: Thresholds,
  status: NagiosStatus,
): { alerts: string[]; status: NagiosStatus } {
  const alerts: string[] = [];
  for (const metric of Object.keys(METRICS) as Metric[]) {
    const v = values[metric];
    if (v === undefined) continue;
    const c = thresholds.critical[metric];
    const w = thresholds.warning[metric];
    const hit =
      c && isAlert(c, v)
        ? { level: 'CRITICAL' as const, range: c }
        : w && isAlert(w, v)
          ? { level: 'WARNING' as const, range: w }
          : null;
    if (hit === null) continue;
    alerts.push(
      `${metric} ${num(v)}${METRICS[metric]} (${hit.level === 'CRITICAL' ? 'critical' : 'warning'} ${hit.range.text})`,
    );
    if (NAGIOS_RANK[hit.level] > NAGIOS_RANK[status]) status = hit.level;
  }
  return { alerts, status };
}

/** "3 agents ok, ..." and the performance data: counts, unserved subnets, then the measured values. */
function countsAndPerf(
  s: HealthResponse,
  sel: Selection,
  values: Partial<Record<Metric, number>>,
  thresholds: Thresholds,
): { countText: string[]; perf: string[] } {
  const countText: string[] = [];
  const perf: string[] = [];
  for (const kind of ['agent', 'link', 'probe'] as Kind[]) {
    if (!sel.kinds.has(kind)) continue;
    const c = countsOf(sel.selected, kind);
    for (const st of STATE_ORDER) {
      if (c[st] > 0 || (st === 'ok' && kind !== 'probe'))
        countText.push(`${c[st]} ${c[st] === 1 ? kind : PLURAL[kind]} ${st}`);
      perf.push(`${PLURAL[kind]}_${st}=${c[st]}`);
    }
  }
  if (sel.kinds.has('subnet')) {
    const subnets = sel.selected.filter((i) => i.kind === 'subnet');
    const n = subnets.filter((i) => i.state !== 'degraded').length;
    const unconfirmed = subnets.length - n;
    if (n > 0) countText.push(`${n} ${n === 1 ? 'subnet' : 'subnets'} unserved`);
    if (unconfirmed > 0) countText.push(`${unconfirmed} ${unconfirmed === 1 ? 'subnet' : 'subnets'} unconfirmed`);
    perf.push(
      `subnets_unserved=${n}`,
      `subnets_awaiting_enrolment=${(s.unserved ?? []).filter((u) => u.isAwaitingEnrolment === true).length}`,
    );
    // Only from a controller that reports it: an older one's silence is not a 0.
    if (s.unconfirmed !== undefined) perf.push(`subnets_unconfirmed=${unconfirmed}`);
  }
  // label=value[UOM];warn;crit (plugin guidelines): the unit and the thresholds in use.
  for (const metric of Object.keys(METRICS) as Metric[]) {
    const v = values[metric];
    if (v === undefined) continue;
    const w = thresholds.warning[metric]?.text ?? '';
    const c = thresholds.critical[metric]?.text ?? '';
    perf.push(`${metric}=${num(v)}${METRICS[metric]}${w || c ? `;${w};${c}` : ''}`);
  }
  return { countText, perf };
}

/** The verdict for `crosslink check` over the whole fleet, or the subjects the filter names. */
export function checkHealth(
  s: HealthResponse,
  filter: CheckFilter = {},
  thresholds: Thresholds = { warning: {}, critical: {} },
): CheckResult {
  const sel = select(s, filter);
  if ('missing' in sel)
    return { status: 'UNKNOWN', exitCode: 3, line: `CROSSLINK UNKNOWN - ${oneLine(sel.missing.join(', '))}` };
  const sorted = [...sel.selected].sort(worstFirst);
  const worst = sorted[0];
  const values = worstValues(sel);
  const { alerts, status } = thresholdAlerts(
    values,
    thresholds,
    worst === undefined ? 'UNKNOWN' : STATE_TO_NAGIOS[worst.state],
  );
  const { countText, perf } = countsAndPerf(s, sel, values, thresholds);

  let text: string;
  if (worst === undefined) text = 'no agents';
  else if (worst.state === 'ok') text = countText.join(', ');
  else {
    const problems = sorted.filter((i) => i.state !== 'ok');
    const more = problems.length > 1 ? ` (+${problems.length - 1} more)` : '';
    text = `${worst.kind} ${worst.name} ${worst.state}: ${worst.reason}${more}; ${countText.join(', ')}`;
  }
  if (alerts.length > 0) text = `${alerts.join(', ')}; ${text}`;
  const summary = oneLine(text);
  const perfdata = Object.fromEntries(perf.map((p) => p.split('=', 2) as [string, string]));
  return {
    status,
    exitCode: NAGIOS_EXIT[status],
    line: `CROSSLINK ${status} - ${summary} | ${perf.join(' ')}`,
    summary,
    perfdata,
  };
}

/** "45s", "5m12s", "3h04m", "2d03h". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows)
    r.forEach((cell, c) => {
      widths[c] = Math.max(widths[c] ?? 0, cell.length);
    });
  return rows
    .map((r) =>
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * The table for `crosslink status`: the overall line, then every agent, link and probe, worst
 * first, with how long it has been in its state (measured on the controller's clock) and why.
 */
export function formatStatus(s: HealthResponse): string {
  const lines: string[] = [];
  lines.push(
    `Overall: ${s.state} for ${formatDuration(s.atMs - s.sinceMs)} - ${s.reason} (evaluated ${new Date(s.atMs).toISOString()})`,
  );
  const rows = [['KIND', 'NAME', 'STATE', 'FOR', 'REASON']];
  for (const i of items(s, { withAwaiting: true }).sort(worstFirst))
    rows.push([
      i.kind,
      i.name,
      i.state.toUpperCase(),
      i.kind === 'subnet' ? '-' : formatDuration(s.atMs - i.sinceMs),
      oneLine(i.reason),
    ]);
  if (rows.length > 1) lines.push('', table(rows));
  const unhealthy = (s.serving ?? []).filter((v) => !v.isHealthy);
  if (unhealthy.length > 0) {
    lines.push('', 'Not serving (failover):');
    for (const v of unhealthy)
      lines.push(`  ${v.agent}: ${oneLine(v.reason)} (for ${formatDuration(s.atMs - v.sinceMs)})`);
  }
  // Rules that start later, end within two weeks, or have ended (they stay until someone removes them).
  const SOON_S = 14 * 86_400;
  const windows = (s.ruleWindows ?? []).filter(
    (w) => w.state !== 'open' || (w.secondsToExpiry !== null && w.secondsToExpiry <= SOON_S),
  );
  if (windows.length > 0) {
    lines.push('', 'Rule windows (not-before / not-after):');
    for (const w of windows) {
      const left = w.secondsToExpiry ?? 0;
      const when =
        w.state === 'expired'
          ? `EXPIRED ${formatDuration(-left * 1000)} ago (${w.notAfter}): closed on every box; remove it from the policy`
          : w.state === 'pending'
            ? `starts ${w.notBefore}${w.notAfter ? `, ends ${w.notAfter}` : ''}`
            : `ends in ${formatDuration(left * 1000)} (${w.notAfter})`;
      lines.push(`  ${w.rule}: ${when}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
