import t from 'tap';
import { diffHealth, evaluateHealth, probeTargetText } from './evaluate.js';
import {
  agentInput,
  applyError,
  peerStatus,
  probeResult,
  probeSpec,
  report,
  T0,
  type AgentInputOpts,
} from './health.fixture.js';
import type { AgentHealthInput, HealthState } from './types.js';

const NOW = T0 + 600_000;
const opts = { reportIntervalMs: 10_000, handshakeDegradedSeconds: 180, handshakeDownSeconds: 300 };

t.test('agent states', async (t) => {
  const cases: Array<{
    name: string;
    input: AgentHealthInput;
    state: HealthState;
    reason: string | RegExp;
    o?: object;
  }> = [
    { name: 'healthy', input: agentInput('a', NOW), state: 'ok', reason: 'generation 5 applied, reported 2 s ago' },
    {
      name: 'stale config',
      input: agentInput('a', NOW, { applied: 41, desiredGeneration: 43 }),
      state: 'degraded',
      reason: 'generation 41 applied, 43 current',
      o: { staleGraceMs: 0 },
    },
    {
      name: 'stale config within the grace period is still ok',
      input: agentInput('a', NOW, { applied: 41, desiredGeneration: 43 }),
      state: 'ok',
      reason: /generation 41 applied/,
    },
    {
      name: 'apply failed',
      input: agentInput('a', NOW, { errors: [applyError()] }),
      state: 'degraded',
      reason: 'apply failed: nft -f /run/crosslink/ruleset.nft exited 1: Error: syntax error',
    },
    {
      name: 'terminal apply failure, several errors',
      input: agentInput('a', NOW, {
        errors: [applyError({ isTerminal: true, command: '', step: 'routes', stderr: '' }), applyError()],
      }),
      state: 'degraded',
      reason: 'apply failed (config rejected, not retried): routes failed (+1 more)',
    },
    {
      name: 'silent three intervals, no stream',
      input: agentInput('a', NOW, { reportAgoMs: 35_000, isConnected: false }),
      state: 'down',
      reason: 'not reported for 35 s (3 intervals)',
    },
    {
      name: 'silent but stream connected',
      input: agentInput('a', NOW, { reportAgoMs: 35_000 }),
      state: 'degraded',
      reason: 'not reported for 35 s (3 intervals), config stream connected',
    },
    {
      name: 'late by less than three intervals, no stream: a slow control plane is not a failure',
      input: agentInput('a', NOW, { reportAgoMs: 25_000, isConnected: false }),
      state: 'ok',
      reason: /reported 25 s ago/,
    },
    {
      name: 'never reported, no stream',
      input: agentInput('a', NOW, { lastReportAtMs: null, lastReport: null, isConnected: false }),
      state: 'down',
      reason: 'never reported, no config stream',
    },
    {
      name: 'never reported, controller just started',
      input: agentInput('a', NOW, { lastReportAtMs: null, lastReport: null, isConnected: false }),
      state: 'unknown',
      reason: 'no report yet (controller started 12 s ago)',
      o: { controllerStartedAtMs: NOW - 12_000 },
    },
    {
      name: 'never reported since controller start long ago',
      input: agentInput('a', NOW, { lastReportAtMs: null, lastReport: null, isConnected: false }),
      state: 'down',
      reason: 'not reported since controller start 600 s ago, no config stream',
      o: { controllerStartedAtMs: T0 },
    },
    {
      name: 'enrolled 5 s ago, long after the controller started: judged from its enrolment',
      input: {
        ...agentInput('a', NOW, { lastReportAtMs: null, lastReport: null, isConnected: false }),
        enrolledAtMs: NOW - 5_000,
      },
      state: 'unknown',
      reason: 'enrolled 5 s ago, no report yet',
      o: { controllerStartedAtMs: T0 },
    },
    {
      name: 'enrolled 200 s ago and never connected',
      input: {
        ...agentInput('a', NOW, { lastReportAtMs: null, lastReport: null, isConnected: false }),
        enrolledAtMs: NOW - 200_000,
      },
      state: 'down',
      reason: 'enrolled 200 s ago and not connected since: is its agent running (crosslink agent run)?',
      o: { controllerStartedAtMs: T0 },
    },
    {
      name: 'enrolled before the controller started: judged from the start',
      input: {
        ...agentInput('a', NOW, { lastReportAtMs: null, lastReport: null, isConnected: false }),
        enrolledAtMs: T0 - 1_000_000,
      },
      state: 'down',
      reason: 'not reported since controller start 600 s ago, no config stream',
      o: { controllerStartedAtMs: T0 },
    },
    {
      name: 'connected, no report yet',
      input: agentInput('a', NOW, { lastReportAtMs: null, lastReport: null }),
      state: 'degraded',
      reason: 'config stream connected but no report received',
    },
    { name: 'revoked', input: agentInput('a', NOW, { isRevoked: true }), state: 'unknown', reason: 'revoked' },
    {
      name: 'stale and failing: both reasons',
      input: agentInput('a', NOW, { applied: 4, desiredGeneration: 5, errors: [applyError({ stderr: 'boom' })] }),
      state: 'degraded',
      reason: 'apply failed: nft -f /run/crosslink/ruleset.nft exited 1: boom; generation 4 applied, 5 current',
      o: { staleGraceMs: 0 },
    },
  ];
  for (const c of cases) {
    const s = evaluateHealth([c.input], NOW, { ...opts, ...c.o });
    t.equal(s.agents[0]?.state, c.state, `${c.name}: state`);
    if (typeof c.reason === 'string') t.equal(s.agents[0]?.reason, c.reason, `${c.name}: reason`);
    else t.match(s.agents[0]?.reason, c.reason, `${c.name}: reason`);
  }
});

t.test('stale config: the grace period counts from when the generation became desired', async (t) => {
  const first = evaluateHealth([agentInput('a', T0, { applied: 5, desiredGeneration: 6 })], T0, opts);
  t.equal(first.agents[0]?.state, 'ok');
  const later = evaluateHealth(
    [agentInput('a', T0 + 40_000, { applied: 5, desiredGeneration: 6 })],
    T0 + 40_000,
    opts,
    first,
  );
  t.equal(later.agents[0]?.state, 'degraded');
  t.equal(later.agents[0]?.desiredSinceMs, T0);
  t.equal(later.agents[0]?.reason, 'generation 5 applied, 6 current');
});

t.test('config stream down for three intervals while reports arrive: degraded', async (t) => {
  const first = evaluateHealth([agentInput('a', T0, { isConnected: false })], T0, opts);
  t.equal(first.agents[0]?.state, 'ok', 'a reconnecting stream is not a problem yet');
  const later = evaluateHealth([agentInput('a', T0 + 31_000, { isConnected: false })], T0 + 31_000, opts, first);
  t.equal(later.agents[0]?.state, 'degraded');
  t.equal(later.agents[0]?.reason, 'config stream down for 31 s');
});

function pair(nowMs: number, ab: object = {}, ba: object = {}, extra: AgentInputOpts = {}): AgentHealthInput[] {
  return [
    agentInput('b-box', nowMs, { peers: ['a-box'], peerOpts: { 'a-box': ba }, ...extra }),
    agentInput('a-box', nowMs, { peers: ['b-box'], peerOpts: { 'b-box': ab } }),
  ];
}

t.test('link states', async (t) => {
  const cases: Array<{
    name: string;
    input: AgentHealthInput[];
    state: HealthState;
    reason: string;
    prevAgeMs?: number;
  }> = [
    { name: 'healthy', input: pair(NOW), state: 'ok', reason: 'handshake 22 s ago, rtt 1.5 ms, loss 0%' },
    {
      name: 'handshake 190 s old',
      input: pair(NOW, { handshakeAgoSeconds: 188 }, { handshakeAgoSeconds: 200 }),
      state: 'degraded',
      reason: 'no handshake for 190 s',
    },
    {
      name: 'handshake 310 s old',
      input: pair(NOW, { handshakeAgoSeconds: 308 }, { handshakeAgoSeconds: 308 }),
      state: 'down',
      reason: 'no handshake for 310 s',
    },
    {
      name: 'one end saw a recent handshake: the youngest counts',
      input: pair(NOW, { handshakeAgoSeconds: 400 }, { handshakeAgoSeconds: 10 }),
      state: 'ok',
      reason: 'handshake 12 s ago, rtt 1.5 ms, loss 0%',
    },
    {
      name: 'peer probes lost both ways',
      input: pair(NOW, { isReachable: false, lossRatio: 1 }, { isReachable: false, lossRatio: 1 }),
      state: 'down',
      reason: 'peer probes lost both ways (10 of last 10)',
    },
    {
      name: 'peer probe failing one way',
      input: pair(NOW, { isReachable: false, lossRatio: 0.3 }),
      state: 'degraded',
      reason: 'peer probe a-box->b-box failed (loss 30%)',
    },
    {
      name: 'loss above threshold',
      input: pair(NOW, {}, { lossRatio: 0.2 }),
      state: 'degraded',
      reason: 'peer probe b-box->a-box loss 20%',
    },
    {
      name: 'an end agent is down',
      input: pair(NOW, {}, {}, { reportAgoMs: 45_000, isConnected: false }),
      state: 'down',
      reason: 'agent b-box down: not reported for 45 s (4 intervals)',
    },
    {
      name: 'never a handshake, just configured',
      input: pair(NOW, { handshakeAgoSeconds: null }, { handshakeAgoSeconds: null }),
      state: 'unknown',
      reason: 'no handshake yet',
    },
    {
      name: 'never a handshake, configured 5 min ago',
      input: pair(NOW, { handshakeAgoSeconds: null }, { handshakeAgoSeconds: null }),
      state: 'down',
      reason: 'no handshake since configured 310 s ago',
      prevAgeMs: 310_000,
    },
    {
      name: 'not configured on either end yet',
      input: [
        agentInput('a-box', NOW, { peers: ['b-box'], lastReport: report({ atMs: NOW - 2000 }) }),
        agentInput('b-box', NOW, { peers: [], lastReport: report({ atMs: NOW - 2000 }) }),
      ],
      state: 'unknown',
      reason: 'a-box has no status for b-box yet, b-box has no status for a-box yet',
    },
  ];
  for (const c of cases) {
    const prev = c.prevAgeMs === undefined ? undefined : evaluateHealth(c.input, NOW - c.prevAgeMs, opts);
    const s = evaluateHealth(c.input, NOW, opts, prev);
    t.equal(s.links.length, 1, `${c.name}: one link`);
    t.equal(s.links[0]?.name, 'a-box:b-box', `${c.name}: name`);
    t.equal(s.links[0]?.state, c.state, `${c.name}: state`);
    t.equal(s.links[0]?.reason, c.reason, `${c.name}: reason`);
  }
});

t.test('handshake age survives clock skew between agent and controller', async (t) => {
  // The agent's clock is 1 h ahead; its report says the handshake was 20 s before its own "now".
  const skewed = agentInput('a-box', NOW, { peers: ['b-box'] });
  const atAgent = NOW - 2000 + 3_600_000;
  skewed.lastReport = report({ atMs: atAgent, peers: [peerStatus('b-box', atAgent)] });
  const s = evaluateHealth([skewed, agentInput('b-box', NOW, { peers: ['a-box'] })], NOW, opts);
  t.equal(s.agents[0]?.peers[0]?.handshakeAgeSeconds, 22);
});

t.test('links to revoked or unknown agents are not links', async (t) => {
  const s = evaluateHealth(
    [agentInput('a', NOW, { peers: ['b', 'ghost'] }), agentInput('b', NOW, { peers: ['a'], isRevoked: true })],
    NOW,
    opts,
  );
  t.same(s.links, []);
  t.same(s.counts.agents, { ok: 1, degraded: 0, down: 0, unknown: 0 }, 'revoked agents are not counted');
  t.equal(s.state, 'ok');
});

t.test('probe states', async (t) => {
  const spec = probeSpec('care-records/0');
  const deny = probeSpec('no-ssh/0', { port: 22, expectDeny: true });
  const icmp = probeSpec('ping/0', { protocol: 'icmp', port: 0, target: '2001:db8::5' });
  const cases: Array<{ name: string; input: AgentHealthInput; state: HealthState; reason: string }> = [
    {
      name: 'ok',
      input: agentInput('a', NOW, { probes: [spec] }),
      state: 'ok',
      reason: 'probe 10.20.1.5:443/tcp: connected',
    },
    {
      name: 'refused',
      input: agentInput('a', NOW, {
        probes: [spec],
        probeResults: [probeResult(spec.name, NOW - 2000, { isOk: false, detail: 'connection refused' })],
      }),
      state: 'down',
      reason: 'probe 10.20.1.5:443/tcp: connection refused',
    },
    {
      name: 'deny probe connected',
      input: agentInput('a', NOW, {
        probes: [deny],
        probeResults: [probeResult(deny.name, NOW - 2000, { isOk: false, detail: '' })],
      }),
      state: 'down',
      reason: 'probe 10.20.1.5:22/tcp (expect deny): connected',
    },
    {
      name: 'icmp v6 no result',
      input: agentInput('a', NOW, { probes: [icmp], probeResults: [] }),
      state: 'unknown',
      reason: 'probe 2001:db8::5/icmp: no result yet',
    },
    {
      name: 'old result',
      input: agentInput('a', NOW, {
        probes: [spec],
        probeResults: [probeResult(spec.name, NOW - 2000, { agoMs: 90_000 })],
      }),
      state: 'unknown',
      reason: 'probe 10.20.1.5:443/tcp: last result 90 s old',
    },
    {
      name: 'agent silent',
      input: agentInput('a', NOW, { probes: [spec], reportAgoMs: 60_000 }),
      state: 'unknown',
      reason: 'agent a not reporting',
    },
  ];
  for (const c of cases) {
    const s = evaluateHealth([c.input], NOW, opts);
    t.equal(s.probes[0]?.state, c.state, `${c.name}: state`);
    t.equal(s.probes[0]?.reason, c.reason, `${c.name}: reason`);
    t.equal(s.probes[0]?.id, `a/${c.input.probes[0]?.name}`);
  }
  t.equal(probeTargetText({ target: '2001:db8::1', port: 443, protocol: 'tcp' }), '[2001:db8::1]:443/tcp');
});

t.test('overall state, counts and reason', async (t) => {
  const spec = probeSpec('care-records/0');
  const healthy = [agentInput('a', NOW, { peers: ['b'], probes: [spec] }), agentInput('b', NOW, { peers: ['a'] })];
  const ok = evaluateHealth(healthy, NOW, opts);
  t.equal(ok.state, 'ok');
  t.equal(ok.reason, '2 agents ok, 1 link ok, 1 probe ok');
  const broken = evaluateHealth(
    [
      agentInput('a', NOW, {
        peers: ['b'],
        probes: [spec],
        probeResults: [probeResult(spec.name, NOW, { isOk: false, detail: 'timeout' })],
      }),
      agentInput('b', NOW, { peers: ['a'], reportAgoMs: 40_000, isConnected: false }),
    ],
    NOW,
    opts,
  );
  t.equal(broken.state, 'down');
  t.equal(broken.reason, '1 agent down, 1 link down, 1 probe down');
  t.same(broken.counts.links, { ok: 0, degraded: 0, down: 1, unknown: 0 });
  const none = evaluateHealth([], NOW, opts);
  t.equal(none.state, 'unknown');
  t.equal(none.reason, 'no agents');
});

t.test('deterministic: input order does not matter, output is JSON', async (t) => {
  const input = [
    agentInput('c', NOW, { peers: ['a', 'b'], probes: [probeSpec('r/1'), probeSpec('r/0')] }),
    agentInput('a', NOW, { peers: ['c', 'b'] }),
    agentInput('b', NOW, { peers: ['a', 'c'] }),
  ];
  const one = evaluateHealth(input, NOW, opts);
  const two = evaluateHealth([...input].reverse(), NOW, opts);
  t.same(JSON.parse(JSON.stringify(one)), JSON.parse(JSON.stringify(two)));
  t.same(
    one.links.map((l) => l.name),
    ['a:b', 'a:c', 'b:c'],
  );
  t.same(
    one.probes.map((p) => p.id),
    ['c/r/0', 'c/r/1'],
  );
  t.doesNotThrow(() => JSON.stringify(one), 'no bigint in the snapshot');
});

t.test('sinceMs carries over while the state holds, resets when it changes', async (t) => {
  const s1 = evaluateHealth(pair(T0), T0, opts);
  const s2 = evaluateHealth(pair(T0 + 10_000), T0 + 10_000, opts, s1);
  t.equal(s2.links[0]?.sinceMs, T0);
  t.equal(s2.agents[0]?.sinceMs, T0);
  t.equal(s2.sinceMs, T0);
  const s3 = evaluateHealth(
    pair(T0 + 20_000, { handshakeAgoSeconds: 250 }, { handshakeAgoSeconds: 250 }),
    T0 + 20_000,
    opts,
    s2,
  );
  t.equal(s3.links[0]?.state, 'degraded');
  t.equal(s3.links[0]?.sinceMs, T0 + 20_000);
  t.equal(s3.agents[0]?.sinceMs, T0, 'the agents did not change');
  t.equal(s3.links[0]?.configuredSinceMs, T0);
});

t.test('diffHealth: appeared, changed, disappeared; reason changes are not events', async (t) => {
  const s1 = evaluateHealth(pair(T0), T0, opts);
  const first = diffHealth(null, s1);
  t.same(
    first.map((e) => [e.subject, e.from, e.to]),
    [
      ['overall', null, 'ok'],
      ['agent:a-box', null, 'ok'],
      ['agent:b-box', null, 'ok'],
      ['link:a-box:b-box', null, 'ok'],
    ],
  );
  const s2 = evaluateHealth(pair(T0 + 5000), T0 + 5000, opts, s1);
  t.same(diffHealth(s1, s2), [], 'ages changed, states did not');
  const s3 = evaluateHealth(
    pair(T0 + 10_000, { handshakeAgoSeconds: 320 }, { handshakeAgoSeconds: 320 }),
    T0 + 10_000,
    opts,
    s2,
  );
  t.same(diffHealth(s2, s3), [
    { subject: 'overall', kind: 'overall', from: 'ok', to: 'down', atMs: T0 + 10_000, reason: '1 link down' },
    {
      subject: 'link:a-box:b-box',
      kind: 'link',
      from: 'ok',
      to: 'down',
      atMs: T0 + 10_000,
      reason: 'no handshake for 322 s',
    },
  ]);
  const s4 = evaluateHealth([agentInput('a-box', T0 + 20_000)], T0 + 20_000, opts, s3);
  t.same(
    diffHealth(s3, s4).map((e) => [e.subject, e.from, e.to, e.reason]),
    [
      ['overall', 'down', 'ok', '1 agent ok'],
      ['agent:b-box', 'ok', null, 'agent removed'],
      ['link:a-box:b-box', 'down', null, 'no longer in the configuration'],
    ],
  );
});
