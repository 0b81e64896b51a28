import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { silentLogger } from '../../lib/logger.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { StreamStore } from '../store/stream-store.js';
import { StreamPublisher } from './stream-publisher.js';

t.test('publishes what changed, retries a failed publish whole, withdraws on stop', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-streams-'));
  let nowMs = 1000;
  const store = openSqliteStore({ path: join(dir, 'c.db'), clock: { nowMs: () => nowMs } });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await store.migrate();
  const real = store.streams;
  let calls: Array<Parameters<StreamStore['publish']>[1]> = [];
  let isDown = false;
  // The real store, watched, and refusing while "down".
  const watched: StreamStore = {
    publish: async (replica, changes, atMs) => {
      calls.push(structuredClone(changes));
      if (isDown) throw new Error('connection refused');
      await real.publish(replica, changes, atMs);
    },
    live: (s) => real.live(s),
    forget: (w) => real.forget(w),
  };
  const connected = new Map([
    ['gp', 10],
    ['hub', 20],
  ]);
  const p = new StreamPublisher({
    store: watched,
    replica: 'r1',
    connected: () => connected,
    clock: { nowMs: () => nowMs },
    log: silentLogger(),
  });

  await p.tick();
  t.same(calls, [
    {
      up: [
        { agent: 'gp', sinceMs: 10 },
        { agent: 'hub', sinceMs: 20 },
      ],
      down: [],
    },
  ]);
  t.same([...(await real.live(0)).streams].sort(), [
    ['gp', 10],
    ['hub', 20],
  ]);

  calls = [];
  nowMs = 2000;
  await p.tick();
  t.same(calls, [{ up: [], down: [] }], 'nothing changed: the heartbeat alone');
  t.same((await real.live(1500)).replicas, ['r1'], 'seen at 2000');

  calls = [];
  connected.delete('gp');
  connected.set('hub', 25); // reconnected: a new start
  isDown = true;
  await p.tick();
  isDown = false;
  await p.tick();
  t.same(
    calls,
    [
      { up: [{ agent: 'hub', sinceMs: 25 }], down: ['gp'] },
      { up: [{ agent: 'hub', sinceMs: 25 }], down: ['gp'] },
    ],
    'the failed publish is sent again whole',
  );
  t.same([...(await real.live(0)).streams], [['hub', 25]]);

  await p.stop();
  t.same(await real.live(0), { replicas: [], streams: new Map() }, 'a clean stop withdraws its rows');
});
