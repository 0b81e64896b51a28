// RoutePort over `ip -json route show proto 147` (both families) and `ip -force -batch FILE`.
// Only routes marked with CROSSLINK_RT_PROTO are read or deleted; an add that collides with
// someone else's route fails rather than replacing it.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostCommandError } from '../../../lib/errors.js';
import { canonicalPrefix, sortByPrefix } from '../canonical.js';
import { CROSSLINK_RT_PROTO, type RoutePort } from '../ports.js';
import type { RouteChanges, RouteObserved } from '../../reconcile/host-state.js';
import { MonitoredCache, type NetlinkMonitor } from './monitor.js';
import type { CommandRunner } from './run.js';

const PROTO = String(CROSSLINK_RT_PROTO);

export function parseIpRouteJson(stdout: string, family: 4 | 6): RouteObserved[] {
  const list = JSON.parse(stdout || '[]') as Array<{ dst: string; dev?: string }>;
  return list
    .filter((r) => r.dev !== undefined)
    .map((r) => ({
      prefix: canonicalPrefix(r.dst === 'default' ? (family === 4 ? '0.0.0.0/0' : '::/0') : r.dst),
      dev: r.dev!,
    }));
}

/** A change set canonical, with the prefixes that only change device marked as replaced (their
 *  delete is dropped: `route replace` moves them). */
function normalise(changes: RouteChanges): { add: RouteObserved[]; del: RouteObserved[]; replaced: Set<string> } {
  const add = changes.add.map((r) => ({ prefix: canonicalPrefix(r.prefix), dev: r.dev }));
  const allDel = changes.del.map((r) => ({ prefix: canonicalPrefix(r.prefix), dev: r.dev }));
  const delPrefixes = new Set(allDel.map((d) => d.prefix));
  const replaced = new Set(add.filter((a) => delPrefixes.has(a.prefix)).map((a) => a.prefix));
  return { add, del: allDel.filter((d) => !replaced.has(d.prefix)), replaced };
}

/** A change set made ready to run: normalised, its batch text, and the route events it causes
 *  (a replace prints only the new route). */
interface PreparedBatch extends ReturnType<typeof normalise> {
  input: string;
  events: string[];
}

function prepareBatch(changes: RouteChanges): PreparedBatch {
  const norm = normalise(changes);
  return {
    ...norm,
    input: batchOf(norm),
    events: [...norm.add.map((r) => `+${r.prefix} ${r.dev}`), ...norm.del.map((r) => `-${r.prefix} ${r.dev}`)],
  };
}

function batchOf({ add, del, replaced }: ReturnType<typeof normalise>): string {
  const lines: string[] = [];
  for (const r of sortByPrefix(
    add,
    (x) => x.prefix,
    (x) => x.dev,
  )) {
    lines.push(`route ${replaced.has(r.prefix) ? 'replace' : 'add'} ${r.prefix} dev ${r.dev} proto ${PROTO}`);
  }
  for (const r of sortByPrefix(
    del,
    (x) => x.prefix,
    (x) => x.dev,
  ))
    lines.push(`route del ${r.prefix} dev ${r.dev} proto ${PROTO}`);
  return lines.length > 0 ? lines.join('\n') + '\n' : '';
}

/** The `ip -batch` lines for a change set: replaces (prefix changes device) and adds before
 *  deletes, so the box is never left without a route it should have. */
export function routeBatch(changes: RouteChanges): string {
  return batchOf(normalise(changes));
}

export class LinuxRoutes implements RoutePort {
  private readonly cache: MonitoredCache<RouteObserved[]>;
  /** prepare()'s work, by the change set it was done for (see RoutePort.prepare). */
  private readonly prepared = new WeakMap<RouteChanges, PreparedBatch>();

  /** With `monitor`, observe() lists nothing while the monitor saw no change (see monitor.ts). */
  constructor(
    private readonly opts: { runner: CommandRunner; netns?: string; monitor?: NetlinkMonitor; tempDir?: string },
  ) {
    this.cache = new MonitoredCache(opts.monitor);
  }

  async observe(): Promise<RouteObserved[]> {
    return [...(await this.cache.get(() => this.list()))];
  }

  private async list(): Promise<RouteObserved[]> {
    const { runner, netns } = this.opts;
    const [v4, v6] = await Promise.all([
      runner.run(['ip', '-json', 'route', 'show', 'table', 'main', 'proto', PROTO], { netns }),
      runner.run(['ip', '-json', '-6', 'route', 'show', 'table', 'main', 'proto', PROTO], { netns }),
    ]);
    const all = [...parseIpRouteJson(v4.stdout, 4), ...parseIpRouteJson(v6.stdout, 6)];
    return sortByPrefix(
      all,
      (r) => r.prefix,
      (r) => r.dev,
    );
  }

  prepare(changes: RouteChanges): void {
    if (!this.prepared.has(changes)) this.prepared.set(changes, prepareBatch(changes));
  }

  async apply(changes: RouteChanges): Promise<void> {
    const { add, del, replaced, input, events } = this.prepared.get(changes) ?? prepareBatch(changes);
    this.prepared.delete(changes);
    if (input === '') return;
    const argv = ['ip', '-force', '-batch'];
    const monitor = this.opts.monitor;
    // The events this batch causes: they are ours, not drift.
    monitor?.expect(events);
    // -force: a failing line (a route already there, or already gone) does not stop the others.
    // From a file, not stdin: through a pipe, `ip` waits for the agent's event loop to feed it
    // (5,000 routes took 2-3x as long while the loop was busy with the WireGuard peers).
    const dir = mkdtempSync(join(this.opts.tempDir ?? tmpdir(), 'xl-routes-'));
    const file = join(dir, 'routes.batch');
    argv.push(file);
    let r;
    try {
      writeFileSync(file, input, { mode: 0o600 });
      r = await this.opts.runner.run(argv, { netns: this.opts.netns, allowFailure: true });
    } catch (e) {
      monitor?.cancelExpected();
      throw e;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    if (r.exitCode === 0) {
      const keyOf = (x: RouteObserved) => `${x.prefix} ${x.dev}`;
      this.cache.patch((routes) => {
        const gone = new Set(del.map(keyOf));
        const kept = routes.filter((o) => !gone.has(keyOf(o)) && !replaced.has(o.prefix));
        const have = new Set(kept.map(keyOf));
        return sortByPrefix(
          [...kept, ...add.filter((a) => !have.has(keyOf(a)))],
          (x) => x.prefix,
          (x) => x.dev,
        );
      });
      return;
    }
    monitor?.cancelExpected();
    // Judge by the end state: re-adding a route that is there or deleting one that is gone is fine.
    const own = await this.list();
    const has = (x: RouteObserved) => own.some((o) => o.prefix === x.prefix && o.dev === x.dev);
    const isDone = add.every(has) && del.every((d) => !has(d));
    if (!isDone) throw new HostCommandError(argv, r.exitCode, r.stderr);
  }
}
