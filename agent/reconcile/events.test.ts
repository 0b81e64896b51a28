// The event kicker over a scripted change feed; the real `ip monitor` is covered in
// agent/host/linux/host-events.test.ts.
import t from 'tap';
import { silentLogger } from '../../lib/logger.js';
import { isRelevantEvent, relevantEventFilter, watchHostEvents, type HostEventFeed } from './events.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class ScriptedFeed implements HostEventFeed {
  readonly listeners = new Set<(line: string) => void>();
  onChange(listener: (line: string) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }
  push(line: string): void {
    for (const l of this.listeners) l(line);
  }
}

t.test('which monitor lines matter', async (t) => {
  const yes = [
    '7: crosslink0: <POINTOPOINT,NOARP> mtu 1420 qdisc noop state DOWN group default',
    'Deleted 7: crosslink0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420',
    '172.16.5.0/24 dev crosslink0 proto 147 scope link',
    'Deleted 172.16.5.0/24 dev crosslink0 proto 147 scope link',
    '10.0.0.0/8 dev eth9 proto 147',
    '7: crosslink0    inet 10.99.0.1/24 scope global crosslink0',
  ];
  const no = [
    '2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500',
    'default via 192.0.2.1 dev eth0 proto dhcp',
    '10.0.0.0/8 dev crosslink01 proto kernel',
    '10.0.0.0/8 dev eth0 proto 1470',
    '10.0.0.0/8 dev xcrosslink0 proto kernel',
    '# stderr: netlink receive error No buffer space available (105)',
    '# ended: exit 1',
  ];
  const filter = relevantEventFilter('crosslink0');
  for (const l of yes) {
    t.ok(isRelevantEvent(l, 'crosslink0'), l);
    t.ok(filter(l), `compiled once: ${l}`);
  }
  for (const l of no) {
    t.notOk(isRelevantEvent(l, 'crosslink0'), l);
    t.notOk(filter(l), `compiled once: ${l}`);
  }
  t.ok(isRelevantEvent('3: xl.0@NONE: <POINTOPOINT>', 'xl.0'), 'a name with a RegExp character');
  t.notOk(isRelevantEvent('3: xlx0: <POINTOPOINT>', 'xl.0'), 'escaped');
  t.ok(isRelevantEvent('3: xl0: <POINTOPOINT>', 'xl0'), 'another name: the cached filter is not reused');
  t.notOk(isRelevantEvent('3: crosslink0: <POINTOPOINT>', 'xl0'));
});

t.test('a burst of relevant lines is one kick, debounceMs after the last; noise never kicks', async (t) => {
  const feed = new ScriptedFeed();
  let kicks = 0;
  const w = watchHostEvents({ feed, interfaceName: 'xl0', kick: () => kicks++, log: silentLogger(), debounceMs: 100 });
  t.equal(feed.listeners.size, 1, 'subscribed');
  feed.push('2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500');
  await sleep(200);
  t.equal(kicks, 0, 'noise');

  // Relevant lines every 40 ms for 240 ms: each one puts the kick off.
  const t0 = performance.now();
  let lastAt = t0;
  for (let i = 0; i < 6; i++) {
    feed.push('172.16.5.0/24 dev xl0 proto 147');
    lastAt = performance.now(); // when the last line really came (a loaded sleep(40) runs long)
    await sleep(40);
  }
  t.equal(kicks, 0, 'not while the burst lasts');
  while (kicks === 0 && performance.now() - t0 < 2000) await sleep(5);
  const kickedAt = performance.now();
  t.equal(kicks, 1, 'one kick');
  t.ok(kickedAt - lastAt >= 95, `kicked ${(kickedAt - lastAt).toFixed(0)} ms after the last line`);
  await sleep(250);
  t.equal(kicks, 1, 'and only one');
  w.stop();
});

t.test('one timer per burst, not one per line', async (t) => {
  const feed = new ScriptedFeed();
  let kicks = 0;
  const w = watchHostEvents({ feed, interfaceName: 'xl0', kick: () => kicks++, log: silentLogger(), debounceMs: 30 });
  const realSetTimeout = globalThis.setTimeout;
  const realClearTimeout = globalThis.clearTimeout;
  let timers = 0;
  globalThis.setTimeout = ((...a: Parameters<typeof setTimeout>) => {
    timers++;
    return realSetTimeout(...a);
  }) as typeof setTimeout;
  globalThis.clearTimeout = (...a: Parameters<typeof clearTimeout>) => {
    timers++;
    return realClearTimeout(...a);
  };
  try {
    for (let i = 0; i < 5000; i++) feed.push(`10.${i >> 8}.${i & 255}.0/24 dev xl0 proto 147 scope link `);
  } finally {
    globalThis.setTimeout = realSetTimeout;
    globalThis.clearTimeout = realClearTimeout;
  }
  t.equal(timers, 1, '5,000 lines, one setTimeout');
  await sleep(150);
  t.equal(kicks, 1);
  w.stop();
});

t.test('the monitor ending is logged, not a kick; stop unsubscribes and drops a pending kick', async (t) => {
  const feed = new ScriptedFeed();
  let kicks = 0;
  const warnings: string[] = [];
  const log = silentLogger();
  log.warn = (_o: unknown, msg?: string) => void warnings.push(msg ?? '');
  const w = watchHostEvents({ feed, interfaceName: 'xl0', kick: () => kicks++, log, debounceMs: 30 });
  feed.push('# ended: exit 1');
  await sleep(80);
  t.equal(kicks, 0);
  t.equal(warnings.length, 1, warnings.join('; '));
  feed.push('3: xl0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420');
  w.stop();
  t.equal(feed.listeners.size, 0, 'unsubscribed');
  await sleep(80);
  t.equal(kicks, 0, 'the pending kick was dropped');
});

t.test(
  "lost events (the monitor's stderr, e.g. ENOBUFS) kick once: one of them may have been ours to put right",
  async (t) => {
    const feed = new ScriptedFeed();
    let kicks = 0;
    const w = watchHostEvents({ feed, interfaceName: 'xl0', kick: () => kicks++, log: silentLogger(), debounceMs: 50 });
    t.teardown(() => w.stop());
    feed.push('# stderr: netlink receive error No buffer space available (105)');
    feed.push('# stderr: netlink receive error No buffer space available (105)');
    await sleep(150);
    t.equal(kicks, 1);
    feed.push('# ended: exit 1');
    await sleep(150);
    t.equal(kicks, 1, 'its end alone does not kick (the next read restarts it)');
  },
);
