import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeContract } from './contract.js';
import { openSqliteStore } from './sqlite.js';
import { systemClock } from '../../lib/clock.js';

storeContract(t, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-store-'));
  return { store: openSqliteStore({ path: join(dir, 'c.db'), clock: systemClock }), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

t.test('sqlite runs in WAL mode with synchronous=FULL', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = openSqliteStore({ path: join(dir, 'c.db'), clock: systemClock });
  await store.migrate();
  await store.close();
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(join(dir, 'c.db'));
  t.match(db.pragma('journal_mode'), [{ journal_mode: 'wal' }]);
  db.close();
});
