// Append-only: never edit a migration that has shipped; add the next number instead.
// Issue 16: the replica that accepts a policy stores the validated form beside the document
// (controller/policy/stored.ts), so the other replicas need not parse and validate it again.
// '' for versions stored before (and by a release that does not write it): those are parsed.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('policy_versions')
    .addColumn('validated', 'text', (c) => c.notNull().defaultTo(''))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('policy_versions').dropColumn('validated').execute();
}
