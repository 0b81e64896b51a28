import t from 'tap';
import { policyRuleWindows } from './rule-windows.js';
import type { Policy } from './types.js';

const NOW = Date.parse('2026-12-06T12:00:00Z');
const rule = (name: string, notBeforeMs?: number, notAfterMs?: number) =>
  ({
    name,
    from: ['a'],
    to: ['b'],
    ...(notBeforeMs ? { notBeforeMs } : {}),
    ...(notAfterMs ? { notAfterMs } : {}),
  }) as Policy['rules'][number];

t.test('rules with a window, soonest end first; states on the given clock', async (t) => {
  const policy = {
    rules: [
      rule('always'),
      rule('later', NOW + 3_600_000),
      rule('ends-soon', undefined, NOW + 90_000),
      rule('gone', NOW - 86_400_000, NOW - 1000),
      rule('ends-later', NOW - 1000, NOW + 86_400_000),
    ],
  } as unknown as Policy;
  t.same(policyRuleWindows(policy, NOW), [
    {
      rule: 'gone',
      notBefore: '2026-12-05T12:00:00.000Z',
      notAfter: '2026-12-06T11:59:59.000Z',
      state: 'expired',
      secondsToExpiry: -1,
    },
    { rule: 'ends-soon', notBefore: null, notAfter: '2026-12-06T12:01:30.000Z', state: 'open', secondsToExpiry: 90 },
    {
      rule: 'ends-later',
      notBefore: '2026-12-06T11:59:59.000Z',
      notAfter: '2026-12-07T12:00:00.000Z',
      state: 'open',
      secondsToExpiry: 86_400,
    },
    { rule: 'later', notBefore: '2026-12-06T13:00:00.000Z', notAfter: null, state: 'pending', secondsToExpiry: null },
  ]);
  t.same(policyRuleWindows(null, NOW), [], 'no policy');
});
