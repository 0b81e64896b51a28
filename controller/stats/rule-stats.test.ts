import t from 'tap';
import { ruleStats } from './rule-stats.js';

const c = (rule: string, direction: string, connections: number, packets: number, bytes: number) => ({
  rule,
  direction,
  connections: BigInt(connections),
  packets: BigInt(packets),
  bytes: BigInt(bytes),
});

t.test('each flow counts once, where it entered the overlay; inbound is shown apart', async (t) => {
  const rows = ruleStats(
    ['care-records', 'unused', 'ward-ping'],
    [
      { agent: 'gp', reportedAtMs: 0, counters: [c('care-records', 'outbound', 3, 30, 3000)] },
      { agent: 'civic', reportedAtMs: 0, counters: [c('care-records', 'outbound', 2, 20, 2000)] },
      {
        agent: 'lth',
        reportedAtMs: 1000,
        counters: [
          c('care-records', 'inbound', 5, 50, 5000),
          c('ward-ping', 'local', 4, 8, 672),
          c('old', 'outbound', 1, 2, 3),
        ],
      },
    ],
  );
  t.same(
    rows.map((r) => [r.rule, r.isInPolicy, r.connections, r.packets, r.bytes, r.byDirection.inbound.connections]),
    [
      ['care-records', true, 5, 50, 5000, 5],
      ['old', false, 1, 2, 3, 0],
      ['unused', true, 0, 0, 0, 0],
      ['ward-ping', true, 4, 8, 672, 0],
    ],
  );
  t.same(
    rows[0]!.boxes.map((b) => `${b.agent}/${b.direction}`),
    ['civic/outbound', 'gp/outbound', 'lth/inbound'],
    'boxes sorted by agent',
  );
  t.equal(rows[1]!.boxes[0]!.reportedAt, '1970-01-01T00:00:01.000Z');
});

t.test('a direction this controller does not know is listed on its box but not summed', async (t) => {
  const [row] = ruleStats(['r'], [{ agent: 'a', reportedAtMs: 0, counters: [c('r', 'sideways', 9, 9, 9)] }]);
  t.match(row, { connections: 0, packets: 0, bytes: 0, boxes: [{ direction: 'sideways', connections: 9 }] });
});

t.test('no reports: every policy rule at zero', async (t) => {
  t.same(
    ruleStats(['b', 'a'], []).map((r) => [r.rule, r.connections, r.boxes.length]),
    [
      ['a', 0, 0],
      ['b', 0, 0],
    ],
  );
});
