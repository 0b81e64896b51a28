// Append-only: never edit a migration that has shipped; add the next number instead.
// Issue 16: which replica holds each agent's config stream. Every replica writes its own rows and
// its heartbeat (`replicas.seen_at_ms`) about once a second; the leader reads the rows of replicas
// it has heard from lately, so a box whose stream to another replica ends is known at once rather
// than when its reports stop (controller/store/stream-store.ts).
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('agent_streams')
    .addColumn('agent', 'text', (c) => c.notNull())
    .addColumn('replica', 'text', (c) => c.notNull())
    .addColumn('since_ms', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('agent_streams_pk', ['agent', 'replica'])
    .execute();
  await db.schema
    .createTable('replicas')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('seen_at_ms', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('replicas').execute();
  await db.schema.dropTable('agent_streams').execute();
}
