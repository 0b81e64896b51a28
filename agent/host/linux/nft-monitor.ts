// `nft monitor` beside the netlink monitor (monitor.ts): it tells the firewall adapter whether
// anyone else committed to nftables. Every committed transaction prints
// "# new generation N by process PID"; a generation from a process that is not one of ours counts
// as a change (`epoch` is bumped and onChange's listeners are told), so does any stderr line (e.g.
// lost events) and the monitor's end. (Filtering the monitor by object type hides the generation
// lines, and element deletions print no event at all, so "anyone else committed" is the signal,
// not the event text.) Our own writes are told with noteOwnWrite(pid); barrier() commits a
// transaction that leaves nothing behind and returns its generation once printed (firewall.ts
// uses two of them to prove nobody committed while no monitor ran).
import type { Clock } from '../../../lib/clock.js';
import { CROSSLINK_NFT_TABLE } from '../ports.js';
import type { CommandRunner, WatchHandle } from './run.js';

export interface NftMonitorOptions {
  runner: CommandRunner;
  netns?: string;
  clock?: Clock;
}

/** Never exists outside the one transaction that creates and deletes it (see barrier()). */
const BARRIER_TABLE = ['table', 'inet', `${CROSSLINK_NFT_TABLE}_barrier`];
const GEN_RE = /^# new generation (\d+) by process (\d+)/;
/** How long one barrier waits to be seen by the monitor before another is tried. */
const BARRIER_WAIT_MS = 25;
const BARRIER_TRIES = 40;
/** Remembered PIDs of our own committing nft processes (see noteOwnWrite()). */
const OWN_PIDS_MAX = 64;
const OWN_PID_TTL_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class NftMonitor {
  /** Bumped on every commit that is not ours, and on every stderr line (changes possibly missed). */
  epoch = 0;
  private readonly clock: Clock;
  private watcher: WatchHandle | null = null;
  /** PIDs of our own nft processes that commit; their generations are not changes. */
  private readonly ownPids = new Map<number, number>();
  /** Barrier commits in flight: PID -> told the generation when the monitor prints it. */
  private readonly barriers = new Map<number, (generation: number) => void>();
  private readonly listeners = new Set<() => void>();

  constructor(private readonly opts: NftMonitorOptions) {
    this.clock = opts.clock ?? { nowMs: () => Date.now() };
  }

  /** True when the runner can watch at all. */
  get canWatch(): boolean {
    return this.opts.runner.watch !== undefined;
  }

  /** True while a monitor process runs. */
  get isRunning(): boolean {
    return this.watcher !== null;
  }

  /** True when anything not ours was committed (or possibly missed) since `mark` (an `epoch`). */
  changedSince(mark: number): boolean {
    return this.epoch !== mark;
  }

  /** Calls `listener` on every change that is not ours and on the monitor's end (not on stop()). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Our own committing nft process: its generation line is not a change. Only a running monitor
   * prints it. Kept OWN_PID_TTL_MS and at most OWN_PIDS_MAX (a barrier that committed before the
   * monitor subscribed is never printed): a foreign nft that got the same PID later would
   * otherwise pass for ours. A line later than that counts as foreign, which costs a listing,
   * never a missed change.
   */
  noteOwnWrite(pid: number): void {
    if (!this.watcher) return;
    this.addOwnPid(pid);
  }

  start(): void {
    if (this.watcher || !this.opts.runner.watch) return;
    // nft's stdout into a pipe is block-buffered: without line buffering a generation line
    // could sit in nft's buffer indefinitely.
    const handle: WatchHandle = this.opts.runner.watch(
      ['stdbuf', '-oL', 'nft', 'monitor'],
      { netns: this.opts.netns },
      (line) => {
        if (this.watcher === handle) this.onLine(line);
      },
      () => {
        // The monitor exits when a large commit overflows its netlink socket (ENOBUFS: a
        // 10,000-element table is 10,000 events). A monitor we stopped ourselves is not news.
        if (this.watcher !== handle) return;
        this.watcher = null;
        this.emit();
      },
    );
    this.watcher = handle;
  }

  /** Stops the monitor (by its PID). */
  stop(): void {
    this.watcher?.stop();
    this.watcher = null;
  }

  /**
   * Commits a transaction that leaves nothing behind and waits for the monitor to print its
   * generation, which proves the monitor is subscribed and has printed everything committed
   * before. Tries again (a new commit) if the monitor was not yet listening. null: not seen.
   */
  async barrier(): Promise<{ generation: number; tries: number } | null> {
    for (let tries = 1; tries <= BARRIER_TRIES && this.watcher; tries++) {
      let pid = -1;
      let resolveSeen: (g: number) => void = () => undefined;
      const seen = new Promise<number>((r) => (resolveSeen = r));
      try {
        await this.opts.runner.run(['nft', 'add', ...BARRIER_TABLE, ';', 'delete', ...BARRIER_TABLE], {
          netns: this.opts.netns,
          onSpawn: (p) => {
            pid = p;
            this.barriers.set(p, resolveSeen);
          },
        });
        const generation = await Promise.race([seen, sleep(BARRIER_WAIT_MS).then(() => null)]);
        if (generation !== null) return { generation, tries };
      } finally {
        // Not seen in time: on a loaded box its line may still come, and it is ours, not someone
        // else's commit (counted as foreign, it made the next baseline unknown: a false drift).
        if (this.barriers.delete(pid)) this.addOwnPid(pid);
      }
    }
    return null;
  }

  private addOwnPid(pid: number): void {
    const nowMs = this.clock.nowMs();
    for (const [p, atMs] of this.ownPids) {
      if (nowMs - atMs < OWN_PID_TTL_MS && this.ownPids.size < OWN_PIDS_MAX) break;
      this.ownPids.delete(p); // oldest first (insertion order)
    }
    this.ownPids.set(pid, nowMs);
  }

  private onLine(line: string): void {
    if (line.startsWith('# stderr:')) return this.change(); // e.g. lost events (ENOBUFS)
    const m = GEN_RE.exec(line);
    if (!m) return;
    const pid = Number(m[2]);
    const barrier = this.barriers.get(pid);
    if (barrier) {
      this.barriers.delete(pid);
      return barrier(Number(m[1]));
    }
    if (this.ownPids.delete(pid)) return; // one nft process, one transaction
    this.change();
  }

  private change(): void {
    this.epoch += 1;
    this.emit();
  }

  private emit(): void {
    for (const listener of this.listeners) listener();
  }
}
