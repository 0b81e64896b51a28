// checkPolicy(): the summary behind `crosslink policy check`.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { checkPolicy } from './check.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const text = readFileSync(join(root, 'examples', 'leeds.yaml'), 'utf8');

t.test('the Leeds example is valid and its tests pass', async (t) => {
  const s = checkPolicy(text);
  t.ok(s.isOk);
  t.same(s.errors, []);
  // 10 links: the standby peers with everyone the primary does, and with the primary (edge failover).
  t.match(s, { agents: 7, subnets: 8, groups: 3, rules: 7, peerLinks: 10 });
  t.equal(s.tests.failed, 0);
  t.equal(s.tests.passed, 11);
  t.same(s.unserved, []);
});

t.test('a failing test makes the check fail, with the reason', async (t) => {
  const s = checkPolicy(text.replace('    port: 22\n    expect: deny', '    port: 22\n    expect: allow'));
  t.notOk(s.isOk);
  t.equal(s.tests.failed, 1);
  const f = s.tests.results.find((r) => !r.isPassed);
  t.match(
    f?.label,
    /tests\[1\] "social care cannot SSH to the care-record server": 10\.60\.1\.10 -> 10\.20\.1\.10 tcp\/22 expect allow/,
  );
  t.match(f?.reason, /no rule allows tcp\/22/);
});

t.test('an invalid document reports every error', async (t) => {
  const s = checkPolicy(
    text
      .replace('via: [gp-armley]', 'via: [gp-armly]')
      .replace('ports: tcp/2575\n    probes', 'ports: tcp/75000\n    probes'),
  );
  t.notOk(s.isOk);
  t.equal(s.errors.length, 2);
  t.match(s.errors[0], { path: 'subnets.gp-armley-lan.via[0]', message: /did you mean "gp-armley"/ });
  t.match(s.errors[1], { path: 'rules[2].ports', message: /port must be a number/ });
});
