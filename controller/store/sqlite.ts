// Embedded SQLite: the default store, nothing to install. WAL with synchronous=FULL so a commit
// that resolved survives kill -9 and power loss; a busy timeout so a second reader never fails fast.
import { chmodSync, closeSync, openSync } from 'node:fs';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { Clock } from '../../lib/clock.js';
import { KyselyStore } from './kysely-store.js';
import type { Database } from './schema.js';

export function openSqliteStore(opts: {
  path: string;
  clock: Clock;
  busyTimeoutMs?: number;
  /** Runs after the database is closed (e.g. releasing the one-controller lock). */
  onClose?: () => Promise<void>;
}): KyselyStore {
  // The database holds token hashes and the audit log: owner-only, whatever the umask (the unit sets
  // one; a controller started by hand did not, and the file came out 0644). SQLite gives its -wal and
  // -shm files the database file's mode.
  if (opts.path !== ':memory:' && !opts.path.startsWith('file:')) {
    closeSync(openSync(opts.path, 'a', 0o600));
    chmodSync(opts.path, 0o600);
  }
  const sqlite = new BetterSqlite3(opts.path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma(`busy_timeout = ${Math.trunc(opts.busyTimeoutMs ?? 5000)}`);
  sqlite.pragma('foreign_keys = ON');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  return new KyselyStore({ db, kind: 'sqlite', clock: opts.clock, ...(opts.onClose ? { onClose: opts.onClose } : {}) });
}
