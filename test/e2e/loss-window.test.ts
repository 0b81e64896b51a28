import t from 'tap';
import {
  failoverLoss,
  longestLossWindow,
  lossWindows,
  median,
  quantile,
  recoveredAtMs,
  summariseHolders,
} from './loss-window.js';

const req = (pattern: string, everyMs = 20) => [...pattern].map((c, i) => ({ sentMs: i * everyMs, isOk: c === 'o' }));

t.test('loss windows: first failure to first success after it, by send time', async (t) => {
  t.same(lossWindows(req('oooo')), []);
  t.same(lossWindows(req('ooxxxoo')), [{ fromMs: 40, toMs: 100, ms: 60, failed: 3, isOpen: false }]);
  t.same(
    lossWindows(req('oxoxxxxo')).map((w) => w.ms),
    [20, 80],
  );
  t.same(longestLossWindow(req('oxoxxxxo')), { fromMs: 60, toMs: 140, ms: 80, failed: 4, isOpen: false });
  t.same(lossWindows(req('ooxx')), [{ fromMs: 40, toMs: 60, ms: 20, failed: 2, isOpen: true }], 'still losing');
  const shuffled = req('ooxxxoo').reverse();
  t.same(lossWindows(shuffled), lossWindows(req('ooxxxoo')), 'order of arrival does not matter');
  t.equal(longestLossWindow(req('ooo')), null);
});

t.test('recovery: the first answer after a loss that stays answered for the settle time', async (t) => {
  t.equal(recoveredAtMs(req('oooooo'), 40), null, 'nothing lost');
  t.equal(recoveredAtMs(req('ooxxooo'), 40), 80, 'back at the first answer, answered for 40 ms');
  t.equal(recoveredAtMs(req('ooxxoxooo'), 40), 120, 'a brief answer inside the failover is not the recovery');
  t.equal(recoveredAtMs(req('ooxxoo'), 40), null, 'not answered for long enough yet');
  t.equal(recoveredAtMs(req('ooxxoooxx'), 40), 80, 'a loss after the recovery is a later loss');
  t.equal(recoveredAtMs(req('ooxxooo').reverse(), 40), 80, 'order of arrival does not matter');
});

t.test("a failover's loss: its longest window until recovery, and the windows after", async (t) => {
  t.same(failoverLoss(req('ooxxoxooooxo'), 40), {
    window: { fromMs: 40, toMs: 80, ms: 40, failed: 2, isOpen: false },
    later: [{ fromMs: 200, toMs: 220, ms: 20, failed: 1, isOpen: false }],
  });
  t.same(
    failoverLoss(req('ooxxxo'), 40),
    {
      window: { fromMs: 40, toMs: 100, ms: 60, failed: 3, isOpen: false },
      later: [],
    },
    "never settled: every window is the failover's",
  );
  t.same(failoverLoss(req('oooo'), 40), { window: null, later: [] });
});

t.test('gateway holders: overlap, settling and takeovers', async (t) => {
  const ev = (atMs: number, box: string, isHolder: boolean) => ({ atMs, box, isHolder });
  // a holds; at 100 b takes it too; at 400 a gives up: 300 ms of two holders, one from 400 on.
  const s1 = summariseHolders([], [ev(0, 'a', true), ev(100, 'b', true), ev(400, 'a', false)], 50, 1000);
  t.same(s1.holdersAtEnd, ['b']);
  t.equal(s1.longestOverlapMs, 300);
  t.equal(s1.overlapTotalMs, 300);
  t.equal(s1.settledAtMs, 400);
  t.same(s1.takeovers, [{ atMs: 100, box: 'b' }]);
  // a gives up first, b takes over 200 ms later: no overlap, 200 ms with no holder.
  const s2 = summariseHolders(['a'], [ev(100, 'a', false), ev(300, 'b', true)], 0, 500);
  t.equal(s2.longestOverlapMs, 0);
  t.equal(s2.noHolderTotalMs, 200);
  t.equal(s2.settledAtMs, 300);
  // still two holders at the end: the overlap counts up to the end, never settled.
  const s3 = summariseHolders(['a'], [ev(100, 'b', true)], 0, 900);
  t.equal(s3.longestOverlapMs, 800);
  t.equal(s3.settledAtMs, null);
  t.same(s3.holdersAtEnd, ['a', 'b']);
});

t.test('median and nearest-rank quantiles', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95), 10);
  t.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5), 5);
  t.ok(Number.isNaN(median([])));
});
