// crosslink doctor: each judgement table-driven, the whole run over fake deps, real TLS against a
// test controller (commands faked: nothing runs in this namespace), and one real run of the CLI
// inside a network namespace this test creates (xld<pid>…, deleted by name afterwards).
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as net from 'node:net';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { CrosslinkError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import { systemClock } from '../lib/clock.js';
import { AgentConfigSchema } from '../proto/gen/crosslink/v1/agent_pb.js';
import { startTestController } from '../controller/rpc/test-controller.fixture.js';
import { doctorExitCode, formatResults, runDoctor } from './doctor.js';
import { findForwardDropChains, findRouteConflicts, judgeFirewall } from './doctor/conflicts.js';
import { judgeClockSkew, judgeMtu, skewFromDate } from './doctor/controller.js';
import {
  judgeForwarding,
  judgeInterfaceName,
  judgePrivileges,
  judgeTool,
  judgeWireGuard,
  parseProcStatus,
} from './doctor/host.js';
import { realDoctorDeps } from './doctor/real-deps.js';
import type { CheckResult, DoctorDeps, DoctorInput } from './doctor/types.js';
import { StateDir } from './state.js';

const ok = (r: CheckResult | CheckResult[]) => (Array.isArray(r) ? r : [r]).map((x) => x.verdict);

t.test('privileges from /proc/self/status', async (t) => {
  const status = (uid: number, capEff: string) =>
    `Name:\tnode\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nCapEff:\t${capEff}\n`;
  const cases: Array<[string, string, 'OK' | 'WARN' | 'FAIL', RegExp]> = [
    ['root, all caps', status(0, '000001ffffffffff'), 'OK', /^root with CAP_NET_ADMIN and CAP_NET_RAW/],
    ['unit: net_admin + net_raw only', status(998, '0000000000003000'), 'OK', /uid 998 with/],
    ['net_admin without net_raw', status(998, '0000000000001000'), 'WARN', /without CAP_NET_RAW/],
    ['no capabilities', status(1000, '0000000000000000'), 'FAIL', /without CAP_NET_ADMIN/],
    ['unreadable', '', 'WARN', /cannot read CapEff/],
  ];
  for (const [name, text, verdict, finding] of cases) {
    const r = judgePrivileges(parseProcStatus(text));
    t.equal(r.verdict, verdict, name);
    t.match(r.finding, finding, name);
    if (verdict !== 'OK') t.ok(r.fix, `${name}: has a fix`);
  }
});

t.test('forwarding: informative before the agent runs, a warning once it runs', async (t) => {
  const cases: Array<[string, Parameters<typeof judgeForwarding>[0], string[]]> = [
    ['on', { ipv4: '1\n', ipv6: '0\n', isIpv6Relevant: false, isAgentRunning: true }, ['OK']],
    ['off, agent not started', { ipv4: '0\n', ipv6: '0\n', isIpv6Relevant: false, isAgentRunning: false }, ['OK']],
    ['off while the agent runs', { ipv4: '0\n', ipv6: '0\n', isIpv6Relevant: false, isAgentRunning: true }, ['WARN']],
    [
      'ipv6 relevant and off while running',
      { ipv4: '1\n', ipv6: '0\n', isIpv6Relevant: true, isAgentRunning: true },
      ['OK', 'WARN'],
    ],
    ['unreadable', { ipv4: null, ipv6: null, isIpv6Relevant: false, isAgentRunning: false }, ['WARN']],
  ];
  for (const [name, input, verdicts] of cases) t.same(ok(judgeForwarding(input)), verdicts, name);
  t.match(
    judgeForwarding({ ipv4: '0', ipv6: null, isIpv6Relevant: false, isAgentRunning: false })[0]!.finding,
    /the agent turns it on/,
  );
});

t.test('wireguard: kernel, userspace, missing pieces, forced modes', async (t) => {
  const base = {
    hasModule: false,
    wireguardGo: '/usr/bin/wireguard-go',
    hasTun: true,
    wg: '/usr/bin/wg',
    choice: 'auto' as const,
  };
  const cases: Array<[string, Partial<Parameters<typeof judgeWireGuard>[0]>, string[], RegExp]> = [
    ['kernel module', { hasModule: true, wireguardGo: null }, ['OK', 'OK'], /kernel module/],
    ['wireguard-go + tun', {}, ['OK', 'OK'], /userspace/],
    ['wireguard-go without tun', { hasTun: false }, ['FAIL', 'OK'], /\/dev\/net\/tun is missing/],
    ['neither', { wireguardGo: null }, ['FAIL', 'OK'], /no WireGuard kernel module and no wireguard-go/],
    ['kernel forced, no module', { choice: 'kernel' }, ['FAIL', 'OK'], /kernel is configured/],
    [
      'userspace forced, module present, no wireguard-go',
      { choice: 'userspace', hasModule: true, wireguardGo: null },
      ['FAIL', 'OK'],
      /userspace is configured/,
    ],
    ['wg missing', { wg: null }, ['OK', 'FAIL'], /userspace/],
  ];
  for (const [name, over, verdicts, finding] of cases) {
    const r = judgeWireGuard({ ...base, ...over });
    t.same(ok(r), verdicts, name);
    t.match(r[0]!.finding, finding, name);
  }
});

t.test('tools: present, missing, refused', async (t) => {
  t.equal(judgeTool('nft', { exitCode: 0, stderr: '' }, 'nftables', 'works').verdict, 'OK');
  t.match(judgeTool('nft', { exitCode: 127, stderr: 'spawn nft ENOENT' }, 'nftables', ''), {
    verdict: 'FAIL',
    finding: 'nft not found',
    fix: 'apt install nftables',
  });
  t.match(judgeTool('nft', { exitCode: 1, stderr: 'Operation not permitted (you must be root)\n' }, 'nftables', ''), {
    verdict: 'FAIL',
    finding: /exit 1\): Operation not permitted/,
    fix: /root/,
  });
});

t.test('clock skew thresholds and the Date header', async (t) => {
  const cases: Array<[number, string]> = [
    [0, 'OK'],
    [4_900, 'OK'],
    [-5_001, 'WARN'],
    [30_000, 'WARN'],
    [60_001, 'FAIL'],
    [-3_600_000, 'FAIL'],
  ];
  for (const [ms, verdict] of cases) t.equal(judgeClockSkew(ms).verdict, verdict, `${ms} ms`);
  t.match(judgeClockSkew(-90_000).finding, /90\.0 s behind the controller/);
  const d = Date.parse('2026-01-01T00:00:10Z');
  t.equal(
    skewFromDate({ date: new Date(d).toUTCString(), sentAtMs: d + 400, receivedAtMs: d + 600 }),
    0,
    'midpoint against the middle of the second',
  );
  t.equal(skewFromDate({ date: new Date(d).toUTCString(), sentAtMs: d + 20_500, receivedAtMs: d + 20_500 }), 20_000);
  t.equal(skewFromDate({ date: null, sentAtMs: 0, receivedAtMs: 0 }), null);
});

t.test('mtu', async (t) => {
  t.match(judgeMtu({ wgMtu: 1420, dev: 'eth0', underlayMtu: 1500, target: 'x' }), {
    verdict: 'OK',
    finding: /1420 \+ 80 fits eth0 MTU 1500/,
  });
  t.match(judgeMtu({ wgMtu: 1420, dev: 'ppp0', underlayMtu: 1492, target: 'x' }), {
    verdict: 'WARN',
    finding: /1500 > ppp0 MTU 1492/,
    fix: /mtu: 1412/,
  });
  t.match(judgeMtu({ wgMtu: 1420, dev: null, underlayMtu: null, target: 'the default route' }), {
    verdict: 'WARN',
    finding: /no route to the default route/,
  });
});

t.test('route conflicts: equal or more specific routes of others, not wider ones, not ours', async (t) => {
  const routes = [
    { dst: 'default', dev: 'eth0' },
    { dst: '10.0.0.0/8', dev: 'eth1', protocol: 'static' }, // wider: the agent's route wins
    { dst: '10.2.0.0/24', dev: 'crosslink0', protocol: '147' }, // ours
    { dst: '10.2.0.0/24', dev: 'eth1', protocol: 'static' }, // equal: conflict
    { dst: '10.3.5.0/24', dev: 'eth1', protocol: 'kernel' }, // inside 10.3.0.0/16: conflict
    { dst: '10.4.0.0/24', dev: 'eth1', protocol: 'kernel' }, // unrelated
    { dst: '100.64.0.0/10', dev: 'crosslink0', protocol: 'kernel' }, // on our interface
    { dst: 'fd00:2::/64', dev: 'eth1', protocol: 'ra' }, // inside fd00::/16
    { dst: '10.3.9.0/24', type: 'blackhole', protocol: 'static' }, // blackhole inside: conflict
  ];
  const c = findRouteConflicts(routes, ['10.2.0.0/24', '10.3.0.0/16', 'fd00::/16'], 'crosslink0');
  t.same(
    c.map((x) => `${x.route.dst}<${x.overlay}`),
    ['10.2.0.0/24<10.2.0.0/24', '10.3.5.0/24<10.3.0.0/16', 'fd00:2::/64<fd00::/16', '10.3.9.0/24<10.3.0.0/16'],
  );
  const dst = (list: typeof routes) => findRouteConflicts(list, ['10.2.0.0/24'], 'crosslink0').map((x) => x.route.dst);
  t.same(dst([{ dst: '10.2.0.0/24', dev: 'eth1', protocol: 'static' }]), ['10.2.0.0/24']);
  t.same(dst([{ dst: '10.2.0.0/16', dev: 'eth1', protocol: 'static' }]), []);
});

t.test('firewall conflicts from nft -j list ruleset', async (t) => {
  const ruleset = (extra: object[]) =>
    JSON.stringify({
      nftables: [
        { metainfo: { json_schema_version: 1 } },
        { table: { family: 'inet', name: 'crosslink', handle: 1 } },
        {
          chain: {
            family: 'inet',
            table: 'crosslink',
            name: 'forward',
            handle: 1,
            type: 'filter',
            hook: 'forward',
            prio: 0,
            policy: 'drop',
          },
        },
        ...extra,
      ],
    });
  const dockerish = {
    chain: {
      family: 'ip',
      table: 'filter',
      name: 'FORWARD',
      handle: 2,
      type: 'filter',
      hook: 'forward',
      prio: 0,
      policy: 'drop',
    },
  };
  const input = {
    chain: {
      family: 'inet',
      table: 'fw',
      name: 'input',
      handle: 3,
      type: 'filter',
      hook: 'input',
      prio: 0,
      policy: 'drop',
    },
  };
  const accept = {
    rule: {
      family: 'ip',
      table: 'filter',
      chain: 'FORWARD',
      handle: 9,
      expr: [{ match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'crosslink0' } }, { accept: null }],
    },
  };
  const cases: Array<[string, object[], 'OK' | 'WARN', RegExp]> = [
    ['only our own table drops', [], 'OK', /no other table/],
    ['an input-hook drop is not in the way', [input], 'OK', /no other table/],
    ['docker-style FORWARD policy drop', [dockerish], 'WARN', /ip filter FORWARD/],
    ['the same, with an accept for our interface', [dockerish, accept], 'OK', /accept crosslink0/],
  ];
  for (const [name, extra, verdict, finding] of cases) {
    const r = judgeFirewall(findForwardDropChains(ruleset(extra), 'crosslink0'), 'crosslink0');
    t.equal(r.verdict, verdict, name);
    t.match(r.finding, finding, name);
    if (verdict === 'WARN') t.match(r.fix, /nft insert rule ip filter FORWARD iifname "crosslink0" accept/);
  }
  t.same(findForwardDropChains('not json', 'crosslink0'), []);
});

t.test('interface name', async (t) => {
  t.equal(judgeInterfaceName('crosslink0', { exists: false, kind: null }).verdict, 'OK');
  t.equal(judgeInterfaceName('crosslink0', { exists: true, kind: 'wireguard' }).verdict, 'OK');
  t.equal(judgeInterfaceName('crosslink0', { exists: true, kind: 'tun' }).verdict, 'OK');
  t.match(judgeInterfaceName('crosslink0', { exists: true, kind: 'bridge' }), {
    verdict: 'FAIL',
    finding: /is a bridge interface/,
  });
});

t.test('format and exit code', async (t) => {
  const results: CheckResult[] = [
    { check: 'nft', verdict: 'OK', finding: 'works', fix: 'never printed for OK' },
    { check: 'mtu', verdict: 'WARN', finding: 'too big', fix: 'lower it' },
    { check: 'wg', verdict: 'FAIL', finding: 'missing', fix: 'apt install wireguard-tools' },
  ];
  t.equal(
    formatResults(results),
    [
      'OK    nft: works',
      'WARN  mtu: too big',
      '      fix: lower it',
      'FAIL  wg: missing',
      '      fix: apt install wireguard-tools',
      '',
      '1 ok, 1 warning(s), 1 failure(s)',
      '',
    ].join('\n'),
  );
  t.equal(doctorExitCode(results), 1);
  t.equal(doctorExitCode(results.slice(0, 2)), 0, 'warnings alone exit 0');
  t.equal(doctorExitCode([]), 0);
});

// ---------- the whole run over fakes ----------

class FakeDeps implements DoctorDeps {
  commands = new Map<string, { exitCode: number; stdout: string; stderr: string }>();
  files = new Map<string, string>();
  paths = new Set<string>();
  programs = new Map<string, string>();
  ran: string[] = [];
  nowMs = Date.parse('2026-03-01T12:00:00Z');
  controllerNowMs = this.nowMs;
  caError: Error | null = null;
  clock = { nowMs: () => this.nowMs };
  async run(argv: readonly string[]) {
    const key = argv.join(' ');
    this.ran.push(key);
    return this.commands.get(key) ?? { exitCode: 127, stdout: '', stderr: `${argv[0]}: not found` };
  }
  async readFile(path: string) {
    return this.files.get(path) ?? null;
  }
  async exists(path: string) {
    return this.paths.has(path);
  }
  async which(program: string) {
    return this.programs.get(program) ?? null;
  }
  async fetchPinnedCa() {
    if (this.caError) throw this.caError;
    return 'PEM';
  }
  async controllerDate() {
    return {
      date: new Date(this.controllerNowMs).toUTCString(),
      sentAtMs: this.nowMs + 500,
      receivedAtMs: this.nowMs + 500,
    };
  }
  async resolve(host: string) {
    if (host === 'ctl.example') return '192.0.2.10';
    throw new Error('ENOTFOUND');
  }
  async kernelWireGuard() {
    return this.paths.has('/sys/module/wireguard');
  }
}

/** A healthy box: root, wireguard-go, nft and ip work, route to the controller via eth0 (1500). */
function healthyBox(): FakeDeps {
  const d = new FakeDeps();
  const okRun = (stdout: string) => ({ exitCode: 0, stdout, stderr: '' });
  d.files.set('/proc/self/status', 'Uid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\n');
  d.files.set('/proc/sys/net/ipv4/ip_forward', '1\n');
  d.files.set('/proc/sys/net/ipv6/conf/all/forwarding', '0\n');
  d.paths.add('/dev/net/tun');
  d.programs.set('wireguard-go', '/usr/bin/wireguard-go').set('wg', '/usr/bin/wg');
  d.commands.set('nft list tables', okRun(''));
  d.commands.set('ip -V', okRun('ip utility, iproute2-6.1.0\n'));
  d.commands.set('ip -json route get 192.0.2.10', okRun('[{"dst":"192.0.2.10","dev":"eth0"}]'));
  d.commands.set('ip -json route show default', okRun('[{"dst":"default","gateway":"192.0.2.1","dev":"eth0"}]'));
  d.commands.set('ip -json link show dev eth0', okRun('[{"ifname":"eth0","mtu":1500}]'));
  d.commands.set(
    'ip -json route show table main',
    okRun('[{"dst":"default","dev":"eth0"},{"dst":"10.1.0.0/24","dev":"eth1","protocol":"kernel"}]'),
  );
  d.commands.set('ip -json -6 route show table main', okRun('[]'));
  d.commands.set('nft -j list ruleset', okRun('{"nftables":[{"metainfo":{}}]}'));
  d.commands.set('ip -json -details link show dev crosslink0', {
    exitCode: 1,
    stdout: '',
    stderr: 'Device "crosslink0" does not exist.\n',
  });
  return d;
}

const INPUT: DoctorInput = {
  interfaceName: 'crosslink0',
  mtu: 1420,
  wireguard: 'auto',
  controller: { url: 'https://ctl.example:8443', caFingerprint: 'ab'.repeat(32), source: 'join token' },
  overlayRoutes: ['10.2.0.0/24'],
  advertised: ['10.1.0.0/24'],
};

t.test('runDoctor over fakes: a healthy box, then one thing broken at a time', async (t) => {
  const verdicts = (rs: CheckResult[]) => Object.fromEntries(rs.map((r) => [r.check, r.verdict]));
  const healthy = await runDoctor(INPUT, healthyBox());
  t.same(
    healthy.map((r) => r.check),
    [
      'privileges',
      'ip forwarding',
      'wireguard',
      'wg',
      'nft',
      'ip',
      'controller',
      'certificate pin',
      'clock',
      'mtu',
      'route conflicts',
      'firewall conflicts',
      'interface name',
    ],
    'every check, in order',
  );
  t.same(
    healthy.filter((r) => r.verdict !== 'OK'),
    [],
    'all OK',
  );
  t.equal(doctorExitCode(healthy), 0);

  const cases: Array<[string, (d: FakeDeps, i: DoctorInput) => DoctorInput | void, Record<string, string>, number]> = [
    [
      'nft missing',
      (d) => {
        d.commands.delete('nft list tables');
        d.commands.delete('nft -j list ruleset');
      },
      { nft: 'FAIL', 'firewall conflicts': 'WARN' },
      1,
    ],
    [
      'pin mismatch',
      (d) => {
        d.caError = new CrosslinkError(
          'unauthenticated',
          `controller certificate does not chain to the pinned CA ${'ab'.repeat(32)} (server presented ${'cd'.repeat(32)})`,
        );
      },
      { 'certificate pin': 'FAIL', clock: 'WARN' },
      1,
    ],
    [
      'controller unreachable',
      (d) => {
        d.caError = new CrosslinkError(
          'unavailable',
          'cannot reach controller at ctl.example:8443: connect ECONNREFUSED',
        );
      },
      { controller: 'FAIL', clock: 'WARN' },
      1,
    ],
    [
      'clock 10 s ahead',
      (d) => {
        d.nowMs += 10_000;
      },
      { clock: 'WARN' },
      0,
    ],
    [
      'clock 2 min behind',
      (d) => {
        d.nowMs -= 120_000;
      },
      { clock: 'FAIL' },
      1,
    ],
    [
      'PPPoE underlay',
      (d) => {
        d.commands.set('ip -json link show dev eth0', { exitCode: 0, stdout: '[{"mtu":1492}]', stderr: '' });
      },
      { mtu: 'WARN' },
      0,
    ],
    [
      'a static route inside an overlay prefix',
      (d) => {
        d.commands.set('ip -json route show table main', {
          exitCode: 0,
          stdout: '[{"dst":"10.2.0.128/25","dev":"eth1","protocol":"static"}]',
          stderr: '',
        });
      },
      { 'route conflicts': 'FAIL' },
      1,
    ],
    [
      'a bridge already called crosslink0',
      (d) => {
        d.commands.set('ip -json -details link show dev crosslink0', {
          exitCode: 0,
          stdout: '[{"ifname":"crosslink0","linkinfo":{"info_kind":"bridge"}}]',
          stderr: '',
        });
      },
      { 'interface name': 'FAIL' },
      1,
    ],
    [
      'no capabilities',
      (d) => {
        d.files.set('/proc/self/status', 'Uid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n');
      },
      { privileges: 'FAIL' },
      1,
    ],
    ['not enrolled, no token', (_d, i) => ({ ...i, controller: null }), { controller: 'WARN', clock: 'WARN' }, 0],
    [
      'IPv6 advertised, forwarding off while running',
      (d, i) => {
        d.commands.set('ip -json -details link show dev crosslink0', {
          exitCode: 0,
          stdout: '[{"linkinfo":{"info_kind":"tun"}}]',
          stderr: '',
        });
        return { ...i, advertised: ['fd00:1::/64'] };
      },
      { 'ipv6 forwarding': 'WARN' },
      0,
    ],
    [
      'a config file error',
      (_d, i) => ({ ...i, setupErrors: ['agent.yaml:3: mtu: must be a whole number from 1280 to 9000'] }),
      { config: 'FAIL' },
      1,
    ],
  ];
  for (const [name, mutate, expected, exit] of cases) {
    const d = healthyBox();
    const input = mutate(d, { ...INPUT }) ?? INPUT;
    const rs = await runDoctor(input, d);
    const notOk = Object.fromEntries(Object.entries(verdicts(rs)).filter(([, v]) => v !== 'OK'));
    t.same(notOk, expected, name);
    t.equal(doctorExitCode(rs), exit, `${name}: exit ${exit}`);
    for (const r of rs.filter((x) => x.verdict !== 'OK')) t.ok(r.fix, `${name}: ${r.check} says how to fix it`);
  }
});

t.test('the MTU check follows the route to the controller, else the default route', async (t) => {
  const d = healthyBox();
  d.commands.set('ip -json route get 192.0.2.10', { exitCode: 0, stdout: '[{"dev":"wan0"}]', stderr: '' });
  d.commands.set('ip -json link show dev wan0', { exitCode: 0, stdout: '[{"mtu":1400}]', stderr: '' });
  const mtu = (await runDoctor(INPUT, d)).find((r) => r.check === 'mtu')!;
  t.match(mtu, { verdict: 'WARN', finding: /wan0 MTU 1400/, fix: /mtu: 1320/ });
  const d2 = healthyBox();
  const viaDefault = (
    await runDoctor({ ...INPUT, controller: { ...INPUT.controller!, url: 'https://unresolvable.example' } }, d2)
  ).find((r) => r.check === 'mtu')!;
  t.match(viaDefault, { verdict: 'OK', finding: /toward the default route/ });
  const d3 = healthyBox();
  d3.commands.set('ip -json route get 192.0.2.10', { exitCode: 0, stdout: '[{"dev":"wan0"}]', stderr: '' });
  d3.commands.set('ip -json link show dev wan0', { exitCode: 0, stdout: '[{"mtu":1400}]', stderr: '' });
  const two = {
    ...INPUT.controller!,
    url: `https://unresolvable.example ${INPUT.controller!.url}`,
    urls: ['https://unresolvable.example', INPUT.controller!.url],
  };
  t.match(
    (await runDoctor({ ...INPUT, controller: two }, d3)).find((r) => r.check === 'mtu')!,
    { finding: /wan0 MTU 1400/ },
    'a controller on two networks: the route to the URL this box can reach',
  );
});

// ---------- real TLS against a test controller (commands faked) ----------

t.test('controller, pin and clock over real TLS', async (t) => {
  const ctl = await startTestController();
  t.teardown(() => ctl.close());
  const fake = healthyBox();
  const real = realDoctorDeps({ run: async () => ({ exitCode: 1, stdout: '', stderr: 'unused' }) }, systemClock, {
    timeoutMs: 5_000,
  });
  const deps: DoctorDeps = {
    ...fake,
    run: fake.run.bind(fake),
    readFile: fake.readFile.bind(fake),
    exists: fake.exists.bind(fake),
    which: fake.which.bind(fake),
    resolve: fake.resolve.bind(fake),
    kernelWireGuard: fake.kernelWireGuard.bind(fake),
    clock: systemClock,
    fetchPinnedCa: real.fetchPinnedCa.bind(real),
    controllerDate: real.controllerDate.bind(real),
  };
  const pick = (rs: CheckResult[]) =>
    rs
      .filter((r) => ['controller', 'certificate pin', 'clock'].includes(r.check))
      .map((r) => `${r.verdict} ${r.check}`);

  const good = await runDoctor(
    { ...INPUT, controller: { url: ctl.url, caFingerprint: ctl.caFingerprint, source: 'join token' } },
    deps,
  );
  t.same(pick(good), ['OK controller', 'OK certificate pin', 'OK clock'], 'reachable, pinned, clock in step');

  const wrongPin = await runDoctor(
    { ...INPUT, controller: { url: ctl.url, caFingerprint: 'ab'.repeat(32), source: 'join token' } },
    deps,
  );
  t.same(pick(wrongPin), ['OK controller', 'FAIL certificate pin', 'WARN clock']);
  t.match(
    wrongPin.find((r) => r.check === 'certificate pin')!.finding,
    new RegExp(`pinned CA ${'ab'.repeat(32)}.*server presented .*${ctl.caFingerprint}`),
  );

  // A controller on two networks, this box on the second only: OK through the second URL.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const deadUrl = `https://127.0.0.1:${(probe.address() as net.AddressInfo).port}`;
  await new Promise<void>((r) => probe.close(() => r()));
  const twoNetworks = await runDoctor(
    {
      ...INPUT,
      controller: {
        url: `${deadUrl} ${ctl.url}`,
        urls: [deadUrl, ctl.url],
        caFingerprint: ctl.caFingerprint,
        source: 'join token',
      },
    },
    deps,
  );
  t.same(pick(twoNetworks), ['OK controller', 'OK certificate pin', 'OK clock'], 'one reachable URL is enough');
  t.match(
    twoNetworks.find((r) => r.check === 'controller')!.finding,
    `${ctl.url} reachable (from the join token) (not reached: ${deadUrl}; fine if this box is not on that network)`,
  );

  const port = Number(new URL(ctl.url).port);
  await ctl.close();
  const down = await runDoctor(
    {
      ...INPUT,
      controller: { url: `https://127.0.0.1:${port}`, caFingerprint: ctl.caFingerprint, source: 'join token' },
    },
    deps,
  );
  t.same(pick(down), ['FAIL controller', 'WARN clock']);
  const allDown = await runDoctor(
    {
      ...INPUT,
      controller: {
        url: `${deadUrl} https://127.0.0.1:${port}`,
        caFingerprint: ctl.caFingerprint,
        source: 'join token',
      },
    },
    deps,
  );
  t.same(pick(allDown), ['FAIL controller', 'WARN clock'], 'no URL answers: FAIL (urls split from url)');
  t.match(
    allDown.find((r) => r.check === 'controller')!.finding,
    /^cannot reach any of https:\/\/127\.0\.0\.1:\d+ https:\/\/127\.0\.0\.1:\d+ .*: https:\/\/127\.0\.0\.1:\d+: .*; https:/,
  );
});

// ---------- one real run inside a network namespace ----------

const isRoot = process.getuid?.() === 0;
const hasIp = spawnSync('ip', ['-V']).status === 0;

t.test(
  'real run of `crosslink doctor` inside a fresh network namespace',
  { skip: !isRoot || !hasIp ? 'needs root and iproute2' : false },
  async (t: Test) => {
    const prefix = `xld${process.pid}`;
    const ns = `${prefix}a`;
    const [v0, v1, wanted] = [`${prefix}v0`, `${prefix}v1`, `${prefix}w`];
    const sh = (argv: string[], input?: string) => {
      const r = spawnSync(argv[0]!, argv.slice(1), { input, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
    };
    const cleanup = () => {
      spawnSync('ip', ['netns', 'del', ns]);
    };
    process.once('exit', cleanup);
    t.teardown(cleanup);
    sh(['ip', 'netns', 'add', ns]);
    // Everything below happens inside the namespace: ip -n, ip netns exec.
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    sh(['ip', '-n', ns, 'link', 'add', v0, 'mtu', '1400', 'type', 'veth', 'peer', 'name', v1]);
    sh(['ip', '-n', ns, 'addr', 'add', '10.99.0.1/24', 'dev', v0]);
    sh(['ip', '-n', ns, 'link', 'set', v0, 'up']);
    sh(['ip', '-n', ns, 'link', 'set', v1, 'up']);
    sh(['ip', '-n', ns, 'route', 'add', 'default', 'via', '10.99.0.2', 'dev', v0]);
    sh(
      ['ip', 'netns', 'exec', ns, 'nft', '-f', '-'],
      'table ip xldtest {\n  chain xfw {\n    type filter hook forward priority 0; policy drop;\n  }\n}\n',
    );

    const dir = await mkdtemp(join(tmpdir(), 'xl-doctor-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const stateDir = join(dir, 'state');
    const state = new StateDir(stateDir, silentLogger());
    await state.init();
    // The saved config routes 10.99.0.0/16 into the overlay; the namespace's own 10.99.0.0/24 collides.
    await state.saveConfig(create(AgentConfigSchema, { generation: 1n, routes: ['10.99.0.0/16', '10.200.0.0/24'] }));
    const config = join(dir, 'agent.yaml');
    await writeFile(config, `interface: ${wanted}\nmtu: 1420\nwireguard: auto\n`);

    const cli = join(import.meta.dirname, '..', 'cli', 'main.ts');
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>(
      (resolveRun, reject) => {
        const child = spawn(
          'ip',
          [
            'netns',
            'exec',
            ns,
            process.execPath,
            '--import',
            'tsx',
            cli,
            'doctor',
            '--json',
            '--config',
            config,
            '--state-dir',
            stateDir,
          ],
          { cwd: join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let out = '';
        let err = '';
        child.stdout.on('data', (b: Buffer) => {
          out += b.toString();
        });
        child.stderr.on('data', (b: Buffer) => {
          err += b.toString();
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.on('error', reject);
        child.on('close', (c) => {
          clearTimeout(timer);
          resolveRun({ code: c ?? -1, stdout: out, stderr: err });
        });
      },
    );
    let report: { isOk: boolean; checks: CheckResult[] };
    try {
      report = JSON.parse(stdout) as typeof report;
    } catch {
      t.fail(`doctor printed no JSON (exit ${code}): ${stdout}\n${stderr}`);
      return;
    }
    const by = Object.fromEntries(report.checks.map((r) => [r.check, r]));
    for (const must of ['nft', 'ip', 'wg', 'privileges', 'interface name'])
      t.equal(by[must]?.verdict, 'OK', `${must}: ${by[must]?.finding}`);
    // No WireGuard module on this kernel: wireguard-go must be found, with /dev/net/tun.
    t.equal(by.wireguard?.verdict, 'OK', `wireguard: ${by.wireguard?.finding}`);
    t.match(
      by['ip forwarding'],
      { verdict: 'OK', finding: /net\.ipv4\.ip_forward = 0 \(the agent turns it on/ },
      'a fresh namespace forwards nothing yet',
    );
    t.match(
      by.mtu,
      { verdict: 'WARN', finding: new RegExp(`1500 > ${v0} MTU 1400`) },
      "MTU of the default route's device, read for real",
    );
    t.match(by['route conflicts'], {
      verdict: 'FAIL',
      finding: new RegExp(`10\\.99\\.0\\.0/24 dev ${v0} proto kernel \\(inside overlay 10\\.99\\.0\\.0/16\\)`),
    });
    t.match(by['firewall conflicts'], { verdict: 'WARN', finding: /ip xldtest xfw/ }, 'the real nft JSON is parsed');
    t.equal(by.controller?.verdict, 'WARN', 'not enrolled: controller not checked');
    t.equal(code, 1, 'exit 1: a check failed');
    t.equal(report.isOk, false);
  },
);
