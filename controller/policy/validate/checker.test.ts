import t from 'tap';
import { Checker } from './checker.js';

t.test('a message given as a function is computed when read, once', async (t) => {
  const c = new Checker();
  let calls = 0;
  c.err(['subnets', 'a', 'via', 0], () => `unknown agent "x"${String(++calls)}`);
  c.err(['subnets', 'b'], 'plain');
  t.equal(calls, 0, 'not computed while validating');
  t.equal(c.errors[0]?.message, 'unknown agent "x"1');
  t.equal(c.errors[0]?.message, 'unknown agent "x"1');
  t.equal(calls, 1, 'computed once');
  t.same(JSON.parse(JSON.stringify(c.errors)), [
    { path: 'subnets.a.via[0]', message: 'unknown agent "x"1' },
    { path: 'subnets.b', message: 'plain' },
  ]);
});
