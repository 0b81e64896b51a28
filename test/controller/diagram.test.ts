// GET /v1/diagram over the REST API: JSON with positions by default, DOT, SVG and Mermaid on asking,
// a download header when asked, the same permission as the other health reads, and a wrong format
// refused naming the field and the formats there are.
import t, { type Test } from 'tap';
import type { HealthReader } from '../../controller/api/health-status.js';
import type { DiagramModel } from '../../controller/diagram/types.js';
import type { HealthSnapshot } from '../../controller/health/types.js';
import type { ControllerMetrics } from '../../controller/metrics.js';
import { agentRecord } from '../../controller/store/store.contract.js';
import { makeHarness, POLICY_YAML } from './harness.fixture.js';

const YAML = { 'content-type': 'application/yaml', 'if-match': '"0"' };
const sys = {
  actor: { name: 'system', role: 'system' as const, address: '' },
  action: 'agent.enroll',
  target: 'agent',
  before: null,
  after: null,
};

/** The parts of a snapshot the diagram reads; the rest of the shape does not matter here. */
function snapshot(): HealthSnapshot {
  return {
    atMs: 1,
    agents: [
      { name: 'box-a', state: 'ok', reason: 'handshake 5 s ago', isConnected: true },
      { name: 'box-b', state: 'down', reason: 'no report for 31 s', isConnected: false },
    ],
    links: [{ name: 'box-a:box-b', agents: ['box-a', 'box-b'], state: 'down', reason: 'no handshake for 310 s' }],
  } as unknown as HealthSnapshot;
}

async function setup(t: Test, snap: HealthSnapshot | null = snapshot()) {
  const monitor: HealthReader = {
    snapshot: () => snap,
    history: () => Promise.resolve([]),
    servingDetail: () => new Map(),
  };
  const metrics = { contentType: 'text/plain', metrics: () => Promise.resolve('') } as unknown as ControllerMetrics;
  const h = await makeHarness({ health: { monitor, metrics } });
  t.teardown(() => h.close());
  t.equal((await h.call({ method: 'PUT', url: '/v1/policy', headers: YAML, payload: POLICY_YAML })).statusCode, 200);
  await h.store.enrollAgent(agentRecord('box-a', { id: 'ag-a', credentialHash: 'c-a' }), 'none', sys);
  await h.store.enrollAgent(
    agentRecord('box-b', { id: 'ag-b', credentialHash: 'c-b', overlayAddress: '100.64.0.3/10' }),
    'none',
    sys,
  );
  h.dist.served = { hospital: 'box-a', council: 'box-b' };
  return h;
}

t.test('GET /v1/diagram: JSON by default, for any role that reads agents', async (t) => {
  const h = await setup(t);
  t.equal((await h.call({ method: 'GET', url: '/v1/diagram', as: null })).statusCode, 401, 'a token is needed');
  const r = await h.call({ method: 'GET', url: '/v1/diagram', as: 'auditor' });
  t.equal(r.statusCode, 200);
  t.match(r.headers['content-type'], /^application\/json/);
  t.notOk(r.headers['content-disposition']);
  const m = r.json<DiagramModel>();
  t.equal(m.policyVersion, 1);
  t.same(
    m.groups.map((g) => g.label),
    ['N3', 'PSN'],
  );
  t.match(m.boxes, [
    { name: 'box-a', state: 'ok', isEnrolled: true, subnets: [{ name: 'hospital', role: 'serving' }] },
    { name: 'box-b', state: 'down', reason: 'no report for 31 s', subnets: [{ name: 'council', role: 'serving' }] },
  ]);
  t.match(m.links, [{ name: 'box-a:box-b', state: 'down', path: 'direct', rules: ['care-records'] }]);
  t.ok(m.width > 0 && m.height > 0 && m.boxes.every((b) => b.x > 0 && b.y > 0), 'positions from the server');
});

t.test('GET /v1/diagram?format=...: text formats, and a download on asking', async (t) => {
  const h = await setup(t);
  for (const [format, type, ext, start] of [
    ['dot', 'text/vnd.graphviz', 'dot', 'graph "crosslink-overlay" {'],
    ['svg', 'image/svg+xml', 'svg', '<svg xmlns="http://www.w3.org/2000/svg"'],
    ['mermaid', 'text/plain', 'mmd', 'flowchart LR\n%% Crosslink overlay, policy version 1'],
    ['json', 'application/json', 'json', '{"atMs":'],
  ] as const) {
    const r = await h.call({ method: 'GET', url: `/v1/diagram?format=${format}`, as: 'operator' });
    t.equal(r.statusCode, 200, format);
    t.match(r.headers['content-type'], new RegExp(`^${type.replace(/[+.]/g, '\\$&')}`), `${format}: ${type}`);
    t.ok(r.body.startsWith(start), `${format}: the rendered text as it is`);
    t.notOk(r.headers['content-disposition'], `${format}: shown, not downloaded`);
    const d = await h.call({ method: 'GET', url: `/v1/diagram?format=${format}&download=true`, as: 'auditor' });
    t.equal(d.headers['content-disposition'], `attachment; filename="crosslink-overlay.${ext}"`, `${format}: download`);
    if (format !== 'json') t.equal(d.body, r.body, `${format}: the same body`);
  }
});

t.test('GET /v1/diagram: wrong input is a 400 naming the field', async (t) => {
  const h = await setup(t);
  const r = await h.call({ method: 'GET', url: '/v1/diagram?format=png' });
  t.equal(r.statusCode, 400);
  t.match(r.json(), {
    code: 'invalid_request',
    details: [{ path: 'querystring.format', message: 'must be one of "json", "dot", "svg", "mermaid"' }],
  });
  const d = await h.call({ method: 'GET', url: '/v1/diagram?download=yes' });
  t.equal(d.statusCode, 400);
  t.match(d.json(), { details: [{ path: 'querystring.download' }] });
  const u = await h.call({ method: 'GET', url: '/v1/diagram?colour=red' });
  t.match(u.json(), { details: [{ path: 'querystring.colour', message: 'unknown field "colour"' }] });
});

t.test('GET /v1/diagram before health is evaluated: boxes unknown, not an error', async (t) => {
  const h = await setup(t, null);
  const r = await h.call({ method: 'GET', url: '/v1/diagram' });
  t.equal(r.statusCode, 200);
  t.match(r.json<DiagramModel>().boxes, [
    { name: 'box-a', state: 'unknown', reason: 'health not evaluated yet' },
    { name: 'box-b', state: 'unknown' },
  ]);
});
