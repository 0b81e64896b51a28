import t from 'tap';
import { detectFping, fpingArgv, parseFping } from './fping.js';
import type { AttemptOutcome, ProbeCommandRunner } from './ports.js';
import { PING_OK } from './probes.fixture.js';

t.test('fping: argv', async (t) => {
  t.same(fpingArgv(['100.64.0.9', 'fd00::9'], 1), [
    'fping',
    '-C',
    '1',
    '-q',
    '-t',
    '1000',
    '-i',
    '1',
    '-r',
    '0',
    '--',
    '100.64.0.9',
    'fd00::9',
  ]);
  t.same(fpingArgv(['100.64.0.9'], 2).slice(4, 6), ['-t', '2000']);
});

t.test('fping: output to one outcome per target', async (t) => {
  const timeout = (s = 1): AttemptOutcome => ({ kind: 'timeout', detail: `no reply within ${s} s` });
  const cases: Array<{
    name: string;
    targets: string[];
    exitCode: number;
    stdout?: string;
    stderr?: string;
    want: Record<string, AttemptOutcome>;
  }> = [
    {
      // Captured from fping 5.1 -C 1 -q: one answered, one silent.
      name: 'alive with RTT, loss as "-"',
      targets: ['10.99.0.2', '10.99.0.3'],
      exitCode: 1,
      stderr: '10.99.0.2 : 0.037\n10.99.0.3 : -\n',
      want: { '10.99.0.2': { kind: 'connected', rttMs: 0.037 }, '10.99.0.3': timeout() },
    },
    {
      name: 'all alive, exit 0, RTTs in every width fping prints',
      targets: ['10.0.0.1', '10.0.0.2', '10.0.0.3'],
      exitCode: 0,
      stderr: '10.0.0.1 : 0.010\n10.0.0.2 : 12.3\n10.0.0.3 : 120\n',
      want: {
        '10.0.0.1': { kind: 'connected', rttMs: 0.01 },
        '10.0.0.2': { kind: 'connected', rttMs: 12.3 },
        '10.0.0.3': { kind: 'connected', rttMs: 120 },
      },
    },
    {
      name: 'IPv6, names padded to the longest',
      targets: ['::1', '2001:db8::1'],
      exitCode: 1,
      stderr: '::1         : 0.035\n2001:db8::1 : -\n',
      want: { '::1': { kind: 'connected', rttMs: 0.035 }, '2001:db8::1': timeout() },
    },
    {
      // Printed even with -q, before the summary; the first reply counts.
      name: 'duplicates are not results',
      targets: ['10.0.0.1', '10.0.0.2'],
      exitCode: 1,
      stderr:
        '10.0.0.1 : duplicate for [0], 64 bytes, 0.091 ms [<- 10.0.0.9]\n10.0.0.1 : duplicate for [0], 64 bytes, 0.120 ms\n10.0.0.2 : duplicate for [0], 64 bytes, 0.2 ms\n\n10.0.0.1 : 0.040\n',
      want: {
        '10.0.0.1': { kind: 'connected', rttMs: 0.04 },
        '10.0.0.2': { kind: 'error', detail: 'fping: exit 1, no result' },
      },
    },
    {
      // Captured from fping 5.1 without -q: per-reply lines on stdout, ICMP errors before the summary.
      name: 'ICMP unreachable lines',
      targets: ['10.99.0.2', '10.98.0.5', '10.99.0.3', '10.97.0.1'],
      exitCode: 1,
      stdout:
        '10.99.0.2 : [0], 64 bytes, 0.040 ms (0.040 avg, 0% loss)\n10.99.0.3 : [0], timed out (NaN avg, 100% loss)\n10.98.0.5 : [0], timed out (NaN avg, 100% loss)\n',
      stderr:
        'ICMP Unreachable (Communication Administratively Prohibited) from 10.99.0.2 for ICMP Echo sent to 10.98.0.5\nICMP Host Unreachable from 10.99.0.1 for ICMP Echo sent to 10.99.0.3\n\n10.99.0.2 : 0.040\n10.99.0.3 : -\n10.98.0.5 : -\n10.97.0.1 : -\n',
      want: {
        '10.99.0.2': { kind: 'connected', rttMs: 0.04 },
        '10.98.0.5': {
          kind: 'unreachable',
          detail: 'icmp unreachable (communication administratively prohibited) from 10.99.0.2',
        },
        '10.99.0.3': { kind: 'unreachable', detail: 'icmp host unreachable from 10.99.0.1' },
        '10.97.0.1': timeout(),
      },
    },
    {
      // Without -q fping names the target it could not resolve (exit 2); the others still count.
      name: 'unknown host',
      targets: ['127.0.0.1', 'nosuch.invalid'],
      exitCode: 2,
      stdout: '127.0.0.1 : [0], 64 bytes, 0.019 ms (0.019 avg, 0% loss)\n',
      stderr: 'nosuch.invalid: Name or service not known\n\n127.0.0.1 : 0.019\n',
      want: {
        '127.0.0.1': { kind: 'connected', rttMs: 0.019 },
        'nosuch.invalid': { kind: 'error', detail: 'fping: nosuch.invalid: Name or service not known' },
      },
    },
    {
      name: 'unknown host with -q: no line at all',
      targets: ['127.0.0.1', 'nosuch.invalid'],
      exitCode: 2,
      stderr: '127.0.0.1 : 0.022\n',
      want: {
        '127.0.0.1': { kind: 'connected', rttMs: 0.022 },
        'nosuch.invalid': { kind: 'error', detail: 'fping: exit 2, no result' },
      },
    },
    {
      name: 'system call failure: every target an error',
      targets: ['10.0.0.1', '10.0.0.2'],
      exitCode: 4,
      stderr: "fping: can't create socket (must run as root?)\n",
      want: {
        '10.0.0.1': { kind: 'error', detail: "fping: exit 4: fping: can't create socket (must run as root?)" },
        '10.0.0.2': { kind: 'error', detail: "fping: exit 4: fping: can't create socket (must run as root?)" },
      },
    },
    {
      name: 'invalid arguments',
      targets: ['10.0.0.1'],
      exitCode: 1,
      stderr: "fping: option requires an argument -- 'x'\nsee 'fping -h' for usage information\n",
      want: { '10.0.0.1': { kind: 'error', detail: "fping: exit 1: fping: option requires an argument -- 'x'" } },
    },
    {
      name: 'killed at the timeout: nothing printed',
      targets: ['10.0.0.1'],
      exitCode: -1,
      want: { '10.0.0.1': { kind: 'error', detail: 'fping: killed (timeout), no result' } },
    },
    {
      name: 'lines for targets not asked about, and an empty summary, are ignored',
      targets: ['10.0.0.1', '10.0.0.2'],
      exitCode: 1,
      stderr:
        '10.0.0.9 : 0.5\n10.0.0.1 :\n10.0.0.2 : 1.5\nICMP Host Unreachable from 10.0.0.254 for ICMP Echo sent to 10.0.0.9\n',
      want: {
        '10.0.0.1': { kind: 'error', detail: 'fping: exit 1, no result' },
        '10.0.0.2': { kind: 'connected', rttMs: 1.5 },
      },
    },
  ];
  for (const c of cases) {
    const got = parseFping(c.targets, { exitCode: c.exitCode, stdout: c.stdout ?? '', stderr: c.stderr ?? '' }, 1);
    t.same(Object.fromEntries(got), c.want, c.name);
    t.same([...got.keys()], c.targets, `${c.name}: one outcome per target, in order`);
  }
  t.same(
    parseFping(['10.0.0.1'], { exitCode: 1, stdout: '', stderr: '10.0.0.1 : -\n' }, 2).get('10.0.0.1'),
    timeout(2),
  );
});

t.test('fping: detected from `fping -v`', async (t) => {
  const answering = (r: { exitCode: number; stdout: string } | Error): ProbeCommandRunner => ({
    run: async () => {
      if (r instanceof Error) throw r;
      return { ...r, stderr: '' };
    },
  });
  t.equal(await detectFping(answering({ exitCode: 0, stdout: 'fping: Version 5.1\n' })), '5.1');
  t.equal(await detectFping(answering({ exitCode: 0, stdout: 'fping: Version 4.2\n' })), '4.2');
  t.equal(
    await detectFping(answering({ exitCode: 0, stdout: 'fping: Version 3.16\n' })),
    null,
    'too old: no IPv6 in the same binary',
  );
  t.equal(await detectFping(answering(new Error('spawn fping ENOENT'))), null, 'not installed');
  t.equal(await detectFping(answering({ exitCode: 127, stdout: '' })), null);
  t.equal(await detectFping(answering({ exitCode: 0, stdout: PING_OK })), null, 'exit 0 alone is not fping');
});
