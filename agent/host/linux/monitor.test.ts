// NetlinkMonitor: which `ip monitor` lines invalidate the cached reads, and which are the echo of
// our own route batch. Scripted runner and clock; the real monitor is covered in linux.test.ts.
import t from 'tap';
import { MonitoredCache, NetlinkMonitor, routeEventKey } from './monitor.js';
import type { CommandRunner, RunResult, WatchHandle } from './run.js';

t.test('routeEventKey: our routes in the main table only', async (t) => {
  t.equal(routeEventKey('10.128.0.0/24 dev xl0 proto 147 scope link '), '+10.128.0.0/24 xl0');
  t.equal(routeEventKey('Deleted 10.128.0.0/24 dev xl0 proto 147 scope link '), '-10.128.0.0/24 xl0');
  t.equal(routeEventKey('fd01::/64 dev xl0 proto 147 metric 1024 pref medium'), '+fd01::/64 xl0');
  t.equal(
    routeEventKey('10.1.2.3 dev xl0 proto 147 scope link '),
    '+10.1.2.3/32 xl0',
    'a host route is printed without its length',
  );
  t.equal(routeEventKey('10.128.0.0/24 dev xl0 proto 1470 scope link '), null, 'another protocol');
  t.equal(routeEventKey('10.128.0.0/24 dev xl0 proto static scope link '), null);
  t.equal(routeEventKey('local 10.0.0.1 dev xl0 table local proto 147 scope host'), null, 'another table');
  t.equal(routeEventKey('default dev xl0 proto 147 scope link '), null, 'family unknown: treated as foreign');
  t.equal(routeEventKey('3: xl0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420'), null);
});

class ScriptedWatch implements CommandRunner {
  onLine: (line: string) => void = () => undefined;
  onExit: (code: number) => void = () => undefined;
  /** Monitors started, and how many of them were stopped. */
  starts = 0;
  stops = 0;
  async run(): Promise<RunResult> {
    return { exitCode: 0, stdout: '', stderr: '' };
  }
  watch(
    _argv: readonly string[],
    _opts: { netns?: string },
    onLine: (line: string) => void,
    onExit: (code: number) => void,
  ): WatchHandle {
    this.onLine = onLine;
    this.onExit = onExit;
    this.starts++;
    return { pid: this.starts, stop: () => void this.stops++ };
  }
}

/** A monitor over a scripted watch, with a cache whose reads are counted; `now` is its clock. */
function fixture() {
  const f = {
    now: 0,
    reads: 0,
    runner: new ScriptedWatch(),
    read: async () => {
      f.reads++;
      return ['a'];
    },
  };
  const monitor = new NetlinkMonitor({
    runner: f.runner,
    clock: { nowMs: () => f.now },
    settleMs: 10,
    expectTtlMs: 1000,
  });
  return Object.assign(f, { monitor, cache: new MonitoredCache<string[]>(monitor) });
}

t.test(
  'announced route events keep the cache; anything else, or an announcement that never shows, invalidates',
  async (t) => {
    const f = fixture();
    const { runner, monitor, cache, read } = f;
    await cache.get(read); // starts the monitor
    f.now = 20;
    await cache.get(read);
    await cache.get(read);
    t.equal(f.reads, 2, 'cached once the monitor has settled');

    monitor.expect(['+10.1.0.0/24 xl0', '-10.2.0.0/24 xl0']);
    cache.patch((v) => [...v, 'b']);
    runner.onLine('10.1.0.0/24 dev xl0 proto 147 scope link ');
    runner.onLine('Deleted 10.2.0.0/24 dev xl0 proto 147 scope link ');
    t.same(await cache.get(read), ['a', 'b'], 'patched value served');
    t.equal(f.reads, 2, 'the echo of our own batch is no change');

    runner.onLine('10.1.0.0/24 dev xl0 proto 147 scope link ');
    t.same(await cache.get(read), ['a']);
    t.equal(f.reads, 3, 'the same event once more was not announced: read again');

    monitor.expect(['+10.9.0.0/24 xl0']);
    f.now = 500;
    await cache.get(read);
    t.equal(f.reads, 3, 'still waiting for the echo');
    f.now = 2000;
    await cache.get(read);
    t.equal(f.reads, 4, 'the echo never came within the TTL: read again');

    monitor.expect(['+10.9.0.0/24 xl0']);
    monitor.cancelExpected();
    runner.onLine('10.9.0.0/24 dev xl0 proto 147 scope link ');
    await cache.get(read);
    t.equal(f.reads, 5, 'after a failed batch its events count as changes');
  },
);

t.test('onChange: subscribing starts the monitor; subscribers get every change that is not our own', async (t) => {
  const f = fixture();
  const { runner, monitor, cache, read } = f;
  const seen: string[] = [];
  const unsubscribe = monitor.onChange((line) => seen.push(line));
  t.equal(runner.starts, 1, 'started by the subscription, before any read');
  f.now = 20;
  await cache.get(read);
  await cache.get(read);
  t.equal(runner.starts, 1, 'a read does not start a second monitor');
  t.equal(f.reads, 1, 'settled since the subscription: the very first read is kept');

  monitor.expect(['+10.1.0.0/24 xl0', '-10.2.0.0/24 xl0']);
  cache.patch((v) => [...v, 'b']);
  runner.onLine('10.1.0.0/24 dev xl0 proto 147 scope link ');
  runner.onLine('Deleted 10.2.0.0/24 dev xl0 proto 147 scope link ');
  t.same(seen, [], 'our own announced route events are not passed on');
  t.same(await cache.get(read), ['a', 'b']);
  t.equal(f.reads, 1, 'and the cache is kept, as without a subscriber');

  runner.onLine('10.7.0.0/24 dev xl0 proto 147 scope link ');
  runner.onLine('# stderr: netlink receive error No buffer space available (105)');
  t.same(
    seen,
    ['10.7.0.0/24 dev xl0 proto 147 scope link ', '# stderr: netlink receive error No buffer space available (105)'],
    'foreign events and stderr are passed on',
  );
  await cache.get(read);
  t.equal(f.reads, 2, 'and still invalidate');

  // The monitor dies: the subscriber hears of it once, and is still subscribed after the restart.
  runner.onExit(1);
  runner.onExit(1);
  t.same(seen.slice(2), ['# ended: exit 1'], 'the end, once');
  t.equal(runner.starts, 1, 'not restarted by the end itself');
  await cache.get(read);
  t.equal(runner.starts, 2, 'restarted by the next read (the resync)');
  runner.onLine('5: eth1: <BROADCAST,MULTICAST> mtu 1500');
  t.same(
    seen.slice(3),
    ['5: eth1: <BROADCAST,MULTICAST> mtu 1500'],
    'events of the restarted monitor reach the subscriber',
  );

  unsubscribe();
  runner.onLine('6: eth2: <BROADCAST,MULTICAST> mtu 1500');
  t.equal(seen.length, 4, 'nothing after unsubscribing');

  const late: string[] = [];
  monitor.onChange((line) => late.push(line));
  t.equal(runner.starts, 2, 'a second subscriber shares the running monitor');
  monitor.close();
  t.equal(runner.stops, 1, 'close stops it');
  runner.onExit(-1);
  t.same(late, [], 'our own close is not reported as an end');
  monitor.onChange(() => undefined);
  t.equal(runner.starts, 2, 'a closed monitor is not started by a subscription');
});
