// The history of health state changes ("link a:b was down from 10:02 to 10:09").
//
// `HealthHistoryPort` is the seam for persistence: the monitor only appends events and queries them.
// `HealthHistory` keeps the newest `capacity` events in memory (a ring), so it is lost on restart.
// A persistent adapter (e.g. a `health_events` table behind the Store) implements the same port:
// `append` must not block evaluation (queue the write and log failures; the monitor does not await
// it), and `query` may be async. Events arrive in time order, so an append-only table indexed by
// (subject, at_ms) and a retention job replace the ring.
import type { HealthEvent, HealthSubjectKind } from './types.js';

export interface HealthHistoryQuery {
  /** Exact subject ("link:a:b", "agent:x", "probe:x/rule/0", "overall"). Absent: all. */
  subject?: string;
  /** Only this kind of subject. */
  kind?: HealthSubjectKind;
  /** Events at or after this time (ms). */
  sinceMs?: number;
  /** Events before this time (ms). */
  untilMs?: number;
  /** At most this many, the newest ones (returned oldest first). Default 1000. */
  limit?: number;
}

export interface HealthHistoryPort {
  append(events: readonly HealthEvent[]): void;
  /** Matching events, oldest first. */
  query(q: HealthHistoryQuery): HealthEvent[] | Promise<HealthEvent[]>;
}

export const DEFAULT_HISTORY_CAPACITY = 10_000;
export const DEFAULT_QUERY_LIMIT = 1000;

export class HealthHistory implements HealthHistoryPort {
  private readonly ring: (HealthEvent | undefined)[];
  /** Index the next event is written to. */
  private next = 0;
  private size = 0;

  constructor(readonly capacity: number = DEFAULT_HISTORY_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`history capacity must be a positive integer, got ${capacity}`);
    this.ring = new Array<HealthEvent | undefined>(capacity);
  }

  append(events: readonly HealthEvent[]): void {
    for (const e of events) {
      this.ring[this.next] = e;
      this.next = (this.next + 1) % this.capacity;
      if (this.size < this.capacity) this.size += 1;
    }
  }

  get length(): number {
    return this.size;
  }

  query(q: HealthHistoryQuery = {}): HealthEvent[] {
    const limit = Math.max(0, q.limit ?? DEFAULT_QUERY_LIMIT);
    const out: HealthEvent[] = [];
    // Walk newest to oldest so the limit keeps the newest; stop early once past `sinceMs`
    // (events are appended in time order).
    for (let i = 0; i < this.size && out.length < limit; i++) {
      const e = this.ring[(this.next - 1 - i + this.capacity) % this.capacity] as HealthEvent;
      if (q.sinceMs !== undefined && e.atMs < q.sinceMs) break;
      if (q.untilMs !== undefined && e.atMs >= q.untilMs) continue;
      if (q.subject !== undefined && e.subject !== q.subject) continue;
      if (q.kind !== undefined && e.kind !== q.kind) continue;
      out.push(e);
    }
    return out.reverse();
  }
}
