// Several controllers on one PostgreSQL database: each hears the others' writes (LISTEN on the
// change channel, re-read from the database, pushed by its own distributor to its own agents).
// Nothing here for SQLite, where one controller owns the file.
import type { Logger } from '../lib/logger.js';
import { ReplicaSync, type SyncTarget } from './distribute/replica-sync.js';
import { CHANGE_CHANNEL } from './store/changes.js';
import { isPostgresUrl } from './store/open.js';
import { listenPostgres } from './store/pg-listen.js';
import type { Store } from './store/store.js';

export interface Replication {
  readonly replicaId: string;
  readonly sync: ReplicaSync;
  stop(): Promise<void>;
}

/** Starts listening for the other replicas' changes; null for a SQLite database. */
export async function startReplication(opts: {
  database: string;
  replicaId: string;
  store: Store;
  distributor: SyncTarget;
  log: Logger;
}): Promise<Replication | null> {
  if (!isPostgresUrl(opts.database)) return null;
  const sync = new ReplicaSync({ store: opts.store, target: opts.distributor, log: opts.log, origin: opts.replicaId });
  const listener = listenPostgres({
    url: opts.database,
    channel: CHANGE_CHANNEL,
    log: opts.log.child({ component: 'replica-sync' }),
    onNotice: (payload) => sync.notice(payload),
    // The distributor read the database before LISTEN was in place (and after a reconnect
    // notices were lost): re-read once listening, so nothing between the two is missed.
    onListening: () => void sync.resync(),
  });
  try {
    await listener.ready;
  } catch (e) {
    await listener.stop();
    throw e;
  }
  opts.log.info({ replicaId: opts.replicaId }, 'listening for changes made by other controllers');
  return {
    replicaId: opts.replicaId,
    sync,
    async stop() {
      await listener.stop();
      await sync.idle();
    },
  };
}
