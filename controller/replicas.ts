// Several controllers on one PostgreSQL database: each hears the others' writes (LISTEN on the
// change channel, re-read from the database, pushed by its own distributor to its own agents), and
// one of them, the leader (advisory lock), runs what must run once: health evaluation, whose
// serving decisions (failover) it sends to the others. Nothing here for SQLite, where one controller
// owns the file and does everything.
import type { Logger } from '../lib/logger.js';
import { ReplicaSync, type SyncTarget } from './distribute/replica-sync.js';
import { SharedHealth } from './health/shared.js';
import type { HealthSnapshot } from './health/types.js';
import { CHANGE_CHANNEL } from './store/changes.js';
import { isPostgresUrl } from './store/open.js';
import { holdLeadership, type Leadership } from './store/pg-leader.js';
import { listenPostgres } from './store/pg-listen.js';
import type { Store } from './store/store.js';

export interface Replication {
  readonly replicaId: string;
  readonly sync: ReplicaSync;
  /** The leader's health evaluation, stored and served by every replica (null: a store without it). */
  readonly health: SharedHealth | null;
  /** Starts competing for leadership; `onChange` runs when this replica gains or loses it. */
  lead(onChange: (isLeader: boolean) => void): void;
  isLeader(): boolean;
  /** The leader's serving-health changes, for the other replicas' distributors. */
  publishServing(agents: [string, boolean][]): void;
  stop(): Promise<void>;
}

/** Starts listening for the other replicas' changes; null for a SQLite database. */
export async function startReplication(opts: {
  database: string;
  replicaId: string;
  store: Store;
  distributor: SyncTarget;
  log: Logger;
  /** How often a follower re-reads the leader's evaluation should a notice be lost. */
  healthIntervalMs: number;
  /** A follower read a leader's evaluation that changed some state (SharedHealth's onChange). */
  onHealthChange?: (snapshot: HealthSnapshot) => void;
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
  const health = opts.store.health
    ? new SharedHealth({
        store: opts.store.health,
        replicaId: opts.replicaId,
        log: opts.log,
        pollMs: opts.healthIntervalMs,
        ...(opts.onHealthChange ? { onChange: opts.onHealthChange } : {}),
        applyServing: (name, isHealthy) =>
          void opts.distributor
            .setAgentHealth(name, isHealthy)
            .catch((err: unknown) => opts.log.error({ err, agent: name }, 'applying serving health failed')),
      })
    : null;
  if (health) sync.onHealth = () => health.changed();
  let leadership: Leadership | null = null;
  return {
    replicaId: opts.replicaId,
    sync,
    health,
    lead(onChange) {
      // Follows the leader's stored evaluation until this replica leads.
      if (!leadership) health?.start();
      leadership ??= holdLeadership({ url: opts.database, log: opts.log, onChange });
    },
    isLeader: () => leadership?.isLeader() ?? false,
    publishServing(agents) {
      if (agents.length === 0) return;
      const payload = JSON.stringify({ kind: 'serving', agents, origin: opts.replicaId });
      void listener.send(payload).then((isSent) => {
        if (!isSent) opts.log.warn({ agents }, 'could not tell the other replicas of a serving change');
      });
    },
    async stop() {
      health?.stop();
      await health?.idle();
      await leadership?.stop();
      await listener.stop();
      await sync.idle();
    },
  };
}
