// Host events over the host's own `ip monitor` in a real namespace: someone else's route with our
// protocol kicks the reconciler once, our own route batch does not, the host runs one monitor,
// and a subscriber still gets events after that monitor died and a read restarted it.
import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { silentLogger } from '../../../lib/logger.js';
import { realAgentDeps } from '../../main.js';
import { watchHostEvents } from '../../reconcile/events.js';
import { isRoot, must, NetnsFixture } from './netns.fixture.js';
import { ProcessRunner, type CommandRunner } from './run.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!what() && Date.now() < deadline) await sleep(10);
  return what();
}

/** PIDs of this process's children running `ip ... monitor ...` (ours only: by parent PID). */
function childMonitorPids(): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('ip') && argv.includes('monitor')) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids.sort((a, b) => a - b);
}

if (!isRoot()) {
  t.plan(0, 'needs root (network namespaces)');
} else {
  const fx = new NetnsFixture();
  t.teardown(() => fx.cleanup());

  t.test(
    'one ip monitor: foreign routes of ours kick once, our own batch does not, events survive a restart',
    async (t) => {
      const ns = fx.addNetns('e');
      const ifname = fx.ifname('w');
      const inner = new ProcessRunner();
      // Every long-lived process the host starts, and what the real `ip monitor` printed.
      const watches: Array<{ argv: string[]; pid: number; ended: boolean }> = [];
      let ourProtoLines = 0;
      const runner: CommandRunner = {
        run: (argv, opts) => inner.run(argv, opts),
        startDaemon: (argv, opts) => inner.startDaemon(argv, opts),
        watch: (argv, opts, onLine, onExit) => {
          const w = { argv: [...argv], pid: -1, ended: false };
          watches.push(w);
          const h = inner.watch(
            argv,
            opts,
            (line) => {
              if (/ dev \S+ proto 147\b/.test(line)) ourProtoLines++;
              onLine(line);
            },
            (code) => {
              w.ended = true;
              onExit(code);
            },
          );
          w.pid = h.pid;
          return h;
        },
      };
      const host = await fx.hostWithInterface(t, ns, ifname, runner);

      let kicks = 0;
      t.ok(host.events, 'the host exposes its change feed');
      const w = watchHostEvents({
        feed: host.events!,
        interfaceName: ifname,
        kick: () => kicks++,
        log: silentLogger(),
        debounceMs: 150,
      });
      t.teardown(() => w.stop());
      const monitors = () => watches.filter((x) => x.argv[0] === 'ip' && x.argv.includes('monitor'));
      t.equal(monitors().length, 1, 'subscribing started the monitor');
      await host.routes.observe();
      await host.links.observe(ifname);
      await sleep(500); // the monitor has subscribed
      t.equal(monitors().length, 1, 'reads use the same monitor');
      t.same(childMonitorPids(), [monitors()[0]!.pid], 'one ip monitor process runs, the one the host started');
      t.equal(kicks, 0, 'nothing happened since the subscription');

      // (b) Our own batch of N routes: announced, so its events are consumed, not kicks.
      const N = 1000;
      const ours = Array.from({ length: N }, (_, i) => ({
        prefix: `10.${100 + (i >> 8)}.${i & 255}.0/24`,
        dev: ifname,
      }));
      await host.routes.apply({ add: ours, del: [] });
      t.ok(
        await until(() => ourProtoLines >= N, 5000),
        `the monitor printed the batch's ${N} route events (${ourProtoLines})`,
      );
      await sleep(400); // well past the debounce
      t.equal(kicks, 0, 'our own route batch kicks nothing');
      t.equal((await host.routes.observe()).length, N);

      // Noise: another interface, and someone else's route on it.
      must(['ip', '-n', ns, 'link', 'set', 'lo', 'mtu', '60000']);
      must(['ip', '-n', ns, 'route', 'add', '10.251.0.0/24', 'dev', 'lo', 'proto', 'static']);
      await sleep(400);
      t.equal(kicks, 0, 'another interface and a route not of ours are no events of ours');

      // (a) Someone else adds routes with our protocol: one kick for the burst, after the debounce.
      const before = ourProtoLines;
      must(['ip', '-n', ns, 'route', 'add', '10.250.1.0/24', 'dev', ifname, 'proto', '147']);
      must(['ip', '-n', ns, 'route', 'add', '10.250.2.0/24', 'dev', 'lo', 'proto', '147']);
      t.ok(await until(() => ourProtoLines >= before + 2, 2000), 'both events printed');
      t.equal(kicks, 0, 'not before the debounce');
      t.ok(await until(() => kicks > 0, 2000), 'kicked');
      await sleep(400);
      t.equal(kicks, 1, 'once for the burst');

      // The monitor dies: the next read (the resync) restarts it, and the subscriber still gets events.
      const first = monitors()[0]!;
      process.kill(first.pid, 'SIGTERM'); // by the PID the host's runner started
      t.ok(await until(() => first.ended, 2000), 'the monitor ended');
      await host.routes.observe();
      t.equal(monitors().length, 2, 'restarted by a read');
      await sleep(500);
      t.same(childMonitorPids(), [monitors()[1]!.pid], 'still one ip monitor process');
      must(['ip', '-n', ns, 'route', 'add', '10.250.3.0/24', 'dev', ifname, 'proto', '147']);
      t.ok(await until(() => kicks > 1, 2000), 'a foreign route after the restart kicks');
      await sleep(300);
      t.equal(kicks, 2);

      host.close();
      t.ok(await until(() => monitors().every((x) => x.ended), 2000), 'close ends the monitor');
      t.same(childMonitorPids(), [], 'no ip monitor left');
    },
  );

  t.test("the real agent deps watch host events through the host's monitor", async (t) => {
    const deps = realAgentDeps(silentLogger());
    t.teardown(() => deps.host.close());
    t.ok(deps.host.events, 'the host has a change feed');
    t.type(deps.watchHostEvents, 'function', 'and the agent subscribes to it');
    t.same(childMonitorPids(), [], 'building the deps starts nothing');
  });
}
