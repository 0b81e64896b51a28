// FirewallPort over nft. The whole table is replaced in one `nft -f` transaction
// (`add table` + `delete table` + the new table: atomic, and it works when the table is absent).
//
// Drift check: listing the table costs 300-500 ms with 10,000 tuples here (nft 1.0.6 fetches every
// set element even for `nft -t list table`), far over the 50 ms budget of a no-op reconcile. So an
// `nft monitor` watches the namespace (nft-monitor.ts): while no process other than our own nft has
// committed since the last full listing, observe() returns that listing's fingerprint without
// running anything. A full listing is still made every `fullCheckIntervalMs`, and always when the
// monitor is not running.
//
// Our own table load must not reach a monitor: nft 1.0.6 prints every element event with the
// elements its set has accumulated so far, so one 10,000-tuple load makes `nft monitor` print
// ~500 MB and spend 3+ s of a core on it (measured here), stalling the box after every policy
// change. So replace() stops the monitor, commits, and starts a new one, and closes the gap with
// generation numbers: a barrier commit (a transient table created and deleted in one transaction,
// so nothing of it remains) seen by the old monitor gives generation g1 (and, once printed, proves
// everything committed before it has been seen), one seen by the new monitor gives g2; if g2 is
// exactly g1 + our commit + our barriers in between, nobody else committed while no monitor
// watched. Otherwise the baseline is unknown and the next observe lists the table, which then
// shows as drift and is put right.
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../../../lib/clock.js';
import { firewallFingerprint } from '../firewall-fingerprint.js';
import { CROSSLINK_NFT_TABLE, type FirewallPort, type FirewallReplaceOptions } from '../ports.js';
import type { FirewallCounter, FirewallObserved } from '../../reconcile/host-state.js';
import { NftMonitor } from './nft-monitor.js';
import type { CommandRunner } from './run.js';

export interface LinuxFirewallOptions {
  runner: CommandRunner;
  netns?: string;
  tempDir?: string;
  /** Use `nft monitor` to skip listings while nothing changed. Default true (when the runner can). */
  isWatching?: boolean;
  /** Full listing at least this often even when the monitor saw nothing. Default 60 000. */
  fullCheckIntervalMs?: number;
  clock?: Clock;
  /** The host's nft monitor (HostObservations). Default: one of the adapter's own. */
  monitor?: NftMonitor;
}

const TABLE = ['table', 'inet', CROSSLINK_NFT_TABLE];
/** How long a barrier observe() started ahead may serve replace() (see barrierAhead()). */
const EARLY_BARRIER_MS = 2_000;
/** Delay before the post-commit barrier and baseline listing (see replace()). */
const BACKGROUND_DELAY_MS = 300;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class LinuxFirewall implements FirewallPort {
  private readonly opts: LinuxFirewallOptions;
  private readonly clock: Clock;
  private readonly monitor: NftMonitor;
  private cached: FirewallObserved | null = null;
  /** A pre-commit barrier started by observe() (barrierAhead()). */
  private earlyBarrier: { promise: Promise<{ generation: number; tries: number } | null>; atMs: number } | null = null;
  private cachedAtMs = 0;
  /** replace() calls so far (a newer one cancels the background work of an older one). */
  private replaces = 0;
  /** Full listings made (for tests and benchmarks). */
  fullListings = 0;
  /**
   * What we installed last: `token` (a hash of the ruleset text) is the fingerprint we hand out;
   * `baseline` resolves to the hash of the listing of that table as installed (null: unknown,
   * because someone else committed in between). A later listing with the baseline's hash still
   * reports `token`; any other listing reports its own hash, i.e. drift.
   */
  private installed: { token: string; baseline: Promise<string | null> } | null = null;

  constructor(opts: LinuxFirewallOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? { nowMs: () => Date.now() };
    this.monitor = opts.monitor ?? new NftMonitor({ runner: opts.runner, netns: opts.netns, clock: this.clock });
    // A foreign commit, lost events or the monitor's end: trust nothing cached. (After an end the
    // next observe lists in full and starts a new monitor.)
    this.monitor.onChange(() => {
      this.cached = null;
    });
  }

  /** Foreign commits seen so far; a listing is cached only if none arrived while it ran. */
  private get foreignCommits(): number {
    return this.monitor.epoch;
  }

  async observe(): Promise<FirewallObserved> {
    this.startWatcher();
    const interval = this.opts.fullCheckIntervalMs ?? 60_000;
    const result =
      this.monitor.isRunning && this.cached && this.clock.nowMs() - this.cachedAtMs < interval
        ? { ...this.cached }
        : await this.fullObserve();
    // No table, or not the one we installed: a replace() follows, and its first barrier can run now.
    if (!result.exists || (this.installed !== null && result.fingerprint !== this.installed.token)) this.barrierAhead();
    return result;
  }

  /** Starts replace()'s pre-commit barrier ahead (see replace()); one at a time, fresh for EARLY_BARRIER_MS. */
  private barrierAhead(): void {
    if (
      !this.monitor.isRunning ||
      (this.earlyBarrier && this.clock.nowMs() - this.earlyBarrier.atMs < EARLY_BARRIER_MS)
    )
      return;
    const promise = this.monitor.barrier();
    promise.catch(() => undefined); // replace() runs its own barrier then
    this.earlyBarrier = { promise, atMs: this.clock.nowMs() };
  }

  async replace(ruleset: string, opts: FirewallReplaceOptions = {}): Promise<string> {
    const replaceNo = ++this.replaces;
    this.startWatcher();
    const { file, removeDir } = this.writeLoadFile(ruleset);
    let before: number | null;
    let wasWatching: boolean;
    let seen: number;
    try {
      before = await this.generationBefore();
      wasWatching = this.monitor.isRunning;
      seen = this.foreignCommits;
      this.stopWatcher();
    } catch (e) {
      removeDir();
      throw e;
    }
    try {
      await this.commit(['nft', '-f', file], opts.whileCommitting);
    } finally {
      removeDir();
      if (wasWatching) this.startWatcher();
    }
    const token = createHash('sha256').update(`crosslink ruleset\n${ruleset}`).digest('hex');
    // Everything after the commit runs in the background: the second barrier (~10-30 ms) and the
    // baseline listing, which costs more than the `nft -f` itself (1-2 s at 10,000 tuples on a
    // busy box). With the monitor running nobody needs them until the next observe (which waits
    // for them).
    const isGapClean = wasWatching ? this.isGapClean(before, replaceNo) : Promise.resolve(true);
    const baseline = isGapClean
      .then(async (isClean) => {
        if (!isClean) return null;
        // With a monitor nobody waits for it: at the lowest CPU priority, so that on a fresh box it
        // does not take a core from the peers and routes the reconciler applies next.
        const h = await this.listingHash(wasWatching);
        return this.foreignCommits === seen && h !== null ? h : null;
      })
      .catch(() => null);
    this.installed = { token, baseline };
    if (!this.monitor.isRunning) {
      await baseline;
      this.remember({ exists: true, fingerprint: token }, seen);
    } else {
      // Until the gap is known to be clean, an observe lists the table (and waits for the baseline).
      this.cached = null;
      void isGapClean.then((isClean) => {
        if (isClean && this.installed?.token === token) this.remember({ exists: true, fingerprint: token }, seen);
      });
    }
    return token;
  }

  /** The `nft -f` file: written synchronously (~1 ms for 10,000 tuples) while the barrier runs;
   *  through the thread pool, each step waited for a busy event loop, and `nft -f` started 10-20 ms later. */
  private writeLoadFile(ruleset: string): { file: string; removeDir: () => void } {
    const name = `inet ${CROSSLINK_NFT_TABLE}`;
    const dir = mkdtempSync(join(this.opts.tempDir ?? tmpdir(), 'xl-nft-'));
    const file = join(dir, 'crosslink.nft');
    const removeDir = () => void rm(dir, { recursive: true, force: true }).catch(() => undefined);
    try {
      writeFileSync(file, `add table ${name}\ndelete table ${name}\n${ruleset}`, { mode: 0o600 });
    } catch (e) {
      removeDir();
      throw e;
    }
    return { file, removeDir };
  }

  /**
   * Generation before our commit, from a barrier the running monitor prints: everything committed
   * before it has been printed by then, so a commit by someone else just before ours is counted
   * as theirs, not found in the gap. null: no monitor, or it did not see a barrier in time; then
   * the gap cannot be proven clean. A barrier observe() started ahead serves as well (it is only
   * further back): whatever was committed after it, by anyone, shows in the generation arithmetic
   * as an unclean gap.
   */
  private async generationBefore(): Promise<number | null> {
    const early =
      this.earlyBarrier && this.clock.nowMs() - this.earlyBarrier.atMs < EARLY_BARRIER_MS
        ? this.earlyBarrier.promise
        : null;
    this.earlyBarrier = null;
    // (It may have come to nothing, e.g. its monitor died meanwhile: then one now.)
    const ahead = early ? await early.catch(() => null) : null;
    return (ahead ?? (this.monitor.isRunning ? await this.monitor.barrier() : null))?.generation ?? null;
  }

  /**
   * True when nobody else committed between `before` and a barrier the new monitor sees. Starts a
   * moment later, so that it does not take a core from the peers and routes the reconciler applies
   * right after the firewall (on a fresh box that made the apply ~25 % slower).
   */
  private isGapClean(before: number | null, replaceNo: number): Promise<boolean> {
    // A newer replace() supersedes this one: its own barriers must be the only ones in its gap.
    return sleep(BACKGROUND_DELAY_MS)
      .then(() => (this.replaces === replaceNo ? this.monitor.barrier() : null))
      .then(
        // Our commit plus every barrier run since it (the one seen included).
        (after) => before !== null && after !== null && after.generation === before + 1 + after.tries,
        () => false,
      );
  }

  async remove(): Promise<void> {
    this.startWatcher();
    const seen = this.foreignCommits;
    // One transaction: create-if-absent then delete, so removing an absent table is no error.
    await this.commit(['nft', 'add', ...TABLE, ';', 'delete', ...TABLE]);
    this.remember({ exists: false, fingerprint: '' }, seen);
  }

  async counters(): Promise<Record<string, FirewallCounter>> {
    const r = await this.opts.runner.run(['nft', '-j', 'list', 'counters', ...TABLE], {
      netns: this.opts.netns,
      allowFailure: true,
    });
    if (r.exitCode !== 0) {
      if (/No such file or directory/.test(r.stderr)) return {};
      await this.opts.runner.run(['nft', '-j', 'list', 'counters', ...TABLE], { netns: this.opts.netns });
    }
    const out: Record<string, FirewallCounter> = {};
    const doc = JSON.parse(r.stdout || '{"nftables":[]}') as {
      nftables: Array<{ counter?: { name: string; packets: number; bytes: number } }>;
    };
    // In nft's order: readers look counters up by name (a sorted copy of ~2 per rule, every report,
    // was garbage the idle agent did not need).
    for (const item of doc.nftables) {
      if (item.counter)
        out[item.counter.name] = { packets: BigInt(item.counter.packets), bytes: BigInt(item.counter.bytes) };
    }
    return out;
  }

  /** Resolves when the background baseline listing of the last replace() has finished. */
  async settled(): Promise<void> {
    await this.installed?.baseline;
  }

  /** Stops the monitor (by its PID). The table stays as it is. */
  close(): void {
    this.stopWatcher();
  }

  private stopWatcher(): void {
    this.monitor.stop();
    this.cached = null;
  }

  /** Runs a committing nft; `whileRunning` is called once it has started (on the next turn of the loop). */
  private async commit(argv: string[], whileRunning?: () => void): Promise<void> {
    await this.opts.runner.run(argv, {
      netns: this.opts.netns,
      onSpawn: (pid) => {
        // Only a running monitor prints it (replace() commits with none running).
        this.monitor.noteOwnWrite(pid);
        if (whileRunning) {
          setImmediate(() => {
            try {
              whileRunning();
            } catch {
              // the caller's own work; it is told of its failures by its own means
            }
          });
        }
      },
    });
  }

  private async fullObserve(): Promise<FirewallObserved> {
    // Anything committed before this listing is in it, so drift seen so far is accounted for.
    const seen = this.foreignCommits;
    const h = await this.listingHash();
    let result: FirewallObserved = { exists: false, fingerprint: '' };
    if (h !== null) {
      const base = this.installed ? await this.installed.baseline : null;
      result = { exists: true, fingerprint: base !== null && base === h ? this.installed!.token : h };
    }
    this.remember(result, seen);
    return { ...result };
  }

  /** Hash of the normalised `nft list table` output; null when the table does not exist. */
  private async listingHash(isBackground = false): Promise<string | null> {
    const argv = ['nft', 'list', ...TABLE];
    const r = await this.opts.runner.run(isBackground ? ['nice', '-n', '19', ...argv] : argv, {
      netns: this.opts.netns,
      allowFailure: true,
    });
    this.fullListings += 1;
    if (r.exitCode === 0) return firewallFingerprint(r.stdout);
    if (/No such file or directory/.test(r.stderr)) return null;
    await this.opts.runner.run(['nft', 'list', ...TABLE], { netns: this.opts.netns }); // throws with the details
    return null;
  }

  private remember(result: FirewallObserved, foreignCommitsBefore: number): void {
    // A foreign commit reported while we listed may or may not be in the listing: don't cache it.
    this.cached = this.foreignCommits === foreignCommitsBefore ? result : null;
    this.cachedAtMs = this.clock.nowMs();
  }

  private startWatcher(): void {
    if (this.monitor.isRunning || this.opts.isWatching === false || !this.monitor.canWatch) return;
    this.monitor.start();
    // Until the monitor has subscribed, a change could slip by: the first observe lists in full.
    this.cached = null;
  }
}
