// The shared health state of several controllers on one database (migration 003): the leader's
// latest evaluation (snapshot and serving decisions) and the history of state changes, written
// together in one transaction so that whoever leads next starts from exactly what was recorded:
// no transition lost, none written twice.
//
// Fencing: a new leader `claim`s a term (term + 1); every write names its term and changes nothing
// when another leader has claimed since, so a deposed leader that still runs cannot overwrite.
import { sql, type Kysely } from 'kysely';
import type { HealthHistoryQuery } from '../health/history.js';
import { DEFAULT_QUERY_LIMIT } from '../health/history.js';
import type { ServingState } from '../health/serving.js';
import type { HealthEvent, HealthSnapshot, HealthState, HealthSubjectKind } from '../health/types.js';
import { CHANGE_CHANNEL } from './changes.js';
import { num } from './rows.js';
import type { Database } from './schema.js';

/** How many state changes the database keeps (the in-memory history of one controller: 10,000). */
export const HEALTH_EVENTS_KEPT = 100_000;

/** One evaluation as stored: what, by which replica, when. */
export interface StoredHealth {
  snapshot: HealthSnapshot;
  serving: [string, ServingState][];
  evaluatedBy: string;
  evaluatedAtMs: number;
}

export interface HealthStateStore {
  /** Takes the next term for `replica` (a new leader) and returns it with the stored evaluation. */
  claim(): Promise<{ term: number; stored: StoredHealth | null }>;
  /** The latest stored evaluation, or null before the first. */
  load(): Promise<StoredHealth | null>;
  /**
   * Appends `events` and (when given) replaces the stored evaluation, in one transaction, iff
   * `term` is still current; false when another leader has claimed since (nothing written).
   */
  save(term: number, state: StoredHealth | null, events: readonly HealthEvent[]): Promise<boolean>;
  /** History, oldest first; the newest `limit` of the matches. */
  query(q: HealthHistoryQuery): Promise<HealthEvent[]>;
}

export class KyselyHealthStore implements HealthStateStore {
  readonly #db: Kysely<Database>;
  readonly #kind: 'sqlite' | 'postgres';
  /** PostgreSQL: the replica id in the `health` notice sent with each write ('' sends none). */
  readonly #origin: string;

  constructor(db: Kysely<Database>, kind: 'sqlite' | 'postgres', origin: string) {
    this.#db = db;
    this.#kind = kind;
    this.#origin = origin;
  }

  async claim(): Promise<{ term: number; stored: StoredHealth | null }> {
    return this.#db.transaction().execute(async (trx) => {
      await trx
        .updateTable('health_state')
        .set((eb) => ({ term: eb('term', '+', 1) }))
        .where('id', '=', 1)
        .execute();
      const row = await trx.selectFrom('health_state').selectAll().where('id', '=', 1).executeTakeFirstOrThrow();
      return { term: num(row.term), stored: toStored(row) };
    });
  }

  async load(): Promise<StoredHealth | null> {
    const row = await this.#db.selectFrom('health_state').selectAll().where('id', '=', 1).executeTakeFirst();
    return row ? toStored(row) : null;
  }

  async save(term: number, state: StoredHealth | null, events: readonly HealthEvent[]): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      // The update locks the row (PostgreSQL), which also serialises the event ids below.
      const set = state
        ? {
            evaluated_by: state.evaluatedBy,
            evaluated_at_ms: state.evaluatedAtMs,
            snapshot_json: JSON.stringify(state.snapshot),
            serving_json: JSON.stringify(state.serving),
          }
        : { term };
      const r = await trx
        .updateTable('health_state')
        .set(set)
        .where('id', '=', 1)
        .where('term', '=', term)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) return false;
      if (events.length > 0) {
        const top = await trx
          .selectFrom('health_events')
          .select((eb) => eb.fn.max('id').as('id'))
          .executeTakeFirst();
        let id = top?.id === null || top?.id === undefined ? 0 : num(top.id);
        const rows = events.map((e) => ({
          id: ++id,
          at_ms: e.atMs,
          subject: e.subject,
          kind: e.kind,
          from_state: e.from,
          to_state: e.to,
          reason: e.reason,
        }));
        // Bounded batches: SQLite allows 32,766 parameters per statement.
        for (let i = 0; i < rows.length; i += 500)
          await trx
            .insertInto('health_events')
            .values(rows.slice(i, i + 500))
            .execute();
        // Retention: the newest HEALTH_EVENTS_KEPT, trimmed each time the ids pass a thousand.
        const first = id - rows.length;
        if (Math.floor(first / 1000) !== Math.floor(id / 1000))
          await trx
            .deleteFrom('health_events')
            .where('id', '<=', id - HEALTH_EVENTS_KEPT)
            .execute();
      }
      if (this.#kind === 'postgres' && this.#origin && state) {
        const payload = JSON.stringify({ kind: 'health', origin: this.#origin });
        await sql`select pg_notify(${CHANGE_CHANNEL}, ${payload})`.execute(trx);
      }
      return true;
    });
  }

  async query(q: HealthHistoryQuery): Promise<HealthEvent[]> {
    let s = this.#db.selectFrom('health_events').selectAll();
    if (q.subject !== undefined) s = s.where('subject', '=', q.subject);
    if (q.kind !== undefined) s = s.where('kind', '=', q.kind);
    if (q.sinceMs !== undefined) s = s.where('at_ms', '>=', q.sinceMs);
    if (q.untilMs !== undefined) s = s.where('at_ms', '<', q.untilMs);
    const rows = await s
      .orderBy('id', 'desc')
      .limit(Math.max(0, q.limit ?? DEFAULT_QUERY_LIMIT))
      .execute();
    return rows.reverse().map((r) => ({
      subject: r.subject,
      kind: r.kind as HealthSubjectKind,
      from: r.from_state as HealthState | null,
      to: r.to_state as HealthState | null,
      atMs: num(r.at_ms),
      reason: r.reason,
    }));
  }
}

function toStored(row: {
  evaluated_by: string;
  evaluated_at_ms: number | string;
  snapshot_json: string;
  serving_json: string;
}): StoredHealth | null {
  if (row.snapshot_json === '') return null;
  return {
    snapshot: JSON.parse(row.snapshot_json) as HealthSnapshot,
    serving: JSON.parse(row.serving_json) as [string, ServingState][],
    evaluatedBy: row.evaluated_by,
    evaluatedAtMs: num(row.evaluated_at_ms),
  };
}
