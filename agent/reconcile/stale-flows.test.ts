import t from 'tap';
import { StaleFlows } from './stale-flows.js';
import type { ConntrackPort, RelayListen } from '../host/ports.js';

/** Records what StaleFlows asks of conntrack (the real adapter: agent/host/linux/expiry.test.ts). */
function recorder(onBox: number[]) {
  const calls: string[] = [];
  const port: ConntrackPort = {
    forgetUdp: (l: readonly RelayListen[]) => (
      calls.push(`udp ${l.map((x) => `${x.address}:${x.port}`).join(',')}`),
      Promise.resolve()
    ),
    forgetMarks: (m: readonly number[]) => (calls.push(`marks ${m.join(',')}`), Promise.resolve()),
    listMarks: () => (calls.push('list'), Promise.resolve(onBox)),
  };
  return { port, calls };
}

const relay = (...ports: number[]) =>
  new Map(ports.map((p) => [`k${p}`, { family: 4 as const, address: '192.0.2.1', port: p }]));

t.test('after a start: every Crosslink mark on the box but those in force is forgotten', async (t) => {
  const r = recorder([1, 2, 3]);
  await new StaleFlows(r.port).afterFirewall(new Map(), new Set([2]));
  t.same(r.calls, ['list', 'marks 1,3']);
});

t.test('then: only the marks that went, and only the relay forwards that changed', async (t) => {
  const r = recorder([]);
  const s = new StaleFlows(r.port);
  await s.afterFirewall(relay(1000), new Set([5, 6]));
  t.same(r.calls, ['udp 192.0.2.1:1000', 'list']);
  r.calls.length = 0;
  await s.afterFirewall(relay(1000), new Set([5, 6, 7]));
  t.same(r.calls, [], 'rules added, nothing gone: nothing forgotten');
  await s.afterFirewall(relay(1001), new Set([7]));
  t.same(r.calls, ['udp 192.0.2.1:1001,192.0.2.1:1000', 'marks 5,6']);
  r.calls.length = 0;
  await s.afterFirewall(new Map(), new Set());
  t.same(r.calls, ['udp 192.0.2.1:1001', 'marks 7'], 'no rules at all: every flow forgotten');
});

t.test('a host without conntrack: nothing asked, nothing thrown', async (t) => {
  await t.resolves(new StaleFlows(undefined).afterFirewall(relay(1), new Set([1])));
});
