import t from 'tap';
import { parsePingRttMs, pingOnce } from './ping.js';
import { fakeRunner, PING_OK } from './probes.fixture.js';

t.test('ping: argv and outcomes', async (t) => {
  const { runner, calls } = fakeRunner({
    '100.64.0.9': { exitCode: 0, stdout: PING_OK },
    '100.64.0.10': {
      exitCode: 1,
      stdout: 'PING ...\n\n--- statistics ---\n1 packets transmitted, 0 received, 100% packet loss\n',
    },
    '100.64.0.11': { exitCode: 1, stdout: 'From 100.64.0.1 icmp_seq=1 Destination Host Unreachable\n' },
    '100.64.0.12': { exitCode: 2, stderr: 'ping: connect: Network is unreachable\n' },
  });
  t.same(await pingOnce(runner, '100.64.0.9', { timeoutSeconds: 1 }), { kind: 'connected', rttMs: 0.734 });
  t.same(await pingOnce(runner, '100.64.0.10', { timeoutSeconds: 1 }), {
    kind: 'timeout',
    detail: 'no reply within 1 s',
  });
  t.same(await pingOnce(runner, '100.64.0.11', { timeoutSeconds: 2, sourceAddress: '10.1.0.1' }), {
    kind: 'unreachable',
    detail: 'destination host unreachable',
  });
  t.same(await pingOnce(runner, '100.64.0.12', { timeoutSeconds: 1 }), {
    kind: 'error',
    detail: 'ping: ping: connect: Network is unreachable',
  });
  t.same(
    calls[0],
    ['ping', '-n', '-c', '1', '-W', '1', '100.64.0.9'],
    'own namespace, no netns prefix, no -I for peers',
  );
  t.same(calls[2], ['ping', '-n', '-c', '1', '-W', '2', '-I', '10.1.0.1', '100.64.0.11']);
  t.equal(parsePingRttMs('64 bytes from ::1: icmp_seq=1 ttl=64 time<1 ms'), 1);
  t.equal(parsePingRttMs('nothing'), null);
});
