import t from 'tap';
import { FirewallCounterTotals } from './rule-counters.js';

const c = (packets: number, bytes: number) => ({ packets: BigInt(packets), bytes: BigInt(bytes) });

t.test('named counters split into drops and per-rule rows', async (t) => {
  const totals = new FirewallCounterTotals().update({
    dropped_inbound: c(3, 180),
    'new/outbound/web': c(2, 120),
    'flows/outbound/web': c(20, 9000),
    'new/inbound/web': c(1, 60),
    'flows/inbound/web': c(9, 800),
    'flows/local/ping': c(4, 336),
    stray_counter: c(1, 1),
    'new/sideways/web': c(1, 1),
  });
  t.same(totals.dropped, { dropped_inbound: { packets: 3, bytes: 180 } });
  t.same(totals.rules, [
    { rule: 'ping', direction: 'local', connections: 0, packets: 4, bytes: 336 },
    { rule: 'web', direction: 'inbound', connections: 1, packets: 9, bytes: 800 },
    { rule: 'web', direction: 'outbound', connections: 2, packets: 20, bytes: 9000 },
  ]);
});

t.test('totals run on across a table reload (nft restarts its counters at zero)', async (t) => {
  const totals = new FirewallCounterTotals();
  const row = (r: Record<string, { packets: bigint; bytes: bigint }>) => totals.update(r).rules[0];
  t.match(row({ 'new/outbound/web': c(5, 300), 'flows/outbound/web': c(50, 5000) }), { connections: 5, packets: 50 });
  t.match(row({ 'new/outbound/web': c(7, 420), 'flows/outbound/web': c(70, 7000) }), { connections: 7, packets: 70 });
  // The table was replaced: the readings start again from zero.
  t.match(row({ 'new/outbound/web': c(1, 60), 'flows/outbound/web': c(10, 1000) }), {
    connections: 8,
    packets: 80,
    bytes: 8000,
  });
  // A rule that disappears and comes back keeps its total, and starts again from its new zero.
  t.same(totals.update({}).rules, []);
  t.match(row({ 'new/outbound/web': c(2, 120), 'flows/outbound/web': c(20, 2000) }), {
    connections: 10,
    packets: 100,
    bytes: 10000,
  });
});

t.test('drop counters run on the same way', async (t) => {
  const totals = new FirewallCounterTotals();
  totals.update({ dropped_outbound: c(10, 600) });
  t.same(totals.update({ dropped_outbound: c(2, 120) }).dropped, { dropped_outbound: { packets: 12, bytes: 720 } });
});

t.test('drops per zone pair: sorted rows that run on across reloads', async (t) => {
  const totals = new FirewallCounterTotals();
  const first = totals.update({
    'drop/outbound/psn/n3': c(1, 60),
    'drop/inbound/psn/n3': c(5, 300),
    'drop/outbound/n3/psn': c(7, 420),
    'drop/outbound/N3/psn': c(9, 9),
  });
  t.same(first.zoneDrops, [
    { direction: 'inbound', sourceZone: 'psn', destinationZone: 'n3', packets: 5, bytes: 300 },
    { direction: 'outbound', sourceZone: 'n3', destinationZone: 'psn', packets: 7, bytes: 420 },
    { direction: 'outbound', sourceZone: 'psn', destinationZone: 'n3', packets: 1, bytes: 60 },
  ]);
  t.same(first.rules, [], 'no rule rows');
  const after = totals.update({ 'drop/outbound/n3/psn': c(2, 120) });
  t.same(after.zoneDrops, [
    { direction: 'outbound', sourceZone: 'n3', destinationZone: 'psn', packets: 9, bytes: 540 },
  ]);
});
