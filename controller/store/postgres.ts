// PostgreSQL behind the same query layer. bigint columns arrive as strings from pg; rows are
// converted with Number() in rows.ts (millisecond times and counters stay below 2^53).
import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import type { Clock } from '../../lib/clock.js';
import { KyselyStore } from './kysely-store.js';
import type { Database } from './schema.js';

export function openPostgresStore(opts: {
  url: string;
  clock: Clock;
  maxConnections?: number;
  /** This replica's id in the change notices it sends to the others (none when absent). */
  changeOrigin?: string;
}): KyselyStore {
  const pool = new pg.Pool({ connectionString: opts.url, max: opts.maxConnections ?? 10 });
  // An idle client losing its server must not crash the process; the next query reports it.
  pool.on('error', () => {});
  // Nor a checked-out one: pg emits 'error' on a client that is out of the pool (between two queries
  // of a transaction) when its server goes away, and the pool listens only to idle clients. A
  // PostgreSQL restart under load killed a replica this way (test/controller/pg-restart.test.ts);
  // the query in flight or the next one fails, and the API answers 503 `unavailable`.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return new KyselyStore({
    db,
    kind: 'postgres',
    clock: opts.clock,
    ...(opts.changeOrigin ? { changeOrigin: opts.changeOrigin } : {}),
  });
}
