// Picks the adapter from a database setting: "postgres://..." / "postgresql://..." or a SQLite path.
import type { Clock } from '../../lib/clock.js';
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import { lockSqliteFile } from './sqlite-lock.js';
import type { Store } from './store.js';

/** A SQLite database in a file (not PostgreSQL, not an in-memory or URI database). */
export function isSqliteFile(database: string): boolean {
  return !isPostgresUrl(database) && database !== ':memory:' && !database.startsWith('file:');
}

export function isPostgresUrl(database: string): boolean {
  return /^postgres(ql)?:\/\//.test(database);
}

export function openStore(opts: {
  database: string;
  clock: Clock;
  /** PostgreSQL: this replica's id in the change notices it sends the others. */
  changeOrigin?: string;
  /** SQLite file: refuse (`conflict`) when another process has it open this way; released on close. */
  isExclusive?: boolean;
}): Store {
  if (isPostgresUrl(opts.database))
    return openPostgresStore({
      url: opts.database,
      clock: opts.clock,
      ...(opts.changeOrigin ? { changeOrigin: opts.changeOrigin } : {}),
    });
  const lock = opts.isExclusive && isSqliteFile(opts.database) ? lockSqliteFile(opts.database) : null;
  try {
    return openSqliteStore({
      path: opts.database,
      clock: opts.clock,
      ...(lock ? { onClose: () => Promise.resolve(lock.release()) } : {}),
    });
  } catch (e) {
    lock?.release();
    throw e;
  }
}
