import t from 'tap';
import { Backoff } from './backoff.js';

t.test('delays grow exponentially and stop at the cap', async (t) => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
  t.same([b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000]);
  b.reset();
  t.equal(b.next(), 100, 'reset starts over');
});

t.test('jitter stays within [base*(1-j), base]', async (t) => {
  const lo = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5 }, () => 0);
  const hi = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5 }, () => 0.999999);
  t.equal(lo.next(), 500);
  t.equal(hi.next(), 1000);
});
