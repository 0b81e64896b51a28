// Picks the adapter from a database setting: "postgres://..." / "postgresql://..." or a SQLite path.
import type { Clock } from '../../lib/clock.js';
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import type { Store } from './store.js';

/** A SQLite database in a file (not PostgreSQL, not an in-memory or URI database). */
export function isSqliteFile(database: string): boolean {
  return !isPostgresUrl(database) && database !== ':memory:' && !database.startsWith('file:');
}

export function isPostgresUrl(database: string): boolean {
  return /^postgres(ql)?:\/\//.test(database);
}

export function openStore(opts: { database: string; clock: Clock }): Store {
  if (isPostgresUrl(opts.database)) return openPostgresStore({ url: opts.database, clock: opts.clock });
  return openSqliteStore({ path: opts.database, clock: opts.clock });
}
