// Route and link reads without running anything while nothing changed. Listing 5,000 routes takes
// 80-290 ms here and the interface read another 20-100 ms, against a 50 ms budget for a no-op
// reconcile. So `ip monitor link address route` watches the namespace, and every line it prints
// (any link, address or route event, ours or not: cheap and safe), every line on its stderr (e.g.
// lost events) and its end count as "something changed". A read is served from the cache only if
// the monitor has been running for a while (it has surely subscribed), nothing has changed since the
// cached read started, and that read is younger than `fullCheckIntervalMs`; our own writes
// invalidate at once, without waiting for their events.
import type { Clock } from '../../../lib/clock.js';
import type { CommandRunner, WatchHandle } from './run.js';

export interface NetlinkMonitorOptions {
  runner: CommandRunner;
  netns?: string;
  clock?: Clock;
  /** Reads are cached only this long after the monitor started. Default 1 000 ms. */
  settleMs?: number;
  /** A cached read is at most this old. Default 60 000 ms. */
  fullCheckIntervalMs?: number;
}

export class NetlinkMonitor {
  /** Bumped on every change seen (or possibly missed). */
  epoch = 0;
  readonly clock: Clock;
  readonly fullCheckIntervalMs: number;
  private watcher: WatchHandle | null = null;
  private liveFromMs = Infinity;
  private isClosed = false;

  constructor(private readonly opts: NetlinkMonitorOptions) {
    this.clock = opts.clock ?? { nowMs: () => Date.now() };
    this.fullCheckIntervalMs = opts.fullCheckIntervalMs ?? 60_000;
  }

  /** True when reads may be served from a cache; starts the monitor if it is not running. */
  isLive(): boolean {
    this.start();
    return this.watcher !== null && this.clock.nowMs() >= this.liveFromMs;
  }

  /** Something changed (our own write): nothing cached before now is valid. */
  touch(): void {
    this.epoch += 1;
  }

  /** Stops the monitor (by its PID). */
  close(): void {
    this.isClosed = true;
    this.watcher?.stop();
    this.watcher = null;
    this.touch();
  }

  private start(): void {
    if (this.watcher || this.isClosed || !this.opts.runner.watch) return;
    this.liveFromMs = this.clock.nowMs() + (this.opts.settleMs ?? 1_000);
    const handle = this.opts.runner.watch(['ip', 'monitor', 'link', 'address', 'route'], { netns: this.opts.netns }, () => this.touch(), () => {
      // Restarted by the next read; until it has settled again nothing is cached.
      if (this.watcher === handle) this.watcher = null;
      this.touch();
    });
    this.watcher = handle;
  }
}

/** One cached read behind a NetlinkMonitor (null monitor: never cached). */
export class MonitoredCache<T> {
  private cached: { value: T; epoch: number; atMs: number } | null = null;

  constructor(private readonly monitor: NetlinkMonitor | null | undefined) {}

  async get(read: () => Promise<T>): Promise<T> {
    const m = this.monitor;
    if (!m) return read();
    const isLive = m.isLive();
    const c = this.cached;
    const nowMs = m.clock.nowMs();
    if (isLive && c && c.epoch === m.epoch && nowMs - c.atMs < m.fullCheckIntervalMs) return c.value;
    const epoch = m.epoch;
    const value = await read();
    // A change reported while we read may or may not be in what we read: don't keep it.
    this.cached = isLive && m.epoch === epoch ? { value, epoch, atMs: nowMs } : null;
    return value;
  }
}
