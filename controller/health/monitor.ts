// Runs the pure health evaluation on a timer and on demand, keeps the latest snapshot, appends state
// changes to the history and decides serving health for failover. It owns no data: `source` gives
// the live inputs (the distributor's view of streams, reports and configs) at each evaluation.
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { diffHealth, evaluateHealth } from './evaluate.js';
import { HealthHistory, type HealthHistoryPort, type HealthHistoryQuery } from './history.js';
import { evaluateServing, type ServingOptions, type ServingState } from './serving.js';
import type { AgentHealthInput, EvaluateOptions, HealthEvent, HealthSnapshot, SubnetIssue } from './types.js';

export interface MonitorTimers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export interface HealthMonitorOptions {
  clock: Clock;
  log: Logger;
  /** The live inputs, one per agent (revoked ones included or not; they take no part either way). */
  source: () => readonly AgentHealthInput[] | Promise<readonly AgentHealthInput[]>;
  /** Subnets unserved or served unconfirmed (the distributor's last compile); they count in the overall state. */
  subnets?: () => readonly SubnetIssue[];
  /** Evaluation period. Default 5000 ms (half the agents' report interval). */
  intervalMs?: number;
  /** Thresholds; `controllerStartedAtMs` defaults to the clock at construction. */
  evaluate?: Partial<EvaluateOptions>;
  serving?: Partial<ServingOptions>;
  /** Where state changes go. Default: an in-memory ring of 10,000 events. */
  history?: HealthHistoryPort;
  /**
   * Several controllers: called after every evaluation with its state and events (stored together
   * by the caller); the events then do not go to `history`, which only gets `record`ed ones.
   */
  persist?: (snapshot: HealthSnapshot, serving: ReadonlyMap<string, ServingState>, events: HealthEvent[]) => void;
  /** Called after an evaluation that changed some state (not for reason-only changes). */
  onChange?: (snapshot: HealthSnapshot, events: readonly HealthEvent[]) => void;
  /** Called when an agent's serving health flips; `serving` is the full map (agent -> isHealthy). */
  onServingChange?: (serving: ReadonlyMap<string, boolean>, changed: readonly string[]) => void;
  timers?: MonitorTimers;
}

/** Changes logged one by one per evaluation; the rest are counted in one line. */
export const LOGGED_CHANGES = 20;

const defaultTimers: MonitorTimers = {
  setInterval: (fn, ms) => {
    const h = setInterval(fn, ms);
    // Health evaluation alone must not keep the process alive.
    h.unref();
    return h;
  },
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

export class HealthMonitor {
  private readonly o: HealthMonitorOptions;
  private readonly evaluateOptions: Partial<EvaluateOptions>;
  private readonly historyPort: HealthHistoryPort;
  private readonly timers: MonitorTimers;
  private current: HealthSnapshot | null = null;
  private serving = new Map<string, ServingState>();
  private inFlight: Promise<HealthSnapshot | null> | null = null;
  private timer: unknown = null;
  readonly intervalMs: number;

  constructor(options: HealthMonitorOptions) {
    this.o = options;
    this.intervalMs = options.intervalMs ?? 5000;
    this.evaluateOptions = { controllerStartedAtMs: options.clock.nowMs(), ...options.evaluate };
    this.historyPort = options.history ?? new HealthHistory();
    this.timers = options.timers ?? defaultTimers;
  }

  /** Evaluates now, then every `intervalMs` until stop(). */
  start(): void {
    if (this.timer !== null) return;
    this.timer = this.timers.setInterval(() => {
      void this.refresh();
    }, this.intervalMs);
    void this.refresh();
  }

  stop(): void {
    if (this.timer !== null) this.timers.clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Evaluates now (e.g. right after a report arrived). Concurrent calls share one evaluation.
   * Resolves to the new snapshot, or the previous one (possibly null) if the source failed.
   */
  refresh(): Promise<HealthSnapshot | null> {
    if (this.inFlight === null) {
      this.inFlight = this.evaluateOnce().finally(() => {
        this.inFlight = null;
      });
    }
    return this.inFlight;
  }

  /** The latest snapshot; null before the first evaluation. */
  snapshot(): HealthSnapshot | null {
    return this.current;
  }

  history(query: HealthHistoryQuery = {}): Promise<HealthEvent[]> {
    return Promise.resolve(this.historyPort.query(query));
  }

  /**
   * Continues from an evaluation made elsewhere (the previous leader's, read from the database):
   * the next evaluation is diffed against it, so it records only what changed since.
   */
  restore(snapshot: HealthSnapshot | null, serving: ReadonlyMap<string, ServingState>): void {
    this.current = snapshot;
    this.serving = new Map(serving);
  }

  /** Appends events decided elsewhere, e.g. by failover: "subnet x now served by b (standby)". */
  record(events: readonly HealthEvent[]): void {
    this.historyPort.append(events);
  }

  /** Agent -> may serve its subnets (forwarding health with hold-down). Revoked agents absent. */
  servingHealth(): Map<string, boolean> {
    return new Map([...this.serving].map(([name, s]) => [name, s.isHealthy]));
  }

  /** Serving health with reasons, for the API. */
  servingDetail(): ReadonlyMap<string, ServingState> {
    return this.serving;
  }

  private async evaluateOnce(): Promise<HealthSnapshot | null> {
    let input: readonly AgentHealthInput[];
    try {
      input = await this.o.source();
    } catch (err) {
      this.o.log.error({ err }, 'health: reading the live state failed; keeping the last snapshot');
      return this.current;
    }
    const nowMs = this.o.clock.nowMs();
    const prev = this.current;
    const next = evaluateHealth(input, nowMs, this.evaluateOptions, prev, this.o.subnets?.() ?? []);
    const events = diffHealth(prev, next);

    const prevServing = this.serving;
    const serving = evaluateServing(next, nowMs, this.o.serving, prevServing);
    const changedServing: string[] = [];
    for (const [name, s] of serving) {
      const was = prevServing.get(name);
      if (was === undefined ? !s.isHealthy : was.isHealthy !== s.isHealthy) {
        changedServing.push(name);
        events.push({
          subject: `serving:${name}`,
          kind: 'serving',
          from: was === undefined ? null : was.isHealthy ? 'ok' : 'down',
          to: s.isHealthy ? 'ok' : 'down',
          atMs: nowMs,
          reason: s.reason,
        });
      }
    }
    for (const name of prevServing.keys()) if (!serving.has(name)) changedServing.push(name);

    this.current = next;
    this.serving = serving;
    if (this.o.persist) this.notify(() => this.o.persist?.(next, serving, events));
    if (events.length > 0) {
      try {
        if (!this.o.persist) this.historyPort.append(events);
      } catch (err) {
        this.o.log.error({ err }, 'health: appending to the history failed');
      }
      this.logChanges(events);
      this.notify(() => this.o.onChange?.(next, events));
    }
    if (changedServing.length > 0)
      this.notify(() => this.o.onServingChange?.(this.servingHealth(), changedServing.sort()));
    return next;
  }

  /**
   * One line per change, the ones going down first, at most LOGGED_CHANGES per evaluation, then one
   * line counting the rest (all of them are in the history): a controller starting with 10,000
   * boxes logged 15,000 lines of "unknown" at once.
   */
  private logChanges(events: readonly HealthEvent[]): void {
    const shown = events.filter((e) => !(e.from === null && e.to === 'ok'));
    shown.sort((x, y) => Number(y.to === 'down') - Number(x.to === 'down'));
    for (const e of shown.slice(0, LOGGED_CHANGES)) {
      const level = e.to === 'down' ? 'warn' : 'info';
      this.o.log[level]({ subject: e.subject, from: e.from, to: e.to, reason: e.reason }, 'health changed');
    }
    if (shown.length > LOGGED_CHANGES) {
      const rest = shown.slice(LOGGED_CHANGES);
      const byTo: Record<string, number> = {};
      for (const e of rest) byTo[e.to ?? 'gone'] = (byTo[e.to ?? 'gone'] ?? 0) + 1;
      this.o.log[rest.some((e) => e.to === 'down') ? 'warn' : 'info'](
        { more: rest.length, to: byTo },
        'health changed: more changes in this evaluation than are logged one by one (GET /v1/health/history has them all)',
      );
    }
  }

  private notify(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.o.log.error({ err }, 'health: change listener failed');
    }
  }
}
