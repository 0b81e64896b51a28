// Append-only: never edit a migration that has shipped; add the next number instead.
// Only types both SQLite and PostgreSQL understand the same way (text, integer, bigint).
import { sql, type Kysely } from 'kysely';
import { GENESIS_HASH } from '../audit-chain.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('policy_versions')
    .addColumn('version', 'integer', (c) => c.primaryKey())
    .addColumn('document', 'text', (c) => c.notNull())
    .addColumn('created_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('comment', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('agents')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('endpoint', 'text', (c) => c.notNull())
    .addColumn('overlay_address', 'text', (c) => c.notNull())
    .addColumn('advertised', 'text', (c) => c.notNull())
    .addColumn('credential_hash', 'text', (c) => c.notNull().unique())
    .addColumn('agent_version', 'text', (c) => c.notNull())
    .addColumn('protocol_version', 'integer', (c) => c.notNull())
    .addColumn('enrolled_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('revoked_at_ms', 'bigint')
    .addColumn('desired_generation', 'bigint', (c) => c.notNull())
    .addColumn('desired_hash', 'text', (c) => c.notNull())
    .addColumn('applied_generation', 'bigint', (c) => c.notNull())
    .addColumn('last_report_at_ms', 'bigint')
    .addColumn('last_report', 'text')
    .execute();

  await db.schema
    .createTable('join_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
    .addColumn('is_reusable', 'integer', (c) => c.notNull())
    .addColumn('expires_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('created_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('used_at_ms', 'bigint')
    .addColumn('revoked_at_ms', 'bigint')
    .execute();

  await db.schema
    .createTable('api_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('revoked_at_ms', 'bigint')
    .addColumn('last_used_at_ms', 'bigint')
    .execute();
  // A name identifies one live token; revoked ones keep their name for the record.
  await db.schema
    .createIndex('api_tokens_live_name')
    .on('api_tokens')
    .column('name')
    .unique()
    .where(sql.ref('revoked_at_ms'), 'is', null)
    .execute();

  await db.schema
    .createTable('audit_log')
    .addColumn('id', 'bigint', (c) => c.primaryKey())
    .addColumn('at_ms', 'bigint', (c) => c.notNull())
    .addColumn('actor_name', 'text', (c) => c.notNull())
    .addColumn('actor_role', 'text', (c) => c.notNull())
    .addColumn('actor_address', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('before_json', 'text', (c) => c.notNull())
    .addColumn('after_json', 'text', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('audit_head')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('last_id', 'bigint', (c) => c.notNull())
    .addColumn('last_hash', 'text', (c) => c.notNull())
    .execute();
  await sql`insert into audit_head (id, last_id, last_hash) values (1, 0, ${GENESIS_HASH})`.execute(db);
}

export function down(): Promise<void> {
  return Promise.reject(new Error('migrations are append-only; restore from a backup to go back'));
}
