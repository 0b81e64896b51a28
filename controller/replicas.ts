// Several controllers on one PostgreSQL database: each hears the others' writes (LISTEN on the
// change channel, re-read from the database, pushed by its own distributor to its own agents), and
// one of them, the leader (advisory lock), runs what must run once: health evaluation, whose
// serving decisions (failover) it sends to the others. Nothing here for SQLite, where one controller
// owns the file and does everything.
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { StreamPublisher } from './distribute/stream-publisher.js';
import type { HealthSourceDeps } from './health/source.js';
import type { LiveStreams } from './store/stream-store.js';
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
  /** For the health source: which agents stream from another replica (re-read once per evaluation). */
  streamView(reportIntervalMs: number): Pick<HealthSourceDeps, 'refresh' | 'isConnectedElsewhere'>;
  stop(): Promise<void>;
}

/** Rows of a replica not heard from for this long are ignored (it publishes every second). */
const REPLICA_STALE_MS = 10_000;
/** ... and removed after this long (by the leader, at most once a minute). */
const REPLICA_FORGOTTEN_MS = 3_600_000;

/** Starts listening for the other replicas' changes; null for a SQLite database. */
export async function startReplication(opts: {
  database: string;
  replicaId: string;
  store: Store;
  distributor: SyncTarget & { connectedSince(): ReadonlyMap<string, number> };
  clock: Clock;
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
  const streamStore = opts.store.streams;
  const publisher = streamStore
    ? new StreamPublisher({
        store: streamStore,
        replica: opts.replicaId,
        connected: () => opts.distributor.connectedSince(),
        clock: opts.clock,
        log: opts.log,
      })
    : null;
  publisher?.start();
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
    streamView(reportIntervalMs) {
      let live: LiveStreams | null = null;
      let forgottenAtMs = 0;
      return {
        refresh: async () => {
          const nowMs = opts.clock.nowMs();
          try {
            live = (await streamStore?.live(nowMs - REPLICA_STALE_MS)) ?? null;
            if (nowMs - forgottenAtMs > 60_000) {
              forgottenAtMs = nowMs;
              await streamStore?.forget({ beforeMs: nowMs - REPLICA_FORGOTTEN_MS });
            }
          } catch (err) {
            live = null;
            opts.log.warn({ err }, 'health: reading which agents stream from the other replicas failed');
          }
        },
        isConnectedElsewhere: (a) => {
          // Another replica publishes its streams: its rows say. Otherwise (none does: an older
          // release, or the table unreadable) a recent report counts as connected, as before.
          if (live?.replicas.some((r) => r !== opts.replicaId)) return live.streams.has(a.name);
          return a.lastReportAtMs !== null && opts.clock.nowMs() - a.lastReportAtMs < reportIntervalMs * 2;
        },
      };
    },
    async stop() {
      await publisher?.stop();
      health?.stop();
      await health?.idle();
      await leadership?.stop();
      await listener.stop();
      await sync.idle();
    },
  };
}
