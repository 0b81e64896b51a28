// The fake host's routing table: every owner's routes, and Crosslink's applied like `ip -force -batch -`.
import { canonicalPrefix, sortByPrefix } from './canonical.js';
import { CROSSLINK_RT_PROTO } from './ports.js';
import type { RouteObserved } from '../reconcile/host-state.js';
import { fakeCommandError } from './fake-ops.js';

export interface FakeRoute {
  prefix: string;
  dev: string;
  proto: number;
}

export class FakeRouteTable {
  private routeTable: FakeRoute[] = [];

  /** Crosslink's routes only (what routes.observe returns). */
  own(): RouteObserved[] {
    const own = this.routeTable
      .filter((r) => r.proto === CROSSLINK_RT_PROTO)
      .map((r) => ({ prefix: r.prefix, dev: r.dev }));
    return sortByPrefix(
      own,
      (r) => r.prefix,
      (r) => r.dev,
    );
  }

  /** Every route with its protocol, including other owners' (what `ip route show` would list). */
  all(): FakeRoute[] {
    return sortByPrefix(
      this.routeTable.map((r) => ({ ...r })),
      (r) => r.prefix,
      (r) => `${r.dev}/${r.proto}`,
    );
  }

  /** A route someone else made (another protocol number). */
  addForeign(prefix: string, dev: string, proto: number): void {
    this.routeTable.push({ prefix: canonicalPrefix(prefix), dev, proto });
  }

  /** The routes through a link go when it does, as in the kernel. */
  deleteDev(dev: string): void {
    this.routeTable = this.routeTable.filter((r) => r.dev !== dev);
  }

  deletePrefix(prefix: string): void {
    const p = canonicalPrefix(prefix);
    this.routeTable = this.routeTable.filter((r) => r.prefix !== p);
  }

  apply(changes: { add: RouteObserved[]; del: RouteObserved[] }, hasLink: (dev: string) => boolean): void {
    const add = changes.add.map((r) => ({ prefix: canonicalPrefix(r.prefix), dev: r.dev }));
    const del = changes.del.map((r) => ({ prefix: canonicalPrefix(r.prefix), dev: r.dev }));
    const replaced = new Set(add.map((r) => r.prefix).filter((p) => del.some((d) => d.prefix === p)));
    const errors: string[] = [];
    // Same order and semantics as `ip -force -batch -`: replaces and adds first, then deletes;
    // a failing line does not stop the others.
    for (const r of add) {
      if (!hasLink(r.dev)) {
        errors.push(`Cannot find device "${r.dev}"`);
        continue;
      }
      const same = this.routeTable.filter((x) => x.prefix === r.prefix);
      if (replaced.has(r.prefix)) {
        const foreign = same.find((x) => x.proto !== CROSSLINK_RT_PROTO);
        if (foreign) {
          errors.push('RTNETLINK answers: File exists');
          continue;
        }
        this.routeTable = this.routeTable.filter((x) => x.prefix !== r.prefix);
        this.routeTable.push({ ...r, proto: CROSSLINK_RT_PROTO });
      } else if (same.length > 0) {
        errors.push('RTNETLINK answers: File exists');
      } else {
        this.routeTable.push({ ...r, proto: CROSSLINK_RT_PROTO });
      }
    }
    for (const r of del) {
      if (replaced.has(r.prefix)) continue;
      const i = this.routeTable.findIndex(
        (x) => x.prefix === r.prefix && x.dev === r.dev && x.proto === CROSSLINK_RT_PROTO,
      );
      if (i < 0) errors.push('RTNETLINK answers: No such process');
      else this.routeTable.splice(i, 1);
    }
    // Success means the end state was reached (re-adding a route that is there, or deleting one
    // that is gone, is not a failure).
    const own = this.own();
    const isDone =
      add.every((r) => own.some((o) => o.prefix === r.prefix && o.dev === r.dev)) &&
      del
        .filter((r) => !replaced.has(r.prefix))
        .every((r) => !own.some((o) => o.prefix === r.prefix && o.dev === r.dev));
    if (!isDone) throw fakeCommandError('routes.apply', errors.join('\n'));
  }
}
