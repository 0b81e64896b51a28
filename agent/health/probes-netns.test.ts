// Peer probes with the real fping (and the real ping fallback) between two network namespaces joined
// by a veth: the prober's box answers nothing itself; its "peer" answers on 10.77.0.2 and fd77::2,
// and nobody has 10.77.0.3. Both paths must report exactly that, in the same PeerStatus fields.
import t from 'tap';
import { ProcessRunner } from '../host/linux/run.js';
import { isRoot, must, NetnsFixture, sh } from '../host/linux/netns.fixture.js';
import { FpingEchoes, PingEachEchoes } from './echoes.js';
import { detectFping } from './fping.js';
import { PeerProber } from './peer-prober.js';
import type { ProbeCommandRunner } from './ports.js';

const REACHABLE = ['10.77.0.2', 'fd77::2'];
const SILENT = '10.77.0.3';

if (!isRoot()) {
  t.plan(0, 'needs root (network namespaces)');
} else if (sh(['fping', '-v']).code !== 0) {
  t.plan(0, 'needs fping (apt-get install fping)');
} else {
  const fx = new NetnsFixture();
  t.teardown(() => fx.cleanup());
  const box = fx.addNetns('p');
  const peer = fx.addNetns('r');
  must(['ip', 'link', 'add', 'v0', 'netns', box, 'type', 'veth', 'peer', 'name', 'v0', 'netns', peer]);
  for (const [ns, v4, v6] of [
    [box, '10.77.0.1/24', 'fd77::1/64'],
    [peer, '10.77.0.2/24', 'fd77::2/64'],
  ] as const) {
    must(['ip', '-n', ns, 'addr', 'add', v4, 'dev', 'v0']);
    must(['ip', '-n', ns, 'addr', 'add', v6, 'dev', 'v0', 'nodad']);
    must(['ip', '-n', ns, 'link', 'set', 'v0', 'up']);
  }
  // A veth just brought up loses the first IPv6 packets (the link-local address is still tentative):
  // scaffolding, so wait until both addresses answer before the prober is judged.
  for (const a of REACHABLE) {
    for (let i = 0; sh(['ip', 'netns', 'exec', box, 'ping', '-n', '-c', '1', '-W', '1', a]).code !== 0; i++) {
      if (i >= 10) throw new Error(`${a} does not answer: broken setup`);
    }
  }

  /** The real runner, inside the prober's namespace, recording argv. */
  const recording = () => {
    const calls: string[][] = [];
    const real = new ProcessRunner();
    const runner: ProbeCommandRunner = {
      run: (argv, o) => {
        calls.push([...argv]);
        return real.run(argv, { ...o, netns: box });
      },
    };
    return { runner, calls };
  };
  const peers = [...REACHABLE, SILENT].map((overlayIp, i) => ({ name: `peer${i}`, overlayIp }));

  t.test('fping: one process echoes every peer; the answering ones are connected, the silent one not', async (t) => {
    const { runner, calls } = recording();
    t.match(await detectFping(runner), /^\d+\.\d+/);
    const started = Date.now();
    const outcomes = await new FpingEchoes({ runner }).echoAll(
      peers.map((p) => p.overlayIp),
      1,
    );
    const ms = Date.now() - started;
    t.same(
      [...outcomes.entries()].map(([a, o]) => [a, o.kind]),
      [
        ['10.77.0.2', 'connected'],
        ['fd77::2', 'connected'],
        ['10.77.0.3', 'timeout'],
      ],
    );
    for (const a of REACHABLE) {
      const o = outcomes.get(a);
      t.ok(o?.kind === 'connected' && o.rttMs > 0 && o.rttMs < 1000, `${a}: a real RTT`);
    }
    t.ok(ms < 3000, `one round in ~the timeout (${ms} ms)`);
    t.equal(calls.filter((c) => c[0] === 'fping' && c[1] !== '-v').length, 1);
  });

  for (const method of ['fping', 'ping'] as const) {
    t.test(`peer prober over the real ${method}: PeerStatus of the answering and the silent peer`, async (t) => {
      const { runner, calls } = recording();
      const p = new PeerProber({ runner, ...(method === 'ping' ? { echoes: new PingEachEchoes({ runner }) } : {}) });
      for (let i = 0; i < 3; i++) await p.probeAll(peers);
      for (const name of ['peer0', 'peer1']) {
        const f = p.fields(name);
        t.same(
          { ...f, rttMs: f.rttMs > 0 && f.rttMs < 1000 },
          { isProbed: true, isReachable: true, rttMs: true, lossRatio: 0 },
          `${name} reachable`,
        );
      }
      t.same(
        p.fields('peer2'),
        { isProbed: true, isReachable: false, rttMs: 0, lossRatio: 1 },
        `${SILENT} unreachable`,
      );
      const spawned = calls.map((c) => c[0]);
      t.same(
        spawned,
        method === 'fping' ? ['fping', 'fping', 'fping', 'fping'] : Array.from({ length: 9 }, () => 'ping'),
        method === 'fping' ? 'fping -v, then one fping a round' : 'one ping per peer and round',
      );
    });
  }
}
