// Health with several controllers on one PostgreSQL database. The leader's monitor evaluates; each
// evaluation (snapshot, serving decisions) and its state changes are stored in one transaction
// (controller/store/health-store.ts). The other replicas serve what the leader stored, re-read when
// its NOTIFY arrives and every `pollMs` in case a notice was lost, and apply its serving decisions
// to their own distributors. A replica that becomes leader continues from the stored evaluation,
// so the history has no gap and no transition twice across a change of leader.
import type { Logger } from '../../lib/logger.js';
import type { HealthStateStore, StoredHealth } from '../store/health-store.js';
import { diffHealth } from './evaluate.js';
import type { HealthHistoryPort, HealthHistoryQuery } from './history.js';
import type { HealthMonitor } from './monitor.js';
import type { ServingState } from './serving.js';
import type { HealthEvent, HealthSnapshot } from './types.js';

/** Which controller made the evaluation being served, and when (/v1/health's `evaluatedBy`). */
export interface EvaluatedBy {
  replica: string;
  atMs: number;
  isThisReplica: boolean;
}

export class SharedHealth {
  readonly #store: HealthStateStore;
  readonly #replicaId: string;
  readonly #log: Logger;
  readonly #pollMs: number;
  readonly #applyServing: (name: string, isHealthy: boolean) => void;
  readonly #onChange: ((snapshot: HealthSnapshot) => void) | undefined;
  #monitor: HealthMonitor | null = null;
  /** The leadership term this replica writes under; null while following. */
  #term: number | null = null;
  /** Bumped on every change of role, so a slow claim or load from before it is dropped. */
  #generation = 0;
  #pending: { state: StoredHealth | null; events: HealthEvent[] } = { state: null, events: [] };
  #flushing: Promise<void> | null = null;
  #stored: StoredHealth | null = null;
  #loading: Promise<void> | null = null;
  #isLoadAgain = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(opts: {
    store: HealthStateStore;
    replicaId: string;
    log: Logger;
    pollMs: number;
    applyServing: (name: string, isHealthy: boolean) => void;
    /** A follower read an evaluation of the leader's that changed some state (the leader's own
     *  changes come from its monitor's onChange). */
    onChange?: (snapshot: HealthSnapshot) => void;
  }) {
    this.#store = opts.store;
    this.#replicaId = opts.replicaId;
    this.#log = opts.log.child({ component: 'health-shared' });
    this.#pollMs = opts.pollMs;
    this.#applyServing = opts.applyServing;
    this.#onChange = opts.onChange;
  }

  /** The monitor's history: events it `record`s go to the database (the leader's only). */
  readonly historyPort: HealthHistoryPort = {
    append: (events) => {
      if (this.#term === null || events.length === 0) return; // the leader records its own
      this.#pending.events.push(...events);
      this.#flush();
    },
    query: (q) => this.#store.query(q),
  };

  /** The monitor's `persist` hook: each evaluation with its events, stored in one transaction. */
  readonly persist = (
    snapshot: HealthSnapshot,
    serving: ReadonlyMap<string, ServingState>,
    events: readonly HealthEvent[],
  ): void => {
    if (this.#term === null) return;
    this.#pending.state = {
      snapshot,
      serving: [...serving],
      evaluatedBy: this.#replicaId,
      evaluatedAtMs: snapshot.atMs,
    };
    this.#pending.events.push(...events);
    this.#flush();
  };

  attach(monitor: HealthMonitor): void {
    this.#monitor = monitor;
  }

  /** Follows the leader until `lead(true)`. */
  start(): void {
    this.#follow();
  }

  /** Leadership gained (true) or lost (false). */
  lead(isLeader: boolean): void {
    const generation = ++this.#generation;
    if (!isLeader) {
      this.#monitor?.stop();
      this.#term = null;
      this.#pending = { state: null, events: [] };
      this.#follow();
      return;
    }
    this.#stopPolling();
    void this.#claim(generation);
  }

  stop(): void {
    this.#generation++;
    this.#stopPolling();
    this.#monitor?.stop();
    this.#term = null;
  }

  /** Leads and has taken over the stored evaluation: evaluations now are this replica's to make. */
  isLeading(): boolean {
    return this.#term !== null;
  }

  /** The leader stored an evaluation (its NOTIFY). */
  changed(): void {
    if (this.#term === null) this.#load();
  }

  /** Resolves when the writes queued so far are done (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  // ---- what the health routes and /metrics read -------------------------------------------

  snapshot(): HealthSnapshot | null {
    return this.#term !== null ? (this.#monitor?.snapshot() ?? null) : (this.#stored?.snapshot ?? null);
  }

  servingDetail(): ReadonlyMap<string, ServingState> {
    if (this.#term !== null) return this.#monitor?.servingDetail() ?? new Map<string, ServingState>();
    return new Map(this.#stored?.serving ?? []);
  }

  servingHealth(): Map<string, boolean> {
    return new Map([...this.servingDetail()].map(([name, s]) => [name, s.isHealthy]));
  }

  history(q: HealthHistoryQuery): Promise<HealthEvent[]> {
    return this.#store.query(q);
  }

  evaluatedBy(): EvaluatedBy | null {
    if (this.#term !== null) {
      const s = this.#monitor?.snapshot();
      return s ? { replica: this.#replicaId, atMs: s.atMs, isThisReplica: true } : null;
    }
    const st = this.#stored;
    return st
      ? { replica: st.evaluatedBy, atMs: st.evaluatedAtMs, isThisReplica: st.evaluatedBy === this.#replicaId }
      : null;
  }

  // ---- internals --------------------------------------------------------------------------

  async #claim(generation: number): Promise<void> {
    for (;;) {
      try {
        const { term, stored } = await this.#store.claim();
        if (generation !== this.#generation) return;
        this.#term = term;
        this.#stored = stored;
        // Continue from the stored evaluation: the first one here records only what changed since.
        this.#monitor?.restore(stored?.snapshot ?? null, new Map(stored?.serving ?? []));
        this.#monitor?.start();
        this.#log.info(
          { term, previous: stored?.evaluatedBy ?? null, previousAtMs: stored?.evaluatedAtMs ?? null },
          'health: evaluating as leader, from the stored evaluation',
        );
        return;
      } catch (err) {
        this.#log.error({ err }, 'health: taking over the stored evaluation failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
        if (generation !== this.#generation) return;
      }
    }
  }

  #flush(): void {
    if (this.#flushing || this.#term === null) return;
    const term = this.#term;
    const batch = this.#pending;
    if (batch.state === null && batch.events.length === 0) return;
    this.#pending = { state: null, events: [] };
    this.#flushing = (async () => {
      try {
        const isWritten = await this.#store.save(term, batch.state, batch.events);
        if (!isWritten) this.#log.warn({ term }, 'health: another controller leads now; evaluation not stored');
      } catch (err) {
        // Kept for the next write (the next evaluation), so no transition is lost from the history.
        this.#log.error({ err, events: batch.events.length }, 'health: storing the evaluation failed; will retry');
        if (this.#term === term) {
          this.#pending = {
            state: this.#pending.state ?? batch.state,
            events: [...batch.events, ...this.#pending.events],
          };
        }
        return;
      } finally {
        this.#flushing = null;
      }
      this.#flush();
    })();
  }

  #follow(): void {
    this.#stopPolling();
    this.#timer = setInterval(() => this.#load(), this.#pollMs);
    this.#timer.unref();
    this.#load();
  }

  #stopPolling(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #load(): void {
    if (this.#loading) {
      this.#isLoadAgain = true;
      return;
    }
    const generation = this.#generation;
    this.#loading = (async () => {
      try {
        const stored = await this.#store.load();
        if (generation !== this.#generation || this.#term !== null || stored === null) return;
        const previous = this.#stored;
        this.#stored = stored;
        // As the monitor's onChange: a state changed, not a reason's wording or a new timestamp.
        if (this.#onChange && previous?.evaluatedAtMs !== stored.evaluatedAtMs) {
          if (diffHealth(previous?.snapshot, stored.snapshot).length > 0) this.#onChange(stored.snapshot);
        }
        // The leader's failover decisions, stored: a replica that missed a notice catches up here
        // (setAgentHealth is a no-op when nothing changed).
        for (const [name, s] of stored.serving) this.#applyServing(name, s.isHealthy);
      } catch (err) {
        this.#log.warn({ err }, "health: reading the leader's evaluation failed");
      } finally {
        this.#loading = null;
      }
      if (this.#isLoadAgain) {
        this.#isLoadAgain = false;
        this.#load();
      }
    })();
  }
}
