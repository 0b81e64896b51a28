// Which replica holds each agent's config stream (migration 005), for the leader's health
// evaluation: a replica sees only its own streams, and without this the leader judged an agent on
// another replica by its reports alone, so a box whose stream there ended counted as connected
// until its reports stopped (up to two report intervals). Every replica publishes what changed in
// its own streams, with a heartbeat, about once a second (controller/distribute/stream-publisher.ts);
// rows of a replica not heard from lately are ignored (it died: its agents are on the others now).
import type { Kysely } from 'kysely';
import { num } from './rows.js';
import type { Database } from './schema.js';

/** Rows per statement: 3 parameters each, well under PostgreSQL's 65,535. */
const CHUNK = 1000;

export interface StreamChanges {
  /** Streams opened (or whose start changed): agent and since when, controller clock (ms). */
  up: Array<{ agent: string; sinceMs: number }>;
  /** Agents whose last stream to this replica ended. */
  down: string[];
}

export interface LiveStreams {
  /** Replicas heard from since the time asked, this one included if it published. */
  replicas: string[];
  /** Agent -> the earliest start of its streams on those replicas. */
  streams: Map<string, number>;
}

export interface StreamStore {
  /** Applies this replica's changes and records it alive at `atMs`, in one transaction. */
  publish(replica: string, changes: StreamChanges, atMs: number): Promise<void>;
  /** The streams on replicas seen at or after `seenSinceMs`. */
  live(seenSinceMs: number): Promise<LiveStreams>;
  /** Removes the rows of `replica` (a clean stop) or of every replica not seen since `beforeMs`. */
  forget(which: { replica: string } | { beforeMs: number }): Promise<void>;
}

export class KyselyStreamStore implements StreamStore {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async publish(replica: string, changes: StreamChanges, atMs: number): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await trx
        .insertInto('replicas')
        .values({ id: replica, seen_at_ms: atMs })
        .onConflict((oc) => oc.column('id').doUpdateSet({ seen_at_ms: atMs }))
        .execute();
      for (let i = 0; i < changes.down.length; i += CHUNK) {
        await trx
          .deleteFrom('agent_streams')
          .where('replica', '=', replica)
          .where('agent', 'in', changes.down.slice(i, i + CHUNK))
          .execute();
      }
      for (let i = 0; i < changes.up.length; i += CHUNK) {
        await trx
          .insertInto('agent_streams')
          .values(changes.up.slice(i, i + CHUNK).map((u) => ({ agent: u.agent, replica, since_ms: u.sinceMs })))
          .onConflict((oc) =>
            oc.columns(['agent', 'replica']).doUpdateSet((eb) => ({ since_ms: eb.ref('excluded.since_ms') })),
          )
          .execute();
      }
    });
  }

  async live(seenSinceMs: number): Promise<LiveStreams> {
    const replicas = (
      await this.#db.selectFrom('replicas').select('id').where('seen_at_ms', '>=', seenSinceMs).execute()
    ).map((r) => r.id);
    const streams = new Map<string, number>();
    if (replicas.length === 0) return { replicas, streams };
    const rows = await this.#db
      .selectFrom('agent_streams')
      .select(['agent', 'since_ms'])
      .where('replica', 'in', replicas)
      .execute();
    for (const r of rows) {
      const since = num(r.since_ms);
      const had = streams.get(r.agent);
      if (had === undefined || since < had) streams.set(r.agent, since);
    }
    return { replicas, streams };
  }

  async forget(which: { replica: string } | { beforeMs: number }): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      const gone =
        'replica' in which
          ? [which.replica]
          : (await trx.selectFrom('replicas').select('id').where('seen_at_ms', '<', which.beforeMs).execute()).map(
              (r) => r.id,
            );
      if (gone.length === 0) return;
      await trx.deleteFrom('agent_streams').where('replica', 'in', gone).execute();
      await trx.deleteFrom('replicas').where('id', 'in', gone).execute();
    });
  }
}
