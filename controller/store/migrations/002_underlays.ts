// Append-only: never edit a migration that has shipped; add the next number instead.
// Issue 12: an agent announces one endpoint per named underlay, and may consent to relay.
// `endpoints` is a JSON array of {underlay, endpoint}; '[]' for agents enrolled before (their
// single `endpoint` means the underlay "default"). `is_relay` is 0/1.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('agents')
    .addColumn('endpoints', 'text', (c) => c.notNull().defaultTo('[]'))
    .execute();
  await db.schema
    .alterTable('agents')
    .addColumn('is_relay', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('agents').dropColumn('is_relay').execute();
  await db.schema.alterTable('agents').dropColumn('endpoints').execute();
}
