import Fastify from 'fastify';
import type { PolicyRuleWindow } from '../policy/rule-windows.js';
import t from 'tap';
import { CrosslinkError, ERROR_CODES, isCrosslinkError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import { agentInput, probeSpec, T0 } from '../health/health.fixture.js';
import { HealthMonitor } from '../health/monitor.js';
import type { AgentHealthInput } from '../health/types.js';
import { healthStatusRoutes } from './health-status.js';
import { ErrorBody } from './schemas.js';
import type { UnconfirmedView, UnservedView } from '../distribute/port.js';

async function build(
  inputs: (now: number) => AgentHealthInput[],
  opts: {
    evaluate?: boolean;
    authorize?: boolean;
    unserved?: () => UnservedView[];
    unconfirmed?: () => UnconfirmedView[];
    ruleWindows?: () => PolicyRuleWindow[];
  } = {},
) {
  let now = T0;
  let source = inputs;
  const monitor = new HealthMonitor({
    clock: { nowMs: () => now },
    log: silentLogger(),
    source: () => source(now),
    timers: { setInterval: () => 0, clearInterval: () => undefined },
  });
  if (opts.evaluate !== false) await monitor.refresh();
  const app = Fastify();
  // The app's real handler lives in api/error-handler.ts; this stand-in maps the same way.
  app.setErrorHandler((err, _req, reply) => {
    const ce = isCrosslinkError(err) ? err : new CrosslinkError('internal', String(err));
    void reply.status(ERROR_CODES[ce.code].status).send(ce.toJSON());
  });
  const authorize = opts.authorize
    ? async (req: { headers: Record<string, unknown> }) => {
        if (req.headers.authorization !== 'Bearer ok') throw new CrosslinkError('unauthenticated', 'no');
      }
    : undefined;
  app.addSchema(ErrorBody);
  await app.register(
    healthStatusRoutes({
      monitor,
      authorize,
      unserved: opts.unserved,
      unconfirmed: opts.unconfirmed,
      ruleWindows: opts.ruleWindows,
    }),
  );
  return {
    app,
    monitor,
    advance: (ms: number) => {
      now += ms;
    },
    setSource: (f: (now: number) => AgentHealthInput[]) => {
      source = f;
    },
  };
}

// The answers' shapes, as far as these tests read them.
interface FleetBody {
  state: string;
  reason: string;
  counts: { agents: { down: number } };
  agents: { name: string; state: string }[];
  links: { name: string; state: string }[];
  probes: { id: string; state: string }[];
  serving: { agent: string; isHealthy: boolean }[];
}
interface AgentBody {
  agent: { name: string };
  links: { name: string }[];
  probes: unknown[];
  serving: { isHealthy: boolean };
}
interface HistoryBody {
  events: { from: string | null; to: string | null; subject: string }[];
}
interface ErrorBodyJson {
  code: string;
  details: { path: string }[];
}

const fleet = (now: number) => [
  agentInput('a', now, { peers: ['b'], probes: [probeSpec('care/0')] }),
  agentInput('b', now, { peers: ['a', 'c'] }),
  agentInput('c', now, { peers: ['b'], reportAgoMs: 40_000, isConnected: false }),
];

t.test('GET /v1/health: overall plus every agent, link, probe and serving health', async (t) => {
  const { app } = await build(fleet);
  const res = await app.inject({ method: 'GET', url: '/v1/health' });
  t.equal(res.statusCode, 200);
  const body = res.json<FleetBody>();
  t.equal(body.state, 'down');
  t.equal(body.reason, '1 agent down, 1 link down');
  t.same(
    body.agents.map((a: { name: string; state: string }) => [a.name, a.state]),
    [
      ['a', 'ok'],
      ['b', 'ok'],
      ['c', 'down'],
    ],
  );
  t.same(
    body.links.map((l: { name: string; state: string }) => [l.name, l.state]),
    [
      ['a:b', 'ok'],
      ['b:c', 'down'],
    ],
  );
  t.same(
    body.probes.map((p: { id: string; state: string }) => [p.id, p.state]),
    [['a/care/0', 'ok']],
  );
  t.same(
    body.serving.map((s: { agent: string; isHealthy: boolean }) => [s.agent, s.isHealthy]),
    [
      ['a', true],
      ['b', true],
      ['c', true],
    ],
  );
  t.equal(body.counts.agents.down, 1);
});

t.test("the response schemas lose nothing: each answer is the monitor's own data, every field", async (t) => {
  const unserved: UnservedView[] = [{ subnet: 'x', reason: 'nobody advertises it', isAwaitingEnrolment: false }];
  const unconfirmed: UnconfirmedView[] = [
    { subnet: 'y', candidates: ['a', 'b'], reason: 'a is unhealthy; b is unhealthy' },
  ];
  const rich = (now: number) => [
    agentInput('a', now, { peers: ['b'], probes: [probeSpec('care/0'), probeSpec('care/1')] }),
    agentInput('b', now, { peers: ['a', 'c'] }),
    agentInput('c', now, { peers: ['b'], reportAgoMs: 40_000, isConnected: false }),
    agentInput('d', now, { peers: [], isRevoked: true }),
  ];
  const ruleWindows = [
    {
      rule: 'temp',
      notBefore: null,
      notAfter: '2026-12-31T00:00:00.000Z',
      state: 'open' as const,
      secondsToExpiry: 60,
    },
  ];
  const { app, monitor, advance } = await build(rich, {
    unserved: () => unserved,
    unconfirmed: () => unconfirmed,
    ruleWindows: () => ruleWindows,
  });
  advance(45_000);
  await monitor.refresh();
  const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;
  const serving = [...monitor.servingDetail()]
    .map(([agent, s]) => ({ agent, ...s }))
    .sort((x, y) => (x.agent < y.agent ? -1 : 1));
  const fleetRes = await app.inject({ method: 'GET', url: '/v1/health' });
  t.same(
    fleetRes.json(),
    plain({ ...monitor.snapshot(), serving, unserved, unconfirmed, ruleWindows }),
    'GET /v1/health',
  );
  const s = monitor.snapshot()!;
  const detail = await app.inject({ method: 'GET', url: '/v1/health/agents/a' });
  t.same(
    detail.json(),
    plain({
      atMs: s.atMs,
      agent: s.agents.find((x) => x.name === 'a'),
      links: s.links.filter((l) => l.agents.includes('a')),
      probes: s.probes.filter((p) => p.agent === 'a'),
      serving: serving.find((x) => x.agent === 'a'),
    }),
    'GET /v1/health/agents/a',
  );
  const history = await app.inject({ method: 'GET', url: '/v1/health/history' });
  t.same(history.json(), plain({ events: await monitor.history({}) }), 'GET /v1/health/history');
  t.ok(history.json<{ events: unknown[] }>().events.length > 0, 'with events to compare');
});

t.test('GET /v1/health/agents/:name', async (t) => {
  const { app } = await build(fleet);
  const res = await app.inject({ method: 'GET', url: '/v1/health/agents/b' });
  t.equal(res.statusCode, 200);
  const body = res.json<AgentBody>();
  t.equal(body.agent.name, 'b');
  t.same(
    body.links.map((l: { name: string }) => l.name),
    ['a:b', 'b:c'],
  );
  t.same(body.probes, []);
  t.equal(body.serving.isHealthy, true);

  const missing = await app.inject({ method: 'GET', url: '/v1/health/agents/nope' });
  t.equal(missing.statusCode, 404);
  t.same(missing.json(), {
    code: 'not_found',
    message: 'no agent named "nope"',
    details: [{ path: 'params.name', message: 'unknown agent' }],
  });
});

t.test('GET /v1/health/history with filters', async (t) => {
  const h = await build(fleet);
  h.advance(10_000);
  h.setSource((now) => fleet(now).slice(0, 2));
  await h.monitor.refresh();
  const all = (await h.app.inject({ method: 'GET', url: '/v1/health/history' })).json<HistoryBody>();
  t.ok(all.events.length >= 6);
  const link = (await h.app.inject({ method: 'GET', url: '/v1/health/history?subject=link:b:c' })).json<HistoryBody>();
  t.same(
    link.events.map((e: { from: string | null; to: string | null }) => [e.from, e.to]),
    [
      [null, 'down'],
      ['down', null],
    ],
  );
  const since = (
    await h.app.inject({ method: 'GET', url: `/v1/health/history?since=${T0 + 10_000}&kind=agent` })
  ).json<HistoryBody>();
  t.same(
    since.events.map((e: { subject: string }) => e.subject),
    ['agent:c'],
  );
  const iso = (
    await h.app.inject({ method: 'GET', url: `/v1/health/history?since=${new Date(T0 + 1).toISOString()}` })
  ).json<HistoryBody>();
  t.same(
    iso.events.map((e: { subject: string }) => e.subject),
    ['overall', 'agent:c', 'link:b:c'],
  );
  const limited = (await h.app.inject({ method: 'GET', url: '/v1/health/history?limit=1' })).json<HistoryBody>();
  t.equal(limited.events.length, 1);

  for (const [url, path] of [
    ['since=yesterday', 'query.since'],
    ['limit=0', 'query.limit'],
    ['kind=bogus', 'query.kind'],
  ] as const) {
    const bad = await h.app.inject({ method: 'GET', url: `/v1/health/history?${url}` });
    t.equal(bad.statusCode, 400, url);
    t.equal(bad.json<ErrorBodyJson>().code, 'invalid_request');
    t.equal(bad.json<ErrorBodyJson>().details[0]?.path, path);
  }
});

t.test('before the first evaluation: 503 unavailable', async (t) => {
  const { app } = await build(fleet, { evaluate: false });
  const res = await app.inject({ method: 'GET', url: '/v1/health' });
  t.equal(res.statusCode, 503);
  t.equal(res.json<ErrorBodyJson>().code, 'unavailable');
});

t.test('authorize hook guards every route', async (t) => {
  const { app } = await build(fleet, { authorize: true });
  for (const url of ['/v1/health', '/v1/health/agents/a', '/v1/health/history']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 401, url);
    t.equal((await app.inject({ method: 'GET', url, headers: { authorization: 'Bearer ok' } })).statusCode, 200, url);
  }
});
