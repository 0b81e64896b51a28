// The health monitor as controller/main.ts wires it: /v1/health behind a token with agents.read,
// /metrics open (or behind the optional metrics token), and the health thresholds from settings.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { silentLogger } from '../../lib/logger.js';
import { resolveSettings, runController } from '../main.js';

async function start(t: { teardown(fn: () => Promise<void>): void }, extra: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'xl-health-wiring-'));
  const c = await runController({
    settings: { 'data-dir': dir, listen: '127.0.0.1:0', 'health-interval-seconds': 0.1, ...extra },
    log: silentLogger(),
    print: () => undefined,
    handleSignals: false,
  });
  t.teardown(async () => {
    await c.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  return { c, token };
}

t.test('GET /v1/health needs a token and serves the monitor snapshot; /metrics is open by default', async (t) => {
  const { c, token } = await start(t);
  await c.monitor.refresh();
  t.equal((await c.app.inject({ method: 'GET', url: '/v1/health' })).statusCode, 401);
  const res = await c.app.inject({ method: 'GET', url: '/v1/health', headers: { authorization: `Bearer ${token}` } });
  t.equal(res.statusCode, 200);
  const body = res.json<{ state: string; reason: string; serving: unknown[] }>();
  t.equal(body.state, 'unknown');
  t.equal(body.reason, 'no agents');
  t.same(body.serving, []);
  const hist = await c.app.inject({
    method: 'GET',
    url: '/v1/health/history?kind=subnet',
    headers: { authorization: `Bearer ${token}` },
  });
  t.equal(hist.statusCode, 200);
  const m = await c.app.inject({ method: 'GET', url: '/metrics' });
  t.equal(m.statusCode, 200);
  t.match(m.body, /crosslink_streams_connected 0/);
  t.match(m.body, /crosslink_health_state\{state="unknown"\} 1/);
});

t.test('with metrics-token, /metrics wants that bearer token', async (t) => {
  const { c } = await start(t, { 'metrics-token': 'scrape-secret-0123456789' });
  t.equal((await c.app.inject({ method: 'GET', url: '/metrics' })).statusCode, 401);
  t.equal(
    (
      await c.app.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: 'Bearer wrong-wrong-wrong-wrong' },
      })
    ).statusCode,
    401,
  );
  t.equal(
    (
      await c.app.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: 'Bearer scrape-secret-0123456789' },
      })
    ).statusCode,
    200,
  );
});

t.test('health settings are validated with the key named', async (t) => {
  await t.rejects(
    resolveSettings({ 'data-dir': '/tmp/x', 'report-interval-seconds': 0 }),
    /report-interval-seconds: must be between/,
  );
  await t.rejects(
    resolveSettings({ 'data-dir': '/tmp/x', 'handshake-degraded-seconds': 60, 'handshake-down-seconds': 30 }),
    /handshake-down-seconds: must not be below/,
  );
  await t.rejects(resolveSettings({ 'data-dir': '/tmp/x', 'probe-interval-seconds': 1.5 }), /probe-interval-seconds/);
  await t.rejects(resolveSettings({ 'data-dir': '/tmp/x', 'metrics-token': 'short' }), /metrics-token/);
  const ok = await resolveSettings({
    'data-dir': '/tmp/x',
    'report-interval-seconds': 0.5,
    'failover-hold-down-seconds': 2,
  });
  t.equal(ok['report-interval-seconds'], 0.5);
});
