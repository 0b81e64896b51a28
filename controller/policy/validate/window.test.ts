import t from 'tap';
import { readFileSync } from 'node:fs';
import { checkPolicy } from '../check.js';
import { parseRfc3339 } from './window.js';

t.test('parseRfc3339: full times with a zone only, real days only', async (t) => {
  t.equal(parseRfc3339('2025-03-31T17:00:00Z'), Date.UTC(2025, 2, 31, 17));
  t.equal(parseRfc3339('2025-03-31T18:00:00+01:00'), Date.UTC(2025, 2, 31, 17));
  t.equal(parseRfc3339('2025-03-31 17:00:00.250z'), Date.UTC(2025, 2, 31, 17) + 250);
  for (const bad of [
    '2025-03-31',
    '2025-03-31T17:00Z',
    '2025-03-31T17:00:00',
    '2025-04-31T00:00:00Z',
    '2025-13-01T00:00:00Z',
    'soon',
  ])
    t.equal(parseRfc3339(bad), undefined, bad);
});

const LEEDS = readFileSync(new URL('../../../examples/leeds.yaml', import.meta.url), 'utf8');
const withWindow = (lines: string) =>
  LEEDS.replace('    ticket: CHG-2024-0117\n', `    ticket: CHG-2024-0117\n${lines}`);
const NOW = Date.UTC(2026, 0, 1);

t.test('policy check: past not-after is an error with its line; near ones warn; bad ones name the field', async (t) => {
  const past = checkPolicy(withWindow('    not-after: 2025-12-31T23:59:59Z\n'), { nowMs: NOW });
  t.equal(past.isOk, false);
  t.match(past.errors[0], {
    path: 'rules[0].not-after',
    line: 123,
    message: /rule "gp-to-care-records" expired at 2025-12-31T23:59:59Z/,
  });
  t.equal(
    checkPolicy(withWindow('    not-after: 2025-12-31T23:59:59Z\n')).isOk,
    true,
    'without a clock (the controller): valid',
  );

  const soon = checkPolicy(withWindow('    not-after: 2026-01-08T00:00:00Z\n'), { nowMs: NOW });
  t.equal(soon.isOk, true, 'a warning keeps it valid');
  t.match(soon.warnings, [
    { path: 'rules[0].not-after', line: 123, message: /expires at 2026-01-08T00:00:00Z, in 7 days/ },
  ]);
  t.same(
    checkPolicy(withWindow('    not-after: 2026-01-08T00:00:00Z\n'), { nowMs: NOW, expiryWarnDays: 3 }).warnings,
    [],
  );
  t.same(soon.windows, [{ rule: 'gp-to-care-records', notAfterMs: Date.UTC(2026, 0, 8) }]);
  t.equal(
    soon.configs.get('gp-chapeltown' as never)?.firewall?.outbound[0]?.notAfterUnixMs,
    BigInt(Date.UTC(2026, 0, 8)),
    'compiled into the configs',
  );

  const bad = checkPolicy(withWindow('    not-before: 2026-02-01T00:00:00Z\n    not-after: 1st of March\n'), {
    nowMs: NOW,
  });
  t.match(bad.errors, [{ path: 'rules[0].not-after', message: /must be an RFC 3339 time with a time zone/ }]);
  const backwards = checkPolicy(
    withWindow('    not-before: 2026-03-01T00:00:00Z\n    not-after: 2026-02-01T00:00:00Z\n'),
    { nowMs: NOW },
  );
  t.match(backwards.errors, [{ message: /ends \(not-after 2026-02-01T00:00:00Z\) before it starts/ }]);
});
