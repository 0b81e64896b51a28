import t from 'tap';
import { HealthHistory } from './history.js';
import type { HealthEvent } from './types.js';

const ev = (i: number, subject = `link:a:b${i % 3}`): HealthEvent => ({
  subject,
  kind: subject.startsWith('link:') ? 'link' : 'agent',
  from: 'ok',
  to: 'down',
  atMs: 1000 + i * 10,
  reason: `r${i}`,
});

t.test('bounded ring keeps the newest events', async (t) => {
  const h = new HealthHistory(5);
  h.append(Array.from({ length: 12 }, (_, i) => ev(i)));
  t.equal(h.length, 5);
  t.same(
    h.query().map((e) => e.reason),
    ['r7', 'r8', 'r9', 'r10', 'r11'],
    'oldest first',
  );
});

t.test('query by subject, kind, time range and limit', async (t) => {
  const h = new HealthHistory(100);
  h.append(Array.from({ length: 20 }, (_, i) => ev(i)));
  h.append([ev(20, 'agent:x')]);
  const cases: Array<[string, Parameters<HealthHistory['query']>[0], string[]]> = [
    ['subject', { subject: 'link:a:b0' }, ['r0', 'r3', 'r6', 'r9', 'r12', 'r15', 'r18']],
    ['kind', { kind: 'agent' }, ['r20']],
    ['since (inclusive)', { sinceMs: 1170 }, ['r17', 'r18', 'r19', 'r20']],
    ['until (exclusive)', { untilMs: 1030 }, ['r0', 'r1', 'r2']],
    ['range and subject', { sinceMs: 1030, untilMs: 1100, subject: 'link:a:b0' }, ['r3', 'r6', 'r9']],
    ['limit keeps the newest', { limit: 2 }, ['r19', 'r20']],
    ['no match', { subject: 'link:zz' }, []],
  ];
  for (const [name, q, want] of cases)
    t.same(
      h.query(q).map((e) => e.reason),
      want,
      name,
    );
});

t.test('rejects a silly capacity', async (t) => {
  t.throws(() => new HealthHistory(0), RangeError);
});
