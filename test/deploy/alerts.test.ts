// The shipped alert rules and dashboard: they parse, have what an operator needs, and every metric
// they name is one the controller registers (a renamed metric breaks this test, not an alert at
// 3 a.m.). promtool (Debian package `prometheus`) checks the rules and runs their unit tests when
// it is installed.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';
import { createControllerMetrics } from '../../controller/metrics.js';

const root = new URL('../../', import.meta.url);
const rulesPath = fileURLToPath(new URL('deploy/prometheus/crosslink-alerts.yml', root));
const rulesTestPath = fileURLToPath(new URL('deploy/prometheus/crosslink-alerts.test.yml', root));
const dashboardPath = fileURLToPath(new URL('deploy/grafana/crosslink-dashboard.json', root));

const registered = new Set(
  createControllerMetrics({
    monitor: { snapshot: () => null, servingHealth: () => new Map() },
    distribution: { connectedCount: () => 0 },
  })
    .registry.getMetricsAsArray()
    .map((m) => m.name),
);

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/**
 * Metric names in a PromQL expression: identifiers that are not functions (followed by "("),
 * keywords, label names (inside {} or a by/on/... list), strings, durations or Grafana variables.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = stripped.slice((m.index ?? 0) + m[0].length);
    if (/^\s*\(/.test(after) || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names].sort();
}

t.test('the metric-name extractor', async (t) => {
  const cases: Array<[string, string[]]> = [
    ['crosslink_link_state{state="down"} == 1', ['crosslink_link_state']],
    ['(a_x > 30 and on (agent) b_y == 0) or on (agent) (c_z{state="down", x=~"a|b"} == 1)', ['a_x', 'b_y', 'c_z']],
    ['time() - ts_seconds > 60 or absent(streams)', ['streams', 'ts_seconds']],
    ['sum by (state) (rate(rx_total[$__rate_interval]))', ['rx_total']],
    ['sum(x{role="standby"}) or vector(0)', ['x']],
  ];
  for (const [expr, want] of cases) t.same(metricNames(expr), want, expr);
});

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

t.test('alert rules: structure, required alerts, metrics exist', async (t) => {
  const doc = parse(readFileSync(rulesPath, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> };
  t.ok(Array.isArray(doc.groups) && doc.groups.length > 0, 'has groups');
  const rules = doc.groups.flatMap((g) => g.rules);
  const names = rules.map((r) => r.alert);
  for (const required of [
    'CrosslinkLinkDown',
    'CrosslinkConfigStale',
    'CrosslinkApplyFailing',
    'CrosslinkAgentSilent',
    'CrosslinkStandbyServing',
  ]) {
    t.ok(names.includes(required), `has ${required}`);
  }
  t.equal(new Set(names).size, names.length, 'alert names are unique');
  for (const r of rules) {
    const name = r.alert ?? r.record ?? '?';
    t.type(r.expr, 'string', `${name}: expr`);
    t.match(r.for ?? '', /^\d+[smh]$/, `${name}: for`);
    t.ok(['critical', 'warning'].includes(r.labels?.severity ?? ''), `${name}: severity label`);
    t.ok(r.annotations?.summary, `${name}: summary`);
    t.ok(r.annotations?.description, `${name}: description`);
    const used = metricNames(r.expr);
    t.ok(used.length > 0, `${name}: names a metric`);
    for (const m of used) t.ok(registered.has(m), `${name}: ${m} is registered by the controller`);
  }
});

t.test('dashboard: valid JSON, panels complete, every query names registered metrics', async (t) => {
  const dash = JSON.parse(readFileSync(dashboardPath, 'utf8')) as {
    uid: string;
    title: string;
    schemaVersion: number;
    templating: { list: Array<{ name: string; type: string }> };
    panels: Array<{
      id: number;
      title: string;
      type: string;
      gridPos: { x: number; y: number; w: number; h: number };
      datasource?: unknown;
      targets?: Array<{ expr: string; refId: string }>;
    }>;
  };
  t.ok(dash.uid && dash.title && dash.schemaVersion >= 30, 'uid, title, schemaVersion');
  t.ok(
    dash.templating.list.some((v) => v.type === 'datasource' && v.name === 'datasource'),
    'datasource variable',
  );
  const ids = dash.panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const used = new Set<string>();
  for (const p of dash.panels) {
    t.ok(p.gridPos.w > 0 && p.gridPos.h > 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: gridPos`);
    t.ok(p.datasource, `${p.title}: datasource`);
    t.ok((p.targets ?? []).length > 0, `${p.title}: has queries`);
    for (const target of p.targets ?? []) {
      const names = metricNames(target.expr);
      t.ok(names.length > 0, `${p.title}/${target.refId}: names a metric`);
      for (const m of names) {
        t.ok(registered.has(m), `${p.title}: ${m} is registered by the controller`);
        used.add(m);
      }
    }
  }
  const wanted = [
    'crosslink_agents',
    'crosslink_links',
    'crosslink_agent_generation_desired',
    'crosslink_agent_generation_applied',
    'crosslink_agent_last_report_age_seconds',
    'crosslink_peer_handshake_age_seconds',
    'crosslink_peer_probe_rtt_seconds',
    'crosslink_agent_apply_errors',
  ];
  for (const m of wanted) t.ok(used.has(m), `dashboard shows ${m}`);
});

const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const hasPromtool = promtool.status === 0;

t.test(
  'promtool check rules',
  { skip: hasPromtool ? false : 'promtool not installed (Debian package prometheus)' },
  async (t) => {
    const r = spawnSync('promtool', ['check', 'rules', rulesPath], { encoding: 'utf8' });
    t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    t.match(r.stdout, /SUCCESS/);
  },
);

t.test(
  'promtool test rules (the alerts fire when they should)',
  { skip: hasPromtool ? false : 'promtool not installed (Debian package prometheus)' },
  async (t) => {
    const r = spawnSync('promtool', ['test', 'rules', rulesTestPath], { encoding: 'utf8' });
    t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  },
);
