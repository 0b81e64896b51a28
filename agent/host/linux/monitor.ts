// Route and link reads without running anything while nothing changed. Listing 5,000 routes takes
// 80-290 ms here and the interface read another 20-100 ms, against a 50 ms budget for a no-op
// reconcile. So `ip monitor link address route` watches the namespace, and every line it prints
// (any link, address or route event, ours or not: cheap and safe), every line on its stderr (e.g.
// lost events) and its end count as "something changed". A read is served from the cache only if
// the monitor has been running for a while (it has surely subscribed), nothing has changed since the
// cached read started, and that read is younger than `fullCheckIntervalMs`.
//
// Our own writes: creating or removing the interface invalidates at once. A route batch that
// succeeded instead patches the cached routes, and announces the route events it will cause
// (expect()): each matching line the monitor prints is then consumed instead of counting as a
// change, so a peer joining does not cost a 5,000-route listing on the next run. Any line that
// was not announced still invalidates everything, and an announced line that never arrives
// (within `expectTtlMs`) invalidates too.
//
// The same monitor is the agent's only one: onChange() hands every change that is not our own (a
// line not consumed as an announced route event, a stderr line, the monitor's end) to subscribers,
// e.g. the reconciler's event kicker (reconcile/events.ts). Subscribing starts the monitor. If it
// ends, the next read restarts it (a periodic resync reads every 10 s) and subscribers stay
// subscribed: events in between are missed, and the resync is what puts that right.
import type { Clock } from '../../../lib/clock.js';
import { canonicalPrefix } from '../canonical.js';
import { CROSSLINK_RT_PROTO } from '../ports.js';
import type { CommandRunner, WatchHandle } from './run.js';

export interface NetlinkMonitorOptions {
  runner: CommandRunner;
  netns?: string;
  clock?: Clock;
  /** Reads are cached only this long after the monitor started. Default 1 000 ms. */
  settleMs?: number;
  /** A cached read is at most this old. Default 60 000 ms. */
  fullCheckIntervalMs?: number;
  /** Announced route events must arrive within this long. Default 5 000 ms. */
  expectTtlMs?: number;
}

const ROUTE_EVENT_RE = new RegExp(`^(Deleted )?(\\S+) dev (\\S+) proto ${CROSSLINK_RT_PROTO}(?: |$)`);

/** "+PREFIX DEV" / "-PREFIX DEV" for a route event of ours in the main table; null otherwise. */
export function routeEventKey(line: string): string | null {
  const m = ROUTE_EVENT_RE.exec(line);
  if (!m || m[2] === 'default' || / table /.test(line)) return null;
  try {
    return `${m[1] ? '-' : '+'}${canonicalPrefix(m[2]!.includes('/') ? m[2]! : `${m[2]}/${m[2]!.includes(':') ? 128 : 32}`)} ${m[3]}`;
  } catch {
    return null;
  }
}

/** See WatchOptions.coalesceMs: events reach the cache and the host-event kicks at most this late. */
const COALESCE_MS = 20;
/** `ip monitor`'s netlink receive buffer, asked for (see start()). */
const MONITOR_RCVBUF = 16 * 1024 * 1024;

export class NetlinkMonitor {
  /** Bumped on every change seen (or possibly missed). */
  epoch = 0;
  readonly clock: Clock;
  readonly fullCheckIntervalMs: number;
  private watcher: WatchHandle | null = null;
  private liveFromMs = Infinity;
  private isClosed = false;
  /** Announced route events (routeEventKey) -> how many are still to come. */
  private readonly expected = new Map<string, number>();
  private expectedUntilMs = 0;
  private readonly listeners = new Set<(line: string) => void>();

  constructor(private readonly opts: NetlinkMonitorOptions) {
    this.clock = opts.clock ?? { nowMs: () => Date.now() };
    this.fullCheckIntervalMs = opts.fullCheckIntervalMs ?? 60_000;
  }

  /** True when reads may be served from a cache; starts the monitor if it is not running. */
  isLive(): boolean {
    this.start();
    if (this.expected.size > 0 && this.clock.nowMs() > this.expectedUntilMs) {
      // Something we announced never showed: don't trust what the cache assumed.
      this.expected.clear();
      this.touch();
    }
    return this.watcher !== null && this.clock.nowMs() >= this.liveFromMs;
  }

  /** True when anything changed (or may have) since `mark` (an `epoch`): as NftMonitor's. */
  changedSince(mark: number): boolean {
    return this.epoch !== mark;
  }

  /** Something changed (our own write): nothing cached before now is valid. */
  touch(): void {
    this.epoch += 1;
  }

  /** Announces route events our own write is about to cause (see routeEventKey). */
  expect(keys: readonly string[]): void {
    for (const k of keys) this.expected.set(k, (this.expected.get(k) ?? 0) + 1);
    this.expectedUntilMs = this.clock.nowMs() + (this.opts.expectTtlMs ?? 5_000);
  }

  /** Our write failed or did something else: forget the announcement, trust nothing cached. */
  cancelExpected(): void {
    this.expected.clear();
    this.touch();
  }

  /**
   * Calls `listener` with every change that is not our own: each monitor line not consumed as an
   * announced route event, each stderr line ("# stderr: ..."), and the monitor's end ("# ended:
   * exit N"). Starts the monitor; after it ends it is restarted by the next read, and `listener`
   * stays subscribed. `listener` runs inside the monitor's output handler: keep it cheap, never
   * throw. Returns the unsubscribe function.
   */
  onChange(listener: (line: string) => void): () => void {
    this.listeners.add(listener);
    this.start();
    return () => {
      this.listeners.delete(listener);
    };
  }

  private onLine(line: string): void {
    const key = this.expected.size > 0 ? routeEventKey(line) : null;
    const n = key === null ? 0 : (this.expected.get(key) ?? 0);
    if (n === 0) {
      this.touch();
      this.emit(line);
      return;
    }
    if (n === 1) this.expected.delete(key!);
    else this.expected.set(key!, n - 1);
  }

  private emit(line: string): void {
    for (const listener of this.listeners) listener(line);
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
    // Read in bursts (coalesceMs): our own route batch alone is thousands of events. And ask for a
    // large socket buffer: with ip's default (1 MB, or rmem_max if lower: 208 KB on a stock box)
    // a 5,000-route batch overflowed it after 800-2,800 events (ENOBUFS, printed on stderr, so the
    // cache is dropped and the routes listed again). The kernel caps it at net.core.rmem_max.
    const handle = this.opts.runner.watch(
      ['ip', '-rcvbuf', String(MONITOR_RCVBUF), 'monitor', 'link', 'address', 'route'],
      { netns: this.opts.netns, coalesceMs: COALESCE_MS },
      (line) => this.onLine(line),
      (code) => {
        // Restarted by the next read; until it has settled again nothing is cached.
        const isCurrent = this.watcher === handle;
        if (isCurrent) this.watcher = null;
        this.expected.clear();
        this.touch();
        // Not after close(), nor twice for one monitor (a spawn error may be followed by its exit).
        if (isCurrent) this.emit(`# ended: exit ${code}`);
      },
    );
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
    if (isLive && c && !m.changedSince(c.epoch) && nowMs - c.atMs < m.fullCheckIntervalMs) return c.value;
    const epoch = m.epoch;
    const value = await read();
    // A change reported while we read may or may not be in what we read: don't keep it.
    this.cached = isLive && !m.changedSince(epoch) ? { value, epoch, atMs: nowMs } : null;
    return value;
  }

  /** Applies our own successful write to the cached value (if it is still valid). */
  patch(change: (value: T) => T): void {
    const m = this.monitor;
    const c = this.cached;
    if (!m || !c) return;
    if (m.changedSince(c.epoch)) this.cached = null;
    else c.value = change(c.value);
  }
}
