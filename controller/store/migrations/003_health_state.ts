// Append-only: never edit a migration that has shipped; add the next number instead.
// Issue 16: with several controllers on PostgreSQL, the leader's health evaluation is shared.
// `health_state` (one row, id 1) holds its latest snapshot and serving decisions, who made them and
// the leadership term that may write them; `health_events` is the history of state changes, written
// in the same transaction as the state, so a new leader starts from exactly what was recorded.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('health_state')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('term', 'bigint', (c) => c.notNull())
    .addColumn('evaluated_by', 'text', (c) => c.notNull())
    .addColumn('evaluated_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('snapshot_json', 'text', (c) => c.notNull())
    .addColumn('serving_json', 'text', (c) => c.notNull())
    .execute();
  await sql`insert into health_state (id, term, evaluated_by, evaluated_at_ms, snapshot_json, serving_json)
            values (1, 0, '', 0, '', '[]')`.execute(db);
  await db.schema
    .createTable('health_events')
    .addColumn('id', 'bigint', (c) => c.primaryKey())
    .addColumn('at_ms', 'bigint', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('from_state', 'text')
    .addColumn('to_state', 'text')
    .addColumn('reason', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('health_events_at').on('health_events').column('at_ms').execute();
  await db.schema.createIndex('health_events_subject').on('health_events').columns(['subject', 'at_ms']).execute();
}

export function down(): Promise<void> {
  return Promise.reject(new Error('migrations are append-only; restore from a backup to go back'));
}
