import { pino } from 'pino';
import t from 'tap';
import { MIN_PROBES_FOR_LOSS, NOT_PROBED, PeerProber } from './peer-prober.js';
import type { ProbeCommandRunner } from './ports.js';
import { fakeRunner, PING_OK } from './probes.fixture.js';

t.test('peer prober: reachability, last RTT and loss over the last 10', async (t) => {
  const replies = [
    ...Array.from({ length: 8 }, () => ({ exitCode: 0, stdout: PING_OK })),
    { exitCode: 1 },
    { exitCode: 1 },
    { exitCode: 0, stdout: PING_OK.replace('0.734', '2.5') },
    { exitCode: 1 },
  ];
  const { runner } = fakeRunner({ '100.64.0.9': replies, '100.64.0.10': [{ exitCode: 0, stdout: PING_OK }] });
  const p = new PeerProber({ runner });
  t.same(p.fields('b'), NOT_PROBED);
  const peers = [{ name: 'b', overlayIp: '100.64.0.9' }];
  for (let i = 0; i < 11; i++) await p.probeAll(peers);
  t.same(p.fields('b'), { isProbed: true, isReachable: true, rttMs: 2.5, lossRatio: 0.2 });
  await p.probeAll(peers);
  t.same(
    p.fields('b'),
    { isProbed: true, isReachable: false, rttMs: 2.5, lossRatio: 0.3 },
    'the window slides: 3 of the last 10 lost',
  );
  await p.probeAll([{ name: 'c', overlayIp: '100.64.0.10' }]);
  t.same(p.fields('b'), NOT_PROBED, 'a peer no longer configured is forgotten');
  t.equal(p.fields('c').isReachable, true);
});

t.test("peer prober: a new peer's first lost echoes are no verdict yet", async (t) => {
  // The other box may still be applying its side of the new peer: its first echoes are lost.
  const { runner } = fakeRunner({
    '100.64.0.9': [{ exitCode: 1 }, { exitCode: 1 }, { exitCode: 1 }, { exitCode: 0, stdout: PING_OK }],
    '100.64.0.10': [{ exitCode: 1 }, { exitCode: 0, stdout: PING_OK }],
  });
  const p = new PeerProber({ runner });
  const peers = [
    { name: 'b', overlayIp: '100.64.0.9' },
    { name: 'c', overlayIp: '100.64.0.10' },
  ];
  await p.probeAll(peers);
  t.same(p.fields('b'), NOT_PROBED, 'one lost echo of a new peer: not probed yet');
  await p.probeAll(peers);
  t.same(p.fields('b'), NOT_PROBED, `${MIN_PROBES_FOR_LOSS - 1} lost: still no verdict`);
  t.same(
    p.fields('c'),
    { isProbed: true, isReachable: true, rttMs: 0.734, lossRatio: 0.5 },
    'an answer makes it a verdict at once',
  );
  await p.probeAll(peers);
  t.same(
    p.fields('b'),
    { isProbed: true, isReachable: false, rttMs: 0, lossRatio: 1 },
    `${MIN_PROBES_FOR_LOSS} lost: unreachable`,
  );
});

// ---- over fping and over the ping fallback ------------------------------------------------------

type Echo = number | 'lost' | 'unreachable';

/** Answers ping and fping alike from a script of echoes per address (one entry per echo; none left:
 *  lost), so a scenario can run over both paths. */
function echoRunner(script: Record<string, Echo[]>, o: { hasFping: boolean }) {
  const calls: Array<{ argv: string[]; timeoutMs: number }> = [];
  const next = (a: string): Echo => script[a]?.shift() ?? 'lost';
  const runner: ProbeCommandRunner = {
    run: async (argv, opts) => {
      calls.push({ argv: [...argv], timeoutMs: opts.timeoutMs });
      if (argv[0] === 'fping' && argv[1] === '-v') {
        if (!o.hasFping) throw new Error('spawn fping ENOENT');
        return { exitCode: 0, stdout: 'fping: Version 5.1\n', stderr: '' };
      }
      if (argv[0] === 'fping') {
        const targets = argv.slice(argv.indexOf('--') + 1);
        const width = Math.max(...targets.map((a) => a.length));
        const echoes = targets.map(next);
        const stderr = targets
          .map((a, i) => `${a.padEnd(width)} : ${typeof echoes[i] === 'number' ? echoes[i].toFixed(3) : '-'}\n`)
          .join('');
        return { exitCode: echoes.every((e) => typeof e === 'number') ? 0 : 1, stdout: '', stderr };
      }
      const target = argv.at(-1) ?? '';
      const e = next(target);
      if (typeof e === 'number') return { exitCode: 0, stdout: PING_OK.replace('0.734', e.toFixed(3)), stderr: '' };
      return {
        exitCode: 1,
        stdout: e === 'unreachable' ? `From 100.64.0.1 icmp_seq=1 Destination Host Unreachable\n` : '',
        stderr: '',
      };
    },
  };
  return { runner, calls };
}

function captureLog() {
  const lines: Array<{ level: number; msg: string; detail?: string }> = [];
  const log = pino(
    { level: 'debug' },
    {
      write: (s: string) => {
        lines.push(JSON.parse(s) as { level: number; msg: string });
      },
    },
  );
  return { log, warnings: () => lines.filter((l) => l.level === 40) };
}

for (const hasFping of [true, false]) {
  const path = hasFping ? 'fping' : 'ping fallback';

  t.test(`peer prober over ${path}: reachability, last RTT and loss over the last 10`, async (t) => {
    const { runner, calls } = echoRunner(
      {
        '100.64.0.9': [0.734, 0.734, 0.734, 0.734, 0.734, 0.734, 0.734, 0.734, 'lost', 'unreachable', 2.5, 'lost'],
        '100.64.0.10': [0.734],
      },
      { hasFping },
    );
    const p = new PeerProber({ runner });
    const peers = [{ name: 'b', overlayIp: '100.64.0.9' }];
    for (let i = 0; i < 11; i++) await p.probeAll(peers);
    t.same(p.fields('b'), { isProbed: true, isReachable: true, rttMs: 2.5, lossRatio: 0.2 });
    await p.probeAll(peers);
    t.same(
      p.fields('b'),
      { isProbed: true, isReachable: false, rttMs: 2.5, lossRatio: 0.3 },
      'the window slides: 3 of the last 10 lost',
    );
    await p.probeAll([{ name: 'c', overlayIp: '100.64.0.10' }]);
    t.same(p.fields('b'), NOT_PROBED, 'a peer no longer configured is forgotten');
    t.same(p.fields('c'), { isProbed: true, isReachable: true, rttMs: 0.734, lossRatio: 0 });
    t.equal(
      calls.filter((c) => c.argv[0] === (hasFping ? 'fping' : 'ping')).length,
      hasFping ? 14 : 13,
      'fping -v once, then one process per round',
    );
    t.equal(calls[0]?.argv.join(' '), 'fping -v', 'checked once, first');
  });

  t.test(`peer prober over ${path}: a new peer's first lost echoes are no verdict yet`, async (t) => {
    const { runner } = echoRunner(
      { '100.64.0.9': ['lost', 'lost', 'lost', 0.734], '100.64.0.10': ['lost', 0.734] },
      { hasFping },
    );
    const p = new PeerProber({ runner });
    const peers = [
      { name: 'b', overlayIp: '100.64.0.9' },
      { name: 'c', overlayIp: '100.64.0.10' },
    ];
    await p.probeAll(peers);
    t.same(p.fields('b'), NOT_PROBED);
    await p.probeAll(peers);
    t.same(p.fields('b'), NOT_PROBED);
    t.same(p.fields('c'), { isProbed: true, isReachable: true, rttMs: 0.734, lossRatio: 0.5 });
    await p.probeAll(peers);
    t.same(p.fields('b'), { isProbed: true, isReachable: false, rttMs: 0, lossRatio: 1 });
  });
}

t.test('peer prober over fping: one process per round for 1,000 peers, side by side above that', async (t) => {
  const { log, warnings } = captureLog();
  const addr = (i: number) => `100.64.${i >> 8}.${i & 255}`;
  const script: Record<string, Echo[]> = {};
  // Even addresses answer (RTT 1.5, then 0.5), odd ones never do.
  for (let i = 0; i < 2500; i += 2) script[addr(i)] = [1.5, 1.5, 0.5, 0.5];
  const { runner, calls } = echoRunner(script, { hasFping: true });
  const p = new PeerProber({ runner, log });

  const thousand = Array.from({ length: 1000 }, (_, i) => ({ name: `p${i}`, overlayIp: addr(i) }));
  await p.probeAll(thousand);
  t.same(
    calls.map((c) => c.argv.slice(0, 11).join(' ')),
    ['fping -v', 'fping -C 1 -q -t 1000 -i 1 -r 0 --'],
  );
  t.equal(calls[1]!.argv.length - 11, 1000, 'all 1,000 peers in one process');
  t.equal(calls[1]?.timeoutMs, 1000 * 1 + 1000 + 5000, 'killed only well after it should have ended');

  const many = Array.from({ length: 2500 }, (_, i) => ({ name: `p${i}`, overlayIp: addr(i) }));
  many.push(
    { name: 'same-address', overlayIp: addr(0) },
    { name: 'garbage', overlayIp: '-x' },
    { name: 'unassigned', overlayIp: '' },
  );
  calls.length = 0;
  await p.probeAll(many);
  await p.probeAll(many);
  t.same(
    calls.map((c) => c.argv.length - 11),
    [1000, 1000, 500, 1000, 1000, 500],
    'three processes a round; fping -v not asked again',
  );
  const targets = calls.slice(0, 3).flatMap((c) => c.argv.slice(11));
  t.equal(new Set(targets).size, 2500, 'every address once: shared addresses are echoed once, "-x" never reaches argv');
  t.notOk(targets.includes('-x'));
  t.same(p.fields('p0'), { isProbed: true, isReachable: true, rttMs: 0.5, lossRatio: 0 }, 'three rounds, the last RTT');
  t.same(
    p.fields('p1'),
    { isProbed: true, isReachable: false, rttMs: 0, lossRatio: 1 },
    'three rounds lost: unreachable',
  );
  t.same(
    p.fields('p2498'),
    { isProbed: true, isReachable: true, rttMs: 1.5, lossRatio: 0 },
    'the last chunk counts too',
  );
  t.same(p.fields('p2499'), NOT_PROBED, 'two rounds lost: no verdict yet');
  t.same(p.fields('same-address'), p.fields('p0'), "the echo to p0's address counts for it too");
  t.same(p.fields('unassigned'), NOT_PROBED);
  t.same(p.fields('garbage'), NOT_PROBED);
  await p.probeAll(many);
  t.same(
    p.fields('garbage'),
    { isProbed: true, isReachable: false, rttMs: 0, lossRatio: 1 },
    'not an address: lost, as ping failing on it was',
  );
  t.same(p.fields('p2498'), { isProbed: true, isReachable: true, rttMs: 0.5, lossRatio: 0 });
  t.same(warnings(), []);
});

t.test('peer prober: without fping, one warning and the ping path', async (t) => {
  const { log, warnings } = captureLog();
  const { runner, calls } = echoRunner({ '100.64.0.9': [1, 1], '100.64.0.10': [2, 2] }, { hasFping: false });
  const p = new PeerProber({ runner, log });
  const peers = [
    { name: 'b', overlayIp: '100.64.0.9' },
    { name: 'c', overlayIp: '100.64.0.10' },
  ];
  await p.probeAll(peers);
  await p.probeAll(peers);
  t.same(
    calls.map((c) => c.argv.join(' ')),
    [
      'fping -v',
      'ping -n -c 1 -W 1 100.64.0.9',
      'ping -n -c 1 -W 1 100.64.0.10',
      'ping -n -c 1 -W 1 100.64.0.9',
      'ping -n -c 1 -W 1 100.64.0.10',
    ],
  );
  t.same(
    warnings().map((w) => w.msg),
    ['fping is not installed: peer probes run one ping per peer (install the fping package)'],
  );
  t.same(p.fields('c'), { isProbed: true, isReachable: true, rttMs: 2, lossRatio: 0 });
});

t.test('peer prober over fping: fping failing as a whole loses every peer, and says so once', async (t) => {
  const { log, warnings } = captureLog();
  let isBroken = true;
  const runner: ProbeCommandRunner = {
    run: async (argv) => {
      if (argv[1] === '-v') return { exitCode: 0, stdout: 'fping: Version 5.1\n', stderr: '' };
      return isBroken
        ? { exitCode: 4, stdout: '', stderr: "fping: can't create socket (must run as root?)\n" }
        : { exitCode: 0, stdout: '', stderr: '100.64.0.9 : 0.5\n' };
    },
  };
  const p = new PeerProber({ runner, log });
  const peers = [{ name: 'b', overlayIp: '100.64.0.9' }];
  for (let i = 0; i < 3; i++) await p.probeAll(peers);
  t.same(p.fields('b'), { isProbed: true, isReachable: false, rttMs: 0, lossRatio: 1 });
  t.same(
    warnings().map((w) => [w.msg, w.detail]),
    [['fping gave no peer probe results', "fping: exit 4: fping: can't create socket (must run as root?)"]],
  );
  isBroken = false;
  await p.probeAll(peers);
  t.equal(p.fields('b').isReachable, true);
  isBroken = true;
  await p.probeAll(peers);
  t.equal(warnings().length, 2, 'broken again after working: said again');
});
