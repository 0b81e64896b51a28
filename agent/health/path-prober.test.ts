import t from 'tap';
import { judgeProbe, PathProber, sourceAddressFor } from './path-prober.js';
import type { AttemptOutcome } from './ports.js';
import { fakeRunner, PING_OK, probe } from './probes.fixture.js';

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

t.test('path prober: picks the source address, dispatches by protocol', async (t) => {
  const seen: Array<[string, string | undefined, number]> = [];
  const { runner, calls } = fakeRunner({ '10.20.1.9': { exitCode: 0, stdout: PING_OK } });
  const prober = new PathProber({
    runner,
    clock: { nowMs: () => 1_700_000_000_000 },
    localAddresses: () => ['127.0.0.1', '10.1.0.7'],
    timeoutMs: 1500,
    connectTcp: async (o) => {
      seen.push(['tcp', o.localAddress, o.timeoutMs]);
      return o.port === 443 ? { kind: 'connected', rttMs: 3 } : { kind: 'refused', detail: 'connection refused' };
    },
    udpExchange: async (o) => {
      seen.push(['udp', o.localAddress, o.timeoutMs]);
      return { kind: 'timeout', detail: 'no reply within 1500 ms' };
    },
  });
  const results = await prober.runAll([
    probe({}),
    probe({ name: 'ssh/0', port: 22, expectDeny: true }),
    probe({ name: 'dns/0', protocol: 'udp', port: 53 }),
    probe({ name: 'ping/0', protocol: 'icmp', port: 0, target: '10.20.1.9' }),
    probe({ name: 'elsewhere/0', sourcePrefix: '10.9.0.0/24' }),
  ]);
  t.same(
    results.map((r) => [r.name, r.isOk, r.detail]),
    [
      ['care/0', true, 'connected in 3.0 ms'],
      ['ssh/0', true, 'denied: connection refused'],
      ['dns/0', false, 'no reply within 1500 ms'],
      ['ping/0', true, 'connected in 0.7 ms'],
      ['elsewhere/0', false, 'no local address in 10.9.0.0/24'],
    ],
  );
  t.equal(results[0]?.checkedAtUnixMs, 1_700_000_000_000n);
  t.equal(results[0]?.rttMs, 3);
  t.same(seen, [
    ['tcp', '10.1.0.7', 1500],
    ['tcp', '10.1.0.7', 1500],
    ['udp', '10.1.0.7', 1500],
  ]);
  t.same(calls, [['ping', '-n', '-c', '1', '-W', '2', '-I', '10.1.0.7', '10.20.1.9']]);
});
