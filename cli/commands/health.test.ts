import t from 'tap';
import yargs from 'yargs';
import { evaluateHealth } from '../../controller/health/evaluate.js';
import { agentInput, T0 } from '../../controller/health/health.fixture.js';
import {
  createCheckCommand,
  createStatusCommand,
  fetchHealthViaApi,
  runCheck,
  runStatus,
  type ConnectionArgs,
  type HealthCliDeps,
} from './health.js';

const FP = 'ab'.repeat(32);
const conn = { controller: 'https://ctl.example:8443', token: 'tok', caFingerprint: FP };
const healthy = evaluateHealth([agentInput('a', T0, { peers: ['b'] }), agentInput('b', T0, { peers: ['a'] })], T0, {});
const broken = evaluateHealth(
  [
    agentInput('a', T0, { peers: ['b'] }),
    agentInput('b', T0, { peers: ['a'], reportAgoMs: 50_000, isConnected: false }),
  ],
  T0,
  {},
);

/** `answer`: the health to return, or a function returning a promise of it (e.g. one that rejects). */
function io(answer: unknown) {
  const out: string[] = [];
  const err: string[] = [];
  const calls: ConnectionArgs[] = [];
  const deps: HealthCliDeps = {
    fetchHealth: async (c) => {
      calls.push(c);
      return typeof answer === 'function' ? (answer as () => Promise<unknown>)() : answer;
    },
    out: (s) => out.push(s),
    err: (s) => err.push(s),
  };
  return { deps, out, err, calls };
}

t.test('check: exit codes and one line on stdout', async (t) => {
  const unreachable = Object.assign(
    new Error('cannot reach the controller at ctl.example:8443: connect ECONNREFUSED'),
    { name: 'UnreachableError' },
  );
  const cases: Array<[string, unknown, number, RegExp]> = [
    ['ok', healthy, 0, /^CROSSLINK OK - 2 agents ok, 1 link ok \| /],
    ['critical', broken, 2, /^CROSSLINK CRITICAL - agent b down: /],
    [
      'unreachable',
      async () => {
        throw unreachable;
      },
      3,
      /^CROSSLINK UNKNOWN - cannot reach the controller at ctl\.example:8443: connect ECONNREFUSED\n$/,
    ],
    [
      'refused token',
      async () => {
        throw Object.assign(new Error('unknown or revoked API token'), { code: 'unauthenticated' });
      },
      3,
      /^CROSSLINK UNKNOWN - unknown or revoked API token \(unauthenticated\)\n$/,
    ],
    [
      'not a health report',
      { hello: 1 },
      3,
      /^CROSSLINK UNKNOWN - the controller answered something that is not a health report\n$/,
    ],
  ];
  for (const [name, answer, code, line] of cases) {
    const h = io(answer);
    t.equal(await runCheck({ ...conn, timeout: 5 }, h.deps), code, `${name}: exit code`);
    t.equal(h.out.length, 1, `${name}: one write`);
    const [first = ''] = h.out;
    t.match(first, line, name);
    t.ok(first.endsWith('\n') && first.split('\n').length === 2, `${name}: exactly one line`);
  }
  const missing = io(healthy);
  t.equal(await runCheck({ controller: conn.controller }, missing.deps), 3);
  t.match(missing.out[0], /^CROSSLINK UNKNOWN - no API token/);
  t.equal(missing.calls.length, 0);
  for (const timeout of [Number('abc'), -5, 0, 1e9]) {
    const bad = io(healthy);
    t.equal(await runCheck({ ...conn, timeout }, bad.deps), 3, `check --timeout ${timeout}: UNKNOWN`);
    t.match(bad.out[0], /^CROSSLINK UNKNOWN - --timeout must be a number of seconds above 0 and at most 3600; got /);
    t.equal(bad.calls.length, 0, 'nothing fetched');
    const status = io(healthy);
    t.equal(await runStatus({ ...conn, timeout }, status.deps), 2, `status --timeout ${timeout}: usage error`);
  }
});

t.test('check filters pass through', async (t) => {
  const h = io(broken);
  t.equal(await runCheck({ ...conn, agent: 'a' }, h.deps), 0);
  t.equal(await runCheck({ ...conn, link: 'b:a' }, h.deps), 2);
  t.equal(await runCheck({ ...conn, probe: 'nope/0' }, h.deps), 3);
});

t.test('status: table, --json, errors', async (t) => {
  const h = io(broken);
  t.equal(await runStatus({ ...conn }, h.deps), 0);
  t.match(h.out[0], /^Overall: down/);
  t.match(h.out[0], /\nagent\s+b\s+DOWN\s+0s\s+not reported for 50 s/);
  const j = io(healthy);
  t.equal(await runStatus({ ...conn, json: true }, j.deps), 0);
  t.equal((JSON.parse(j.out[0] ?? '') as { state: string }).state, 'ok');
  const u = io(async () => {
    throw Object.assign(new Error('cannot reach'), { name: 'UnreachableError' });
  });
  t.equal(await runStatus({ ...conn }, u.deps), 3);
  t.match(u.err[0], /^crosslink status: cannot reach/);
  const m = io(healthy);
  t.equal(await runStatus({}, m.deps), 2);
  t.match(m.err[0], /no controller/);
});

t.test('yargs modules parse the flags and set process.exitCode', async (t) => {
  const saved = process.exitCode;
  t.teardown(() => {
    process.exitCode = saved;
  });
  const h = io(broken);
  await yargs([])
    .command(createCheckCommand(h.deps))
    .command(createStatusCommand(h.deps))
    .strict()
    .parseAsync([
      'check',
      '--controller',
      conn.controller,
      '--token',
      'tok',
      '--ca-fingerprint',
      FP,
      '--link',
      'a:b',
      '--timeout',
      '3',
    ]);
  t.equal(process.exitCode, 2);
  t.same(h.calls[0], { controller: conn.controller, token: 'tok', caFingerprint: FP, timeout: 3 });
  t.match(h.out[0], /^CROSSLINK CRITICAL - link a:b down/);
  await yargs([])
    .command(createStatusCommand(h.deps))
    .strict()
    .parseAsync(['status', '--controller', conn.controller, '--token', 'tok', '--ca-fingerprint', FP]);
  t.equal(process.exitCode, 0);
});

t.test('the real adapter: an unreachable controller is UNKNOWN', async (t) => {
  const h = io(null);
  h.deps.fetchHealth = fetchHealthViaApi;
  t.equal(await runCheck({ controller: 'https://127.0.0.1:1', token: 't', caFingerprint: FP, timeout: 2 }, h.deps), 3);
  t.match(h.out[0], /^CROSSLINK UNKNOWN - cannot reach the controller/);
});

t.test('check: thresholds and --json', async (t) => {
  const bad = io(healthy);
  t.equal(await runCheck({ ...conn, warning: ['speed=5'] }, bad.deps), 3, 'a bad threshold: UNKNOWN');
  t.match(bad.out[0], /^CROSSLINK UNKNOWN - --warning takes METRIC=RANGE/);
  t.equal(bad.calls.length, 0, 'nothing fetched');
  const w = io(healthy);
  t.equal(await runCheck({ ...conn, warning: ['rtt=1'] }, w.deps), 1);
  t.match(w.out[0], /^CROSSLINK WARNING - rtt 1\.5ms \(warning 1\); /);
  const j = io(broken);
  t.equal(await runCheck({ ...conn, json: true }, j.deps), 2, 'the same exit code with --json');
  const parsed = JSON.parse(j.out[0]!) as {
    status: string;
    exitCode: number;
    summary: string;
    perfdata: Record<string, string>;
  };
  t.match(parsed, { status: 'CRITICAL', exitCode: 2, summary: /^agent b down: /, perfdata: { agents_down: '1' } });
  const ju = io(healthy);
  t.equal(await runCheck({ controller: conn.controller, json: true }, ju.deps), 3);
  t.match(JSON.parse(ju.out[0]!), { status: 'UNKNOWN', exitCode: 3, summary: /^no API token/ });
});
