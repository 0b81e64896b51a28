import dgram from 'node:dgram';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import t from 'tap';
import { AgentConfigSchema, PeerSchema, ProbeSchema, type Probe } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { silentLogger } from '../../lib/logger.js';
import { detectFping, fpingArgv, parseFping } from './fping.js';
import { judgeProbe, PathProber, sourceAddressFor } from './path-prober.js';
import { MIN_PROBES_FOR_LOSS, NOT_PROBED, PeerProber } from './peer-prober.js';
import { parsePingRttMs, pingOnce } from './ping.js';
import type { AttemptOutcome, ProbeCommandRunner, ProbeTimers } from './ports.js';
import { Prober } from './prober.js';
import { connectTcp, udpExchange } from './sockets.js';

const PING_OK = 'PING 100.64.0.9 (100.64.0.9) 56(84) bytes of data.\n64 bytes from 100.64.0.9: icmp_seq=1 ttl=64 time=0.734 ms\n\n--- 100.64.0.9 ping statistics ---\n1 packets transmitted, 1 received, 0% packet loss, time 0ms\n';

/** A runner that answers from a table keyed by the target (last argv element) and records argv. */
function fakeRunner(answers: Record<string, { exitCode: number; stdout?: string; stderr?: string } | Array<{ exitCode: number; stdout?: string }>>) {
  const calls: string[][] = [];
  const runner: ProbeCommandRunner = {
    run: async (argv) => {
      calls.push([...argv]);
      const a = answers[argv.at(-1) ?? ''];
      const one = Array.isArray(a) ? a.shift() : a;
      return { exitCode: one?.exitCode ?? 2, stdout: one?.stdout ?? '', stderr: (one as { stderr?: string })?.stderr ?? 'unknown host' };
    },
  };
  return { runner, calls };
}

const probe = (o: Partial<Omit<Probe, '$typeName' | '$unknown'>>): Probe => create(ProbeSchema, { name: 'care/0', target: '10.20.1.5', protocol: 'tcp', port: 443, sourcePrefix: '10.1.0.0/24', ...o });

t.test('ping: argv and outcomes', async (t) => {
  const { runner, calls } = fakeRunner({
    '100.64.0.9': { exitCode: 0, stdout: PING_OK },
    '100.64.0.10': { exitCode: 1, stdout: 'PING ...\n\n--- statistics ---\n1 packets transmitted, 0 received, 100% packet loss\n' },
    '100.64.0.11': { exitCode: 1, stdout: 'From 100.64.0.1 icmp_seq=1 Destination Host Unreachable\n' },
    '100.64.0.12': { exitCode: 2, stderr: 'ping: connect: Network is unreachable\n' },
  });
  t.same(await pingOnce(runner, '100.64.0.9', { timeoutSeconds: 1 }), { kind: 'connected', rttMs: 0.734 });
  t.same(await pingOnce(runner, '100.64.0.10', { timeoutSeconds: 1 }), { kind: 'timeout', detail: 'no reply within 1 s' });
  t.same(await pingOnce(runner, '100.64.0.11', { timeoutSeconds: 2, sourceAddress: '10.1.0.1' }), { kind: 'unreachable', detail: 'destination host unreachable' });
  t.same(await pingOnce(runner, '100.64.0.12', { timeoutSeconds: 1 }), { kind: 'error', detail: 'ping: ping: connect: Network is unreachable' });
  t.same(calls[0], ['ping', '-n', '-c', '1', '-W', '1', '100.64.0.9'], 'own namespace, no netns prefix, no -I for peers');
  t.same(calls[2], ['ping', '-n', '-c', '1', '-W', '2', '-I', '10.1.0.1', '100.64.0.11']);
  t.equal(parsePingRttMs('64 bytes from ::1: icmp_seq=1 ttl=64 time<1 ms'), 1);
  t.equal(parsePingRttMs('nothing'), null);
});

t.test('judging: expect_deny inverts success, local errors never succeed', async (t) => {
  const cases: Array<[AttemptOutcome, boolean, boolean, string]> = [
    [{ kind: 'connected', rttMs: 1.23 }, false, true, 'connected in 1.2 ms'],
    [{ kind: 'connected', rttMs: 1.23 }, true, false, 'connected in 1.2 ms, but the path should be denied'],
    [{ kind: 'refused', detail: 'connection refused' }, false, false, 'connection refused'],
    [{ kind: 'refused', detail: 'connection refused' }, true, true, 'denied: connection refused'],
    [{ kind: 'timeout', detail: 'timeout after 2000 ms' }, false, false, 'timeout after 2000 ms'],
    [{ kind: 'timeout', detail: 'timeout after 2000 ms' }, true, true, 'denied: timeout after 2000 ms'],
    [{ kind: 'unreachable', detail: 'no route to host' }, true, true, 'denied: no route to host'],
    [{ kind: 'error', detail: 'EADDRNOTAVAIL: cannot assign' }, true, false, 'EADDRNOTAVAIL: cannot assign'],
  ];
  for (const [outcome, expectDeny, isOk, detail] of cases) {
    const v = judgeProbe({ expectDeny }, outcome);
    t.equal(v.isOk, isOk, `${outcome.kind} deny=${expectDeny}`);
    t.equal(v.detail, detail);
  }
});

t.test('source address inside the source prefix', async (t) => {
  const own = ['127.0.0.1', '10.1.0.7', '10.1.0.3', '192.168.1.2', 'fe80::1', '2001:db8:1::5'];
  const cases: Array<[string, string | null]> = [
    ['10.1.0.0/24', '10.1.0.3'],
    ['192.168.0.0/16', '192.168.1.2'],
    ['2001:db8:1::/48', '2001:db8:1::5'],
    ['10.2.0.0/24', null],
    ['', null],
    ['garbage', null],
  ];
  for (const [prefix, want] of cases) t.equal(sourceAddressFor(prefix, own), want, prefix || '(empty)');
});

t.test('peer prober: reachability, last RTT and loss over the last 10', async (t) => {
  const replies = [
    ...Array.from({ length: 8 }, () => ({ exitCode: 0, stdout: PING_OK })),
    { exitCode: 1 }, { exitCode: 1 }, { exitCode: 0, stdout: PING_OK.replace('0.734', '2.5') }, { exitCode: 1 },
  ];
  const { runner } = fakeRunner({ '100.64.0.9': replies, '100.64.0.10': [{ exitCode: 0, stdout: PING_OK }] });
  const p = new PeerProber({ runner });
  t.same(p.fields('b'), NOT_PROBED);
  const peers = [{ name: 'b', overlayIp: '100.64.0.9' }];
  for (let i = 0; i < 11; i++) await p.probeAll(peers);
  t.same(p.fields('b'), { isProbed: true, isReachable: true, rttMs: 2.5, lossRatio: 0.2 });
  await p.probeAll(peers);
  t.same(p.fields('b'), { isProbed: true, isReachable: false, rttMs: 2.5, lossRatio: 0.3 }, 'the window slides: 3 of the last 10 lost');
  await p.probeAll([{ name: 'c', overlayIp: '100.64.0.10' }]);
  t.same(p.fields('b'), NOT_PROBED, 'a peer no longer configured is forgotten');
  t.equal(p.fields('c').isReachable, true);
});

t.test('peer prober: a new peer\'s first lost echoes are no verdict yet', async (t) => {
  // The other box may still be applying its side of the new peer: its first echoes are lost.
  const { runner } = fakeRunner({ '100.64.0.9': [{ exitCode: 1 }, { exitCode: 1 }, { exitCode: 1 }, { exitCode: 0, stdout: PING_OK }], '100.64.0.10': [{ exitCode: 1 }, { exitCode: 0, stdout: PING_OK }] });
  const p = new PeerProber({ runner });
  const peers = [{ name: 'b', overlayIp: '100.64.0.9' }, { name: 'c', overlayIp: '100.64.0.10' }];
  await p.probeAll(peers);
  t.same(p.fields('b'), NOT_PROBED, 'one lost echo of a new peer: not probed yet');
  await p.probeAll(peers);
  t.same(p.fields('b'), NOT_PROBED, `${MIN_PROBES_FOR_LOSS - 1} lost: still no verdict`);
  t.same(p.fields('c'), { isProbed: true, isReachable: true, rttMs: 0.734, lossRatio: 0.5 }, 'an answer makes it a verdict at once');
  await p.probeAll(peers);
  t.same(p.fields('b'), { isProbed: true, isReachable: false, rttMs: 0, lossRatio: 1 }, `${MIN_PROBES_FOR_LOSS} lost: unreachable`);
});

// ---- peer probes over fping ---------------------------------------------------------------------

t.test('fping: argv', async (t) => {
  t.same(fpingArgv(['100.64.0.9', 'fd00::9'], 1), ['fping', '-C', '1', '-q', '-t', '1000', '-i', '1', '-r', '0', '--', '100.64.0.9', 'fd00::9']);
  t.same(fpingArgv(['100.64.0.9'], 2).slice(4, 6), ['-t', '2000']);
});

t.test('fping: output to one outcome per target', async (t) => {
  const timeout = (s = 1): AttemptOutcome => ({ kind: 'timeout', detail: `no reply within ${s} s` });
  const cases: Array<{ name: string; targets: string[]; exitCode: number; stdout?: string; stderr?: string; want: Record<string, AttemptOutcome> }> = [
    {
      // Captured from fping 5.1 -C 1 -q: one answered, one silent.
      name: 'alive with RTT, loss as "-"', targets: ['10.99.0.2', '10.99.0.3'], exitCode: 1,
      stderr: '10.99.0.2 : 0.037\n10.99.0.3 : -\n',
      want: { '10.99.0.2': { kind: 'connected', rttMs: 0.037 }, '10.99.0.3': timeout() },
    },
    {
      name: 'all alive, exit 0, RTTs in every width fping prints', targets: ['10.0.0.1', '10.0.0.2', '10.0.0.3'], exitCode: 0,
      stderr: '10.0.0.1 : 0.010\n10.0.0.2 : 12.3\n10.0.0.3 : 120\n',
      want: { '10.0.0.1': { kind: 'connected', rttMs: 0.01 }, '10.0.0.2': { kind: 'connected', rttMs: 12.3 }, '10.0.0.3': { kind: 'connected', rttMs: 120 } },
    },
    {
      name: 'IPv6, names padded to the longest', targets: ['::1', '2001:db8::1'], exitCode: 1,
      stderr: '::1         : 0.035\n2001:db8::1 : -\n',
      want: { '::1': { kind: 'connected', rttMs: 0.035 }, '2001:db8::1': timeout() },
    },
    {
      // Printed even with -q, before the summary; the first reply counts.
      name: 'duplicates are not results', targets: ['10.0.0.1', '10.0.0.2'], exitCode: 1,
      stderr: '10.0.0.1 : duplicate for [0], 64 bytes, 0.091 ms [<- 10.0.0.9]\n10.0.0.1 : duplicate for [0], 64 bytes, 0.120 ms\n10.0.0.2 : duplicate for [0], 64 bytes, 0.2 ms\n\n10.0.0.1 : 0.040\n',
      want: { '10.0.0.1': { kind: 'connected', rttMs: 0.04 }, '10.0.0.2': { kind: 'error', detail: 'fping: exit 1, no result' } },
    },
    {
      // Captured from fping 5.1 without -q: per-reply lines on stdout, ICMP errors before the summary.
      name: 'ICMP unreachable lines', targets: ['10.99.0.2', '10.98.0.5', '10.99.0.3', '10.97.0.1'], exitCode: 1,
      stdout: '10.99.0.2 : [0], 64 bytes, 0.040 ms (0.040 avg, 0% loss)\n10.99.0.3 : [0], timed out (NaN avg, 100% loss)\n10.98.0.5 : [0], timed out (NaN avg, 100% loss)\n',
      stderr: 'ICMP Unreachable (Communication Administratively Prohibited) from 10.99.0.2 for ICMP Echo sent to 10.98.0.5\nICMP Host Unreachable from 10.99.0.1 for ICMP Echo sent to 10.99.0.3\n\n10.99.0.2 : 0.040\n10.99.0.3 : -\n10.98.0.5 : -\n10.97.0.1 : -\n',
      want: {
        '10.99.0.2': { kind: 'connected', rttMs: 0.04 },
        '10.98.0.5': { kind: 'unreachable', detail: 'icmp unreachable (communication administratively prohibited) from 10.99.0.2' },
        '10.99.0.3': { kind: 'unreachable', detail: 'icmp host unreachable from 10.99.0.1' },
        '10.97.0.1': timeout(),
      },
    },
    {
      // Without -q fping names the target it could not resolve (exit 2); the others still count.
      name: 'unknown host', targets: ['127.0.0.1', 'nosuch.invalid'], exitCode: 2,
      stdout: '127.0.0.1 : [0], 64 bytes, 0.019 ms (0.019 avg, 0% loss)\n',
      stderr: 'nosuch.invalid: Name or service not known\n\n127.0.0.1 : 0.019\n',
      want: { '127.0.0.1': { kind: 'connected', rttMs: 0.019 }, 'nosuch.invalid': { kind: 'error', detail: 'fping: nosuch.invalid: Name or service not known' } },
    },
    {
      name: 'unknown host with -q: no line at all', targets: ['127.0.0.1', 'nosuch.invalid'], exitCode: 2,
      stderr: '127.0.0.1 : 0.022\n',
      want: { '127.0.0.1': { kind: 'connected', rttMs: 0.022 }, 'nosuch.invalid': { kind: 'error', detail: 'fping: exit 2, no result' } },
    },
    {
      name: 'system call failure: every target an error', targets: ['10.0.0.1', '10.0.0.2'], exitCode: 4,
      stderr: 'fping: can\'t create socket (must run as root?)\n',
      want: { '10.0.0.1': { kind: 'error', detail: 'fping: exit 4: fping: can\'t create socket (must run as root?)' }, '10.0.0.2': { kind: 'error', detail: 'fping: exit 4: fping: can\'t create socket (must run as root?)' } },
    },
    {
      name: 'invalid arguments', targets: ['10.0.0.1'], exitCode: 1,
      stderr: 'fping: option requires an argument -- \'x\'\nsee \'fping -h\' for usage information\n',
      want: { '10.0.0.1': { kind: 'error', detail: 'fping: exit 1: fping: option requires an argument -- \'x\'' } },
    },
    {
      name: 'killed at the timeout: nothing printed', targets: ['10.0.0.1'], exitCode: -1,
      want: { '10.0.0.1': { kind: 'error', detail: 'fping: killed (timeout), no result' } },
    },
    {
      name: 'lines for targets not asked about, and an empty summary, are ignored', targets: ['10.0.0.1', '10.0.0.2'], exitCode: 1,
      stderr: '10.0.0.9 : 0.5\n10.0.0.1 :\n10.0.0.2 : 1.5\nICMP Host Unreachable from 10.0.0.254 for ICMP Echo sent to 10.0.0.9\n',
      want: { '10.0.0.1': { kind: 'error', detail: 'fping: exit 1, no result' }, '10.0.0.2': { kind: 'connected', rttMs: 1.5 } },
    },
  ];
  for (const c of cases) {
    const got = parseFping(c.targets, { exitCode: c.exitCode, stdout: c.stdout ?? '', stderr: c.stderr ?? '' }, 1);
    t.same(Object.fromEntries(got), c.want, c.name);
    t.same([...got.keys()], c.targets, `${c.name}: one outcome per target, in order`);
  }
  t.same(parseFping(['10.0.0.1'], { exitCode: 1, stdout: '', stderr: '10.0.0.1 : -\n' }, 2).get('10.0.0.1'), timeout(2));
});

t.test('fping: detected from `fping -v`', async (t) => {
  const answering = (r: { exitCode: number; stdout: string } | Error): ProbeCommandRunner => ({
    run: async () => { if (r instanceof Error) throw r; return { ...r, stderr: '' }; },
  });
  t.equal(await detectFping(answering({ exitCode: 0, stdout: 'fping: Version 5.1\n' })), '5.1');
  t.equal(await detectFping(answering({ exitCode: 0, stdout: 'fping: Version 4.2\n' })), '4.2');
  t.equal(await detectFping(answering({ exitCode: 0, stdout: 'fping: Version 3.16\n' })), null, 'too old: no IPv6 in the same binary');
  t.equal(await detectFping(answering(new Error('spawn fping ENOENT'))), null, 'not installed');
  t.equal(await detectFping(answering({ exitCode: 127, stdout: '' })), null);
  t.equal(await detectFping(answering({ exitCode: 0, stdout: PING_OK })), null, 'exit 0 alone is not fping');
});

type Echo = number | 'lost' | 'unreachable';

/** Answers ping and fping alike from a script of echoes per address (one entry per echo; none left:
 *  lost), so a scenario can run over both paths. */
function echoRunner(script: Record<string, Echo[]>, o: { hasFping: boolean }) {
  const calls: Array<{ argv: string[]; timeoutMs: number }> = [];
  const next = (a: string): Echo => script[a]?.shift() ?? 'lost';
  const runner: ProbeCommandRunner = {
    run: async (argv, opts) => {
      calls.push({ argv: [...argv], timeoutMs: opts.timeoutMs });
      if (argv[0] === 'fping' && argv[1] === '-v') {
        if (!o.hasFping) throw new Error('spawn fping ENOENT');
        return { exitCode: 0, stdout: 'fping: Version 5.1\n', stderr: '' };
      }
      if (argv[0] === 'fping') {
        const targets = argv.slice(argv.indexOf('--') + 1);
        const width = Math.max(...targets.map((a) => a.length));
        const echoes = targets.map(next);
        const stderr = targets.map((a, i) => `${a.padEnd(width)} : ${typeof echoes[i] === 'number' ? (echoes[i] as number).toFixed(3) : '-'}\n`).join('');
        return { exitCode: echoes.every((e) => typeof e === 'number') ? 0 : 1, stdout: '', stderr };
      }
      const target = argv.at(-1) ?? '';
      const e = next(target);
      if (typeof e === 'number') return { exitCode: 0, stdout: PING_OK.replace('0.734', e.toFixed(3)), stderr: '' };
      return { exitCode: 1, stdout: e === 'unreachable' ? `From 100.64.0.1 icmp_seq=1 Destination Host Unreachable\n` : '', stderr: '' };
    },
  };
  return { runner, calls };
}

function captureLog() {
  const lines: Array<{ level: number; msg: string; detail?: string }> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s) as { level: number; msg: string }); } });
  return { log, warnings: () => lines.filter((l) => l.level === 40) };
}

for (const hasFping of [true, false]) {
  const path = hasFping ? 'fping' : 'ping fallback';

  t.test(`peer prober over ${path}: reachability, last RTT and loss over the last 10`, async (t) => {
    const { runner, calls } = echoRunner({ '100.64.0.9': [0.734, 0.734, 0.734, 0.734, 0.734, 0.734, 0.734, 0.734, 'lost', 'unreachable', 2.5, 'lost'], '100.64.0.10': [0.734] }, { hasFping });
    const p = new PeerProber({ runner });
    const peers = [{ name: 'b', overlayIp: '100.64.0.9' }];
    for (let i = 0; i < 11; i++) await p.probeAll(peers);
    t.same(p.fields('b'), { isProbed: true, isReachable: true, rttMs: 2.5, lossRatio: 0.2 });
    await p.probeAll(peers);
    t.same(p.fields('b'), { isProbed: true, isReachable: false, rttMs: 2.5, lossRatio: 0.3 }, 'the window slides: 3 of the last 10 lost');
    await p.probeAll([{ name: 'c', overlayIp: '100.64.0.10' }]);
    t.same(p.fields('b'), NOT_PROBED, 'a peer no longer configured is forgotten');
    t.same(p.fields('c'), { isProbed: true, isReachable: true, rttMs: 0.734, lossRatio: 0 });
    t.equal(calls.filter((c) => c.argv[0] === (hasFping ? 'fping' : 'ping')).length, hasFping ? 14 : 13, 'fping -v once, then one process per round');
    t.equal(calls[0]?.argv.join(' '), 'fping -v', 'checked once, first');
  });

  t.test(`peer prober over ${path}: a new peer's first lost echoes are no verdict yet`, async (t) => {
    const { runner } = echoRunner({ '100.64.0.9': ['lost', 'lost', 'lost', 0.734], '100.64.0.10': ['lost', 0.734] }, { hasFping });
    const p = new PeerProber({ runner });
    const peers = [{ name: 'b', overlayIp: '100.64.0.9' }, { name: 'c', overlayIp: '100.64.0.10' }];
    await p.probeAll(peers);
    t.same(p.fields('b'), NOT_PROBED);
    await p.probeAll(peers);
    t.same(p.fields('b'), NOT_PROBED);
    t.same(p.fields('c'), { isProbed: true, isReachable: true, rttMs: 0.734, lossRatio: 0.5 });
    await p.probeAll(peers);
    t.same(p.fields('b'), { isProbed: true, isReachable: false, rttMs: 0, lossRatio: 1 });
  });
}

t.test('peer prober over fping: one process per round for 1,000 peers, side by side above that', async (t) => {
  const { log, warnings } = captureLog();
  const addr = (i: number) => `100.64.${i >> 8}.${i & 255}`;
  const script: Record<string, Echo[]> = {};
  // Even addresses answer (RTT 1.5, then 0.5), odd ones never do.
  for (let i = 0; i < 2500; i += 2) script[addr(i)] = [1.5, 1.5, 0.5, 0.5];
  const { runner, calls } = echoRunner(script, { hasFping: true });
  const p = new PeerProber({ runner, log });

  const thousand = Array.from({ length: 1000 }, (_, i) => ({ name: `p${i}`, overlayIp: addr(i) }));
  await p.probeAll(thousand);
  t.same(calls.map((c) => c.argv.slice(0, 11).join(' ')), ['fping -v', 'fping -C 1 -q -t 1000 -i 1 -r 0 --']);
  t.equal(calls[1]!.argv.length - 11, 1000, 'all 1,000 peers in one process');
  t.equal(calls[1]?.timeoutMs, 1000 * 1 + 1000 + 5000, 'killed only well after it should have ended');

  const many = Array.from({ length: 2500 }, (_, i) => ({ name: `p${i}`, overlayIp: addr(i) }));
  many.push({ name: 'same-address', overlayIp: addr(0) }, { name: 'garbage', overlayIp: '-x' }, { name: 'unassigned', overlayIp: '' });
  calls.length = 0;
  await p.probeAll(many);
  await p.probeAll(many);
  t.same(calls.map((c) => c.argv.length - 11), [1000, 1000, 500, 1000, 1000, 500], 'three processes a round; fping -v not asked again');
  const targets = calls.slice(0, 3).flatMap((c) => c.argv.slice(11));
  t.equal(new Set(targets).size, 2500, 'every address once: shared addresses are echoed once, "-x" never reaches argv');
  t.notOk(targets.includes('-x'));
  t.same(p.fields('p0'), { isProbed: true, isReachable: true, rttMs: 0.5, lossRatio: 0 }, 'three rounds, the last RTT');
  t.same(p.fields('p1'), { isProbed: true, isReachable: false, rttMs: 0, lossRatio: 1 }, 'three rounds lost: unreachable');
  t.same(p.fields('p2498'), { isProbed: true, isReachable: true, rttMs: 1.5, lossRatio: 0 }, 'the last chunk counts too');
  t.same(p.fields('p2499'), NOT_PROBED, 'two rounds lost: no verdict yet');
  t.same(p.fields('same-address'), p.fields('p0'), 'the echo to p0\'s address counts for it too');
  t.same(p.fields('unassigned'), NOT_PROBED);
  t.same(p.fields('garbage'), NOT_PROBED);
  await p.probeAll(many);
  t.same(p.fields('garbage'), { isProbed: true, isReachable: false, rttMs: 0, lossRatio: 1 }, 'not an address: lost, as ping failing on it was');
  t.same(p.fields('p2498'), { isProbed: true, isReachable: true, rttMs: 0.5, lossRatio: 0 });
  t.same(warnings(), []);
});

t.test('peer prober: without fping, one warning and the ping path', async (t) => {
  const { log, warnings } = captureLog();
  const { runner, calls } = echoRunner({ '100.64.0.9': [1, 1], '100.64.0.10': [2, 2] }, { hasFping: false });
  const p = new PeerProber({ runner, log });
  const peers = [{ name: 'b', overlayIp: '100.64.0.9' }, { name: 'c', overlayIp: '100.64.0.10' }];
  await p.probeAll(peers);
  await p.probeAll(peers);
  t.same(calls.map((c) => c.argv.join(' ')), [
    'fping -v',
    'ping -n -c 1 -W 1 100.64.0.9', 'ping -n -c 1 -W 1 100.64.0.10',
    'ping -n -c 1 -W 1 100.64.0.9', 'ping -n -c 1 -W 1 100.64.0.10',
  ]);
  t.same(warnings().map((w) => w.msg), ['fping is not installed: peer probes run one ping per peer (install the fping package)']);
  t.same(p.fields('c'), { isProbed: true, isReachable: true, rttMs: 2, lossRatio: 0 });
});

t.test('peer prober over fping: fping failing as a whole loses every peer, and says so once', async (t) => {
  const { log, warnings } = captureLog();
  let isBroken = true;
  const runner: ProbeCommandRunner = {
    run: async (argv) => {
      if (argv[1] === '-v') return { exitCode: 0, stdout: 'fping: Version 5.1\n', stderr: '' };
      return isBroken ? { exitCode: 4, stdout: '', stderr: 'fping: can\'t create socket (must run as root?)\n' } : { exitCode: 0, stdout: '', stderr: '100.64.0.9 : 0.5\n' };
    },
  };
  const p = new PeerProber({ runner, log });
  const peers = [{ name: 'b', overlayIp: '100.64.0.9' }];
  for (let i = 0; i < 3; i++) await p.probeAll(peers);
  t.same(p.fields('b'), { isProbed: true, isReachable: false, rttMs: 0, lossRatio: 1 });
  t.same(warnings().map((w) => [w.msg, w.detail]), [['fping gave no peer probe results', 'fping: exit 4: fping: can\'t create socket (must run as root?)']]);
  isBroken = false;
  await p.probeAll(peers);
  t.equal(p.fields('b').isReachable, true);
  isBroken = true;
  await p.probeAll(peers);
  t.equal(warnings().length, 2, 'broken again after working: said again');
});

t.test('path prober: picks the source address, dispatches by protocol', async (t) => {
  const seen: Array<[string, string | undefined, number]> = [];
  const { runner, calls } = fakeRunner({ '10.20.1.9': { exitCode: 0, stdout: PING_OK } });
  const prober = new PathProber({
    runner, clock: { nowMs: () => 1_700_000_000_000 }, localAddresses: () => ['127.0.0.1', '10.1.0.7'], timeoutMs: 1500,
    connectTcp: async (o) => { seen.push(['tcp', o.localAddress, o.timeoutMs]); return o.port === 443 ? { kind: 'connected', rttMs: 3 } : { kind: 'refused', detail: 'connection refused' }; },
    udpExchange: async (o) => { seen.push(['udp', o.localAddress, o.timeoutMs]); return { kind: 'timeout', detail: 'no reply within 1500 ms' }; },
  });
  const results = await prober.runAll([
    probe({}),
    probe({ name: 'ssh/0', port: 22, expectDeny: true }),
    probe({ name: 'dns/0', protocol: 'udp', port: 53 }),
    probe({ name: 'ping/0', protocol: 'icmp', port: 0, target: '10.20.1.9' }),
    probe({ name: 'elsewhere/0', sourcePrefix: '10.9.0.0/24' }),
  ]);
  t.same(results.map((r) => [r.name, r.isOk, r.detail]), [
    ['care/0', true, 'connected in 3.0 ms'],
    ['ssh/0', true, 'denied: connection refused'],
    ['dns/0', false, 'no reply within 1500 ms'],
    ['ping/0', true, 'connected in 0.7 ms'],
    ['elsewhere/0', false, 'no local address in 10.9.0.0/24'],
  ]);
  t.equal(results[0]?.checkedAtUnixMs, 1_700_000_000_000n);
  t.equal(results[0]?.rttMs, 3);
  t.same(seen, [['tcp', '10.1.0.7', 1500], ['tcp', '10.1.0.7', 1500], ['udp', '10.1.0.7', 1500]]);
  t.same(calls, [['ping', '-n', '-c', '1', '-W', '2', '-I', '10.1.0.7', '10.20.1.9']]);
});

t.test('prober loop: rounds on the timer, results per config, interval from the config', async (t) => {
  const ticks: Array<{ fn: () => void; ms: number }> = [];
  const timers: ProbeTimers = { setInterval: (fn, ms) => { ticks.push({ fn, ms }); return ticks.length - 1; }, clearInterval: (h) => { ticks.splice(h as number, 1); } };
  const { runner } = fakeRunner({ '100.64.0.9': Array.from({ length: 10 }, () => ({ exitCode: 0, stdout: PING_OK })) });
  let rounds = 0;
  const prober = new Prober({
    runner, clock: { nowMs: () => 1000 }, localAddresses: () => ['10.1.0.7'], log: silentLogger(), timers,
    connectTcp: async () => ({ kind: 'connected', rttMs: 1 }), onRound: () => { rounds += 1; },
  });
  const config = create(AgentConfigSchema, {
    peers: [create(PeerSchema, { name: 'b', overlayIp: '100.64.0.9' })], probes: [probe({})], probeIntervalSeconds: 3,
  });
  prober.setConfig(config);
  prober.start();
  await prober.runOnce();
  t.equal(ticks.length, 1);
  t.equal(ticks[0]?.ms, 3000);
  t.equal(rounds, 2, 'once when peer b became reachable, once after the round');
  t.same(prober.peerFields('b'), { isProbed: true, isReachable: true, rttMs: 0.734, lossRatio: 0 });
  t.same(prober.probeResults().map((r) => [r.name, r.isOk]), [['care/0', true]]);
  ticks[0]!.fn(); // one timer: asserted above
  await prober.runOnce();
  t.equal(rounds, 3, 'nothing changed: once, after the round');
  prober.setConfig(create(AgentConfigSchema, { peers: [], probes: [] }));
  t.same(prober.probeResults(), [], 'results of probes no longer configured are dropped');
  t.equal(ticks[0]?.ms, 5000, 'default interval, timer restarted');
  prober.stop();
  t.equal(ticks.length, 0);
});

t.test('prober loop: a peer that stops answering is told at once, not after slow path probes', async (t) => {
  const timers: ProbeTimers = { setInterval: () => 0, clearInterval: () => undefined };
  let isPeerUp = true;
  const runner = { run: async () => (isPeerUp ? { exitCode: 0, stdout: PING_OK, stderr: '' } : { exitCode: 1, stdout: '', stderr: '' }) };
  let releasePath: (() => void) | null = null;
  const seen: boolean[] = [];
  const prober: Prober = new Prober({
    runner, clock: { nowMs: () => 1000 }, localAddresses: () => ['10.1.0.7'], log: silentLogger(), timers,
    // The path probe goes through the dead box: it hangs until its timeout (released by hand here).
    connectTcp: () => new Promise((resolve) => { releasePath = () => resolve({ kind: 'timeout', detail: 'timeout after 2000 ms' }); }),
    onRound: () => { seen.push(prober.peerFields('b').isReachable); },
  });
  prober.setConfig(create(AgentConfigSchema, { peers: [create(PeerSchema, { name: 'b', overlayIp: '100.64.0.9' })], probes: [probe({})] }));
  for (let i = 0; i < 3; i++) {
    const round = prober.runOnce();
    await new Promise((r) => setTimeout(r, 10));
    releasePath!();
    await round;
  }
  seen.length = 0;
  isPeerUp = false;
  const round = prober.runOnce();
  await new Promise((r) => setTimeout(r, 10));
  t.same(seen, [false], 'told while the path probe still runs');
  releasePath!();
  await round;
  t.same(seen, [false, false], 'and after the round');
});

// ---- real sockets on 127.0.0.1 ------------------------------------------------------------------

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A listener whose accept queue is full and never drained (its thread is blocked), so new SYNs
 *  are dropped and a connect times out — on loopback, without touching any firewall. */
async function blackHoleListener(): Promise<{ port: number; stop(): Promise<void> }> {
  const shared = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const net = require('node:net');
    const server = net.createServer();
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      parentPort.postMessage(server.address().port);
      setTimeout(() => Atomics.wait(workerData, 0, 0, 20000), 50);
    });
  `, { eval: true, workerData: shared });
  const port = await new Promise<number>((r) => worker.once('message', r));
  await new Promise((r) => setTimeout(r, 150));
  // Fill the accept queue (backlog 1 holds about 2).
  const fillers = Array.from({ length: 4 }, () => net.connect({ host: '127.0.0.1', port }).on('error', () => undefined));
  await new Promise((r) => setTimeout(r, 200));
  return {
    port,
    stop: async () => {
      fillers.forEach((f) => f.destroy());
      Atomics.store(shared, 0, 1);
      Atomics.notify(shared, 0);
      await worker.terminate();
    },
  };
}

t.test('real tcp connect on 127.0.0.1: connected, refused, timeout', async (t) => {
  const server = net.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  const port = (server.address() as net.AddressInfo).port;

  const ok = await connectTcp({ host: '127.0.0.1', port, localAddress: '127.0.0.1', timeoutMs: 2000 });
  t.equal(ok.kind, 'connected');
  t.ok(ok.kind === 'connected' && ok.rttMs >= 0 && ok.rttMs < 2000);

  const closed = await freePort();
  t.same(await connectTcp({ host: '127.0.0.1', port: closed, localAddress: '127.0.0.1', timeoutMs: 2000 }), { kind: 'refused', detail: 'connection refused' });

  const hole = await blackHoleListener();
  t.teardown(() => hole.stop());
  const started = Date.now();
  t.same(await connectTcp({ host: '127.0.0.1', port: hole.port, timeoutMs: 300 }), { kind: 'timeout', detail: 'timeout after 300 ms' });
  t.ok(Date.now() - started < 2000, 'gave up at the timeout');

  const notMine = await connectTcp({ host: '127.0.0.1', port, localAddress: '192.0.2.1', timeoutMs: 1000 });
  t.equal(notMine.kind, 'error', 'a source address the box does not have is a local error');

  const prober = new PathProber({ runner: fakeRunner({}).runner, clock: { nowMs: () => 0 }, localAddresses: () => ['127.0.0.1'], timeoutMs: 300 });
  const results = await prober.runAll([
    probe({ name: 'up/0', target: '127.0.0.1', port, sourcePrefix: '127.0.0.0/8' }),
    probe({ name: 'down/0', target: '127.0.0.1', port: closed, sourcePrefix: '127.0.0.0/8' }),
    probe({ name: 'shut/0', target: '127.0.0.1', port: closed, sourcePrefix: '127.0.0.0/8', expectDeny: true }),
  ]);
  t.same(results.map((r) => [r.name, r.isOk]), [['up/0', true], ['down/0', false], ['shut/0', true]]);
  t.equal(results[1]?.detail, 'connection refused');
});

t.test('real udp exchange on 127.0.0.1: reply, port unreachable, silence', async (t) => {
  const echo = dgram.createSocket('udp4');
  echo.on('message', (msg, rinfo) => echo.send(msg, rinfo.port, rinfo.address));
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
  t.teardown(() => { echo.close(); silent.close(); });
  const payload = Buffer.from('x');
  const reply = await udpExchange({ host: '127.0.0.1', port: echo.address().port, localAddress: '127.0.0.1', timeoutMs: 1000, payload });
  t.equal(reply.kind, 'connected');
  const closed = await freePort();
  t.same(await udpExchange({ host: '127.0.0.1', port: closed, localAddress: '127.0.0.1', timeoutMs: 1000, payload }), { kind: 'refused', detail: 'connection refused' });
  t.same(await udpExchange({ host: '127.0.0.1', port: silent.address().port, timeoutMs: 200, payload }), { kind: 'timeout', detail: 'no reply within 200 ms' });
});
