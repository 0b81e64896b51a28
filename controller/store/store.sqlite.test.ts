import t from 'tap';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeContract } from './store.contract.js';
import { openSqliteStore } from './sqlite.js';
import { systemClock } from '../../lib/clock.js';

storeContract(t, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-store-'));
  return {
    store: openSqliteStore({ path: join(dir, 'c.db'), clock: systemClock }),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
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

t.test('the database and its WAL files are owner-only (0600), whatever the umask', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const old = process.umask(0o022);
  t.teardown(() => {
    process.umask(old);
  });
  // An existing 0644 file (an older controller started by hand) is tightened too.
  writeFileSync(join(dir, 'old.db'), '', { mode: 0o644 });
  for (const name of ['c.db', 'old.db']) {
    const store = openSqliteStore({ path: join(dir, name), clock: systemClock });
    await store.migrate();
    for (const f of [name, `${name}-wal`, `${name}-shm`]) {
      if (existsSync(join(dir, f))) t.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} is 0600`);
    }
    t.ok(existsSync(join(dir, `${name}-wal`)), `${name}-wal exists (WAL mode), so its mode was checked`);
    await store.close();
  }
});
