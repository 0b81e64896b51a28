// Picks the adapter from a database setting: "postgres://..." / "postgresql://..." or a SQLite path.
import type { Clock } from '../../lib/clock.js';
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import type { Store } from './store.js';

export function openStore(opts: { database: string; clock: Clock }): Store {
  if (/^postgres(ql)?:\/\//.test(opts.database)) return openPostgresStore({ url: opts.database, clock: opts.clock });
  return openSqliteStore({ path: opts.database, clock: opts.clock });
}
