import t from 'tap';
import { evaluateHealth } from '../controller/health/evaluate.js';
import { agentInput, applyError, probeResult, probeSpec, T0 } from '../controller/health/health.fixture.js';
import type { AgentHealthInput } from '../controller/health/types.js';
import {
  checkHealth,
  formatDuration,
  formatStatus,
  isAlert,
  parseRange,
  parseThresholds,
  unreachableResult,
  type CheckFilter,
} from './health-format.js';

const care = probeSpec('care/0');
const fleet = (o: { a?: object; b?: object; c?: object } = {}): AgentHealthInput[] => [
  agentInput('a', T0, { peers: ['b'], probes: [care], ...o.a }),
  agentInput('b', T0, { peers: ['a', 'c'], ...o.b }),
  agentInput('c', T0, { peers: ['b'], ...o.c }),
];
const snap = (input: AgentHealthInput[], o: object = {}) => evaluateHealth(input, T0, { staleGraceMs: 0, ...o });
const PERF_OK =
  'agents_ok=3 agents_degraded=0 agents_down=0 agents_unknown=0 links_ok=2 links_degraded=0 links_down=0 links_unknown=0 probes_ok=1 probes_degraded=0 probes_down=0 probes_unknown=0 rtt=1.5ms loss=0% handshake=22s';

t.test('check: exit code, status and summary line per state', async (t) => {
  const cases: Array<{
    name: string;
    input: AgentHealthInput[];
    filter?: CheckFilter;
    exit: number;
    line: string | RegExp;
    o?: object;
  }> = [
    {
      name: 'all ok',
      input: fleet(),
      exit: 0,
      line: `CROSSLINK OK - 3 agents ok, 2 links ok, 1 probe ok | ${PERF_OK}`,
    },
    {
      name: 'degraded agent -> WARNING',
      input: fleet({ c: { applied: 41, desiredGeneration: 43 } }),
      exit: 1,
      line: 'CROSSLINK WARNING - agent c degraded: generation 41 applied, 43 current; 2 agents ok, 1 agent degraded, 2 links ok, 1 probe ok | agents_ok=2 agents_degraded=1 agents_down=0 agents_unknown=0 links_ok=2 links_degraded=0 links_down=0 links_unknown=0 probes_ok=1 probes_degraded=0 probes_down=0 probes_unknown=0 rtt=1.5ms loss=0% handshake=22s',
    },
    {
      name: 'link down -> CRITICAL, worst first, others counted',
      input: fleet({
        b: { peerOpts: { c: { handshakeAgoSeconds: 400 } }, errors: [applyError({ stderr: 'x' })] },
        c: { peerOpts: { b: { handshakeAgoSeconds: 400 } } },
      }),
      exit: 2,
      line: /^CROSSLINK CRITICAL - link b:c down: no handshake for 402 s \(\+1 more\); 2 agents ok, 1 agent degraded, 1 link ok, 1 link down, 1 probe ok \| .*links_down=1 /,
    },
    {
      name: 'probe down -> CRITICAL',
      input: fleet({ a: { probeResults: [probeResult('care/0', T0, { isOk: false, detail: 'connection refused' })] } }),
      exit: 2,
      line: /^CROSSLINK CRITICAL - probe a\/care\/0 down: probe 10\.20\.1\.5:443\/tcp: connection refused; 3 agents ok, 2 links ok, 1 probe down \| /,
    },
    {
      name: 'nothing known yet -> UNKNOWN',
      input: fleet({
        a: { lastReport: null, lastReportAtMs: null },
        b: { lastReport: null, lastReportAtMs: null },
        c: { lastReport: null, lastReportAtMs: null },
      }),
      o: { controllerStartedAtMs: T0 - 1000 },
      exit: 3,
      line: /^CROSSLINK UNKNOWN - agent a unknown: no report yet \(controller started 1 s ago\) \(\+5 more\); 0 agents ok, 3 agents unknown, 0 links ok, 2 links unknown, 1 probe unknown \| /,
    },
    {
      name: 'no agents',
      input: [],
      exit: 3,
      line: 'CROSSLINK UNKNOWN - no agents | agents_ok=0 agents_degraded=0 agents_down=0 agents_unknown=0 links_ok=0 links_degraded=0 links_down=0 links_unknown=0 probes_ok=0 probes_degraded=0 probes_down=0 probes_unknown=0',
    },
    {
      name: '--agent: only that agent',
      input: fleet({ c: { reportAgoMs: 60_000, isConnected: false } }),
      filter: { agent: 'a' },
      exit: 0,
      line: 'CROSSLINK OK - 1 agent ok | agents_ok=1 agents_degraded=0 agents_down=0 agents_unknown=0 rtt=1.5ms loss=0% handshake=22s',
    },
    {
      name: '--agent down',
      input: fleet({ c: { reportAgoMs: 60_000, isConnected: false } }),
      filter: { agent: 'c' },
      exit: 2,
      line: /^CROSSLINK CRITICAL - agent c down: not reported for 60 s \(6 intervals\); 0 agents ok, 1 agent down \| agents_ok=0 agents_degraded=0 agents_down=1 agents_unknown=0 rtt=1\.5ms loss=0% handshake=80s$/,
    },
    {
      name: '--link in either order',
      input: fleet({ c: { reportAgoMs: 60_000, isConnected: false } }),
      filter: { link: 'c:b' },
      exit: 2,
      line: /^CROSSLINK CRITICAL - link b:c down: agent c down: .*; 0 links ok, 1 link down \| links_ok=0 links_degraded=0 links_down=1 links_unknown=0 rtt=1\.5ms loss=0% handshake=22s$/,
    },
    {
      name: '--probe by name',
      input: fleet(),
      filter: { probe: 'care/0' },
      exit: 0,
      line: 'CROSSLINK OK - 1 probe ok | probes_ok=1 probes_degraded=0 probes_down=0 probes_unknown=0 rtt=2ms',
    },
    {
      name: 'unknown agent',
      input: fleet(),
      filter: { agent: 'zz' },
      exit: 3,
      line: 'CROSSLINK UNKNOWN - no agent named "zz"',
    },
    {
      name: 'unknown link and probe',
      input: fleet(),
      filter: { link: 'a:c', probe: 'x/1' },
      exit: 3,
      line: 'CROSSLINK UNKNOWN - no link "a:c", no probe "x/1"',
    },
    {
      name: 'a | or newline in a reason cannot break the line',
      input: fleet({ c: { errors: [applyError({ command: 'nft -f - | x', stderr: 'bad' })] } }),
      exit: 1,
      line: /^CROSSLINK WARNING - agent c degraded: apply failed: nft -f - \/ x exited 1: bad; [^|\n]* \| agents_ok=2 /,
    },
  ];
  for (const c of cases) {
    const r = checkHealth(snap(c.input, c.o), c.filter);
    t.equal(r.exitCode, c.exit, `${c.name}: exit code`);
    t.equal(r.status, ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'][c.exit], `${c.name}: status`);
    if (typeof c.line === 'string') t.equal(r.line, c.line, `${c.name}: line`);
    else t.match(r.line, c.line, `${c.name}: line`);
    t.notMatch(r.line, /\n/, `${c.name}: one line`);
    t.equal(r.line.split('|').length <= 2, true, `${c.name}: at most one "|"`);
  }
});

t.test('unreachable controller -> UNKNOWN', async (t) => {
  t.same(unreachableResult('cannot reach the controller at 10.0.0.1:8443: connect ECONNREFUSED\nmore'), {
    status: 'UNKNOWN',
    exitCode: 3,
    line: 'CROSSLINK UNKNOWN - cannot reach the controller at 10.0.0.1:8443: connect ECONNREFUSED more',
  });
});

t.test('status table: worst first, with for-how-long and reason', async (t) => {
  const earlier = evaluateHealth(fleet(), T0 - 312_000, {});
  const s = evaluateHealth(fleet({ c: { reportAgoMs: 60_000, isConnected: false } }), T0, {}, earlier);
  const text = formatStatus({
    ...s,
    serving: [
      { agent: 'c', isHealthy: false, sinceMs: T0 - 5000, reason: 'silent: no report for 60 s and no config stream' },
    ],
  });
  const lines = text.trimEnd().split('\n');
  t.match(lines[0], /^Overall: down for 0s - 1 agent down, 1 link down \(evaluated 2023-11-14T22:13:20\.000Z\)$/);
  t.match(lines[2], /^KIND\s+NAME\s+STATE\s+FOR\s+REASON$/);
  t.same(
    lines.slice(3, 9).map((l) => l.split(/\s+/).slice(0, 4)),
    [
      ['agent', 'c', 'DOWN', '0s'],
      ['link', 'b:c', 'DOWN', '0s'],
      ['agent', 'a', 'OK', '5m12s'],
      ['agent', 'b', 'OK', '5m12s'],
      ['link', 'a:b', 'OK', '5m12s'],
      ['probe', 'a/care/0', 'OK', '5m12s'],
    ],
  );
  t.match(lines[3], /not reported for 60 s \(6 intervals\)$/);
  t.same(lines.slice(-2), ['Not serving (failover):', '  c: silent: no report for 60 s and no config stream (for 5s)']);
});

t.test('durations', async (t) => {
  const cases: Array<[number, string]> = [
    [0, '0s'],
    [45_000, '45s'],
    [312_000, '5m12s'],
    [3 * 3600_000 + 4 * 60_000, '3h04m'],
    [51 * 3600_000, '2d03h'],
    [-5, '0s'],
  ];
  for (const [ms, want] of cases) t.equal(formatDuration(ms), want);
});

t.test('unserved subnets: listed by status, CRITICAL in check, named with the box that causes them', async (t) => {
  const unserved = [
    { subnet: 'cc-lan', reason: 'cc-edge does not advertise fd20:8::/64' },
    { subnet: 'lab', reason: 'lab-box is not enrolled' },
  ];
  const s = { ...snap(fleet()), unserved };
  const text = formatStatus(s);
  t.match(text, /\nsubnet\s+cc-lan\s+DOWN\s+-\s+unserved: cc-edge does not advertise fd20:8::\/64\n/);
  t.match(text, /\nsubnet\s+lab\s+DOWN\s+-\s+unserved: lab-box is not enrolled\n/);
  const c = checkHealth(s);
  t.equal(c.exitCode, 2);
  t.match(
    c.line,
    /^CROSSLINK CRITICAL - subnet cc-lan down: unserved: cc-edge does not advertise fd20:8::\/64 \(\+1 more\); 3 agents ok, 2 links ok, 1 probe ok, 2 subnets unserved \| .* subnets_unserved=2 subnets_awaiting_enrolment=0 rtt=1\.5ms loss=0% handshake=\d+s$/,
  );
  t.equal(
    checkHealth({ ...snap(fleet()), unserved: [] }).line,
    `CROSSLINK OK - 3 agents ok, 2 links ok, 1 probe ok | ${PERF_OK.replace(' rtt=', ' subnets_unserved=0 subnets_awaiting_enrolment=0 rtt=')}`,
  );
  // A subnet whose boxes have not enrolled yet (a staged roll-out): listed, not an outage.
  const staged = {
    ...snap(fleet()),
    unserved: [{ subnet: 'lab', reason: 'lab-box is not enrolled', isAwaitingEnrolment: true }],
  };
  t.match(
    formatStatus(staged),
    /\nsubnet\s+lab\s+UNKNOWN\s+-\s+unserved until its box enrols: lab-box is not enrolled\n/,
  );
  t.match(
    checkHealth(staged).line,
    /^CROSSLINK OK - 3 agents ok, 2 links ok, 1 probe ok \| .* subnets_unserved=0 subnets_awaiting_enrolment=1 /,
  );
  // --agent: the subnets its box leaves unserved come with it.
  const byAgent = checkHealth({ ...snap([...fleet(), agentInput('cc-edge', T0, {})]), unserved }, { agent: 'cc-edge' });
  t.match(
    byAgent.line,
    /^CROSSLINK CRITICAL - subnet cc-lan down: unserved: cc-edge does not advertise fd20:8::\/64; 1 agent ok \| /,
  );
});

t.test("unconfirmed subnets: served on their boxes' own choice, degraded (WARNING), not unserved", async (t) => {
  const unconfirmed = [{ subnet: 'records', candidates: ['a', 'c'], reason: 'a is unhealthy; c is unhealthy' }];
  const s = { ...snap(fleet()), unserved: [], unconfirmed };
  t.match(
    formatStatus(s),
    /\nsubnet\s+records\s+DEGRADED\s+-\s+served by its boxes' own choice among a, c, none healthy to the controller: a is unhealthy; c is unhealthy\n/,
  );
  const c = checkHealth(s);
  t.equal(c.exitCode, 1, 'WARNING');
  t.equal(
    c.line,
    `CROSSLINK WARNING - subnet records degraded: served by its boxes' own choice among a, c, none healthy to the controller: a is unhealthy; c is unhealthy; 3 agents ok, 2 links ok, 1 probe ok, 1 subnet unconfirmed | ${PERF_OK.replace(' rtt=', ' subnets_unserved=0 subnets_awaiting_enrolment=0 subnets_unconfirmed=1 rtt=')}`,
  );
  t.match(
    checkHealth({ ...s, unconfirmed: [] }).line,
    / subnets_unserved=0 subnets_awaiting_enrolment=0 subnets_unconfirmed=0 rtt=/,
    'counted as 0 by a controller that reports it',
  );
  // An unserved subnet still outranks it.
  const both = checkHealth({ ...s, unserved: [{ subnet: 'lab', reason: 'lab-box is not enrolled' }] });
  t.match(
    both.line,
    /^CROSSLINK CRITICAL - subnet lab down: .*\(\+1 more\); .*1 subnet unserved, 1 subnet unconfirmed \| .* subnets_unserved=1 subnets_awaiting_enrolment=0 subnets_unconfirmed=1 /,
  );
  // --agent: the subnets it is an unhealthy candidate of come with it; not the others'.
  t.match(checkHealth(s, { agent: 'a' }).line, /^CROSSLINK WARNING - subnet records degraded: /);
  t.match(checkHealth(s, { agent: 'b' }).line, /^CROSSLINK OK - 1 agent ok \| /);
});

t.test('Nagios ranges', async (t) => {
  const rows: Array<[string, number, boolean]> = [
    ['10', 11, true],
    ['10', 10, false],
    ['10', -1, true],
    ['10:', 9, true],
    ['10:', 1e9, false],
    ['~:10', -1e9, false],
    ['~:10', 10.5, true],
    ['10:20', 15, false],
    ['10:20', 21, true],
    ['@10:20', 15, true],
    ['@10:20', 25, false],
  ];
  for (const [range, value, alert] of rows) t.equal(isAlert(parseRange(range), value), alert, `${range} with ${value}`);
  for (const bad of ['', 'abc', '20:10', ':5', '1:2:3', '@']) t.throws(() => parseRange(bad), `"${bad}" refused`);
});

t.test(
  'thresholds: -w/-c on the worst RTT, loss and handshake age, with units and thresholds in the perfdata',
  async (t) => {
    const s = snap(fleet());
    const warn = checkHealth(s, {}, parseThresholds(['rtt=1'], ['rtt=5']));
    t.equal(warn.exitCode, 1);
    t.match(
      warn.line,
      /^CROSSLINK WARNING - rtt 1\.5ms \(warning 1\); 3 agents ok, .* rtt=1\.5ms;1;5 loss=0% handshake=22s$/,
    );
    const crit = checkHealth(s, {}, parseThresholds(['rtt=1'], ['handshake=20']));
    t.equal(crit.exitCode, 2);
    t.match(crit.line, /^CROSSLINK CRITICAL - rtt 1\.5ms \(warning 1\), handshake 22s \(critical 20\); /);
    t.equal(
      checkHealth(s, {}, parseThresholds(['rtt=100', 'loss=5'], ['rtt=200', 'loss=20'])).exitCode,
      0,
      'inside the thresholds: OK',
    );
    // A down link stays CRITICAL whatever the thresholds say.
    t.equal(
      checkHealth(snap(fleet({ c: { reportAgoMs: 60_000, isConnected: false } })), {}, parseThresholds(['rtt=100']))
        .exitCode,
      2,
    );
    t.match(crit.perfdata, { rtt: '1.5ms;1;', handshake: '22s;;20' });
    for (const [w, message] of [
      [['speed=5'], /--warning takes METRIC=RANGE with METRIC one of rtt, loss, handshake; got "speed=5"/],
      [['rtt=abc'], /--warning rtt: "abc" is not a range/],
    ] as const) {
      t.throws(() => parseThresholds([...w]), { message });
    }
  },
);

t.test('rule windows: status lists the pending, those ending within 14 days and the expired', async (t) => {
  const s = snap(fleet());
  const text = formatStatus({
    ...s,
    ruleWindows: [
      {
        rule: 'gone',
        notBefore: null,
        notAfter: '2023-11-13T22:13:20.000Z',
        state: 'expired',
        secondsToExpiry: -86_400,
      },
      { rule: 'soon', notBefore: null, notAfter: '2023-11-15T01:13:20.000Z', state: 'open', secondsToExpiry: 3 * 3600 },
      {
        rule: 'far',
        notBefore: null,
        notAfter: '2024-11-14T22:13:20.000Z',
        state: 'open',
        secondsToExpiry: 366 * 86_400,
      },
      { rule: 'later', notBefore: '2023-12-01T00:00:00.000Z', notAfter: null, state: 'pending', secondsToExpiry: null },
    ],
  });
  const lines = text.trimEnd().split('\n');
  t.same(lines.slice(-4), [
    'Rule windows (not-before / not-after):',
    '  gone: EXPIRED 1d00h ago (2023-11-13T22:13:20.000Z): closed on every box; remove it from the policy',
    '  soon: ends in 3h00m (2023-11-15T01:13:20.000Z)',
    '  later: starts 2023-12-01T00:00:00.000Z',
  ]);
  t.notMatch(text, /far/, 'a rule ending in a year is not listed');
  t.notMatch(formatStatus(s), /Rule windows/, 'no windows: no section');
});
