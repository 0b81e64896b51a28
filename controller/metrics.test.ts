import { readFileSync } from 'node:fs';
import { register as globalRegistry } from 'prom-client';
import t from 'tap';
import { evaluateHealth } from './health/evaluate.js';
import { agentInput, applyError, probeResult, probeSpec, T0 } from './health/health.fixture.js';
import type { HealthSnapshot } from './health/types.js';
import { createControllerMetrics, metricsRoute, type ServingAssignment } from './metrics.js';
import Fastify from 'fastify';

function build(snap: HealthSnapshot | null, serving: ServingAssignment[] = []) {
  return createControllerMetrics({
    monitor: {
      snapshot: () => snap,
      servingHealth: () =>
        new Map([
          ['a', true],
          ['b', false],
        ]),
    },
    distribution: { connectedCount: () => 2, serving: () => serving },
  });
}

const snap = evaluateHealth(
  [
    agentInput('a', T0, {
      peers: ['b'],
      peerOpts: { b: { rxBytes: 5000, txBytes: 7000, rttMs: 2.5, handshakeAgoSeconds: 30 } },
      probes: [probeSpec('care/0')],
      probeResults: [probeResult('care/0', T0 - 2000, { rttMs: 4 })],
      applied: 6,
      desiredGeneration: 7,
      errors: [applyError()],
    }),
    agentInput('b', T0, { peers: ['a'], reportAgoMs: 45_000 }),
    agentInput('gone', T0, { isRevoked: true }),
  ],
  T0,
  {},
);

t.test('values come from the snapshot on scrape', async (t) => {
  const m = build(snap, [
    { subnet: 'gp-lan', agent: 'a', role: 'primary', isServing: false },
    { subnet: 'gp-lan', agent: 'b', role: 'standby', isServing: true },
  ]);
  const text = await m.metrics();
  const want = [
    'crosslink_agents{state="ok"} 0',
    'crosslink_agents{state="degraded"} 2',
    'crosslink_links{state="ok"} 1',
    'crosslink_health_state{state="degraded"} 1',
    'crosslink_agent_state{agent="a",state="degraded"} 1',
    'crosslink_agent_state{agent="b",state="degraded"} 1',
    'crosslink_agent_state{agent="b",state="ok"} 0',
    'crosslink_link_state{link="a:b",state="ok"} 1',
    'crosslink_agent_generation_desired{agent="a"} 7',
    'crosslink_agent_generation_applied{agent="a"} 6',
    'crosslink_agent_last_report_age_seconds{agent="b"} 45',
    'crosslink_agent_apply_errors{agent="a"} 1',
    'crosslink_agent_connected{agent="a"} 1',
    'crosslink_peer_handshake_age_seconds{agent="a",peer="b"} 32',
    'crosslink_peer_rx_bytes_total{agent="a",peer="b"} 5000',
    'crosslink_peer_tx_bytes_total{agent="a",peer="b"} 7000',
    'crosslink_peer_probe_rtt_seconds{agent="a",peer="b"} 0.0025',
    'crosslink_peer_probe_success{agent="a",peer="b"} 1',
    'crosslink_probe_rtt_seconds{agent="a",probe="care/0"} 0.004',
    'crosslink_probe_success{agent="a",probe="care/0"} 1',
    'crosslink_agent_forwarding_healthy{agent="b"} 0',
    'crosslink_agent_serving{agent="b",subnet="gp-lan",role="standby"} 1',
    'crosslink_agent_serving{agent="a",subnet="gp-lan",role="primary"} 0',
    'crosslink_streams_connected 2',
    `crosslink_health_evaluated_timestamp_seconds ${T0 / 1000}`,
    '# TYPE crosslink_peer_rx_bytes_total counter',
  ];
  for (const line of want) t.ok(text.split('\n').includes(line), line);
  t.notMatch(text, /agent="gone"/, 'revoked agents have no series');
});

t.test('series follow the snapshot: nothing lingers after an agent goes away', async (t) => {
  let current: HealthSnapshot | null = snap;
  const m = createControllerMetrics({
    monitor: { snapshot: () => current, servingHealth: () => new Map() },
    distribution: { connectedCount: () => 0 },
  });
  t.match(await m.metrics(), /agent="a"/);
  current = evaluateHealth([agentInput('c', T0)], T0, {});
  const text = await m.metrics();
  t.notMatch(text, /agent="a"/);
  t.match(text, /crosslink_agent_state\{agent="c",state="ok"\} 1/);
  current = null;
  t.match(await m.metrics(), /crosslink_streams_connected 0/, 'before the first evaluation only the live counts');
});

t.test('own registry, never the global one; two instances coexist', async (t) => {
  const one = build(snap);
  const two = build(null);
  t.not(one.registry, two.registry);
  t.equal((await globalRegistry.metrics()).includes('crosslink_'), false);
  const app = Fastify();
  await app.register(metricsRoute(one));
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /text\/plain/);
  t.match(res.body, /crosslink_streams_connected 2/);
});

t.test('docs/metrics.md documents exactly the registered metrics (name, type, labels)', async (t) => {
  const md = readFileSync(new URL('../docs/metrics.md', import.meta.url), 'utf8');
  const section = md.split(/^## Controller\s*$/m)[1]?.split(/^## /m)[0] ?? '';
  const documented = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^\| `([a-z_:]+)` \| (gauge|counter|histogram|summary) \| ([^|]*) \|/.exec(line);
    if (!m) continue;
    const [, name = '', kind, labelText = ''] = m;
    const labels = labelText.trim() === '—' ? [] : [...labelText.matchAll(/`([a-z_]+)`/g)].map((x) => x[1]);
    documented.set(name, `${kind} ${labels.join(',')}`);
  }
  const registered = new Map<string, string>();
  for (const metric of build(snap).registry.getMetricsAsArray() as unknown as Array<{
    name: string;
    type: string;
    labelNames: string[];
  }>) {
    registered.set(metric.name, `${metric.type} ${metric.labelNames.join(',')}`);
  }
  t.ok(registered.size > 20);
  t.same(Object.fromEntries([...documented].sort()), Object.fromEntries([...registered].sort()));
});
