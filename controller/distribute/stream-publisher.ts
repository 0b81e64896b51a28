// Tells the other replicas which agents stream from this one (controller/store/stream-store.ts):
// about once a second, what changed since the last publish, with this replica's heartbeat. A
// failed publish is retried whole at the next tick (nothing is marked sent until it commits).
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { StreamStore } from '../store/stream-store.js';

const STREAM_PUBLISH_INTERVAL_MS = 1000;

export class StreamPublisher {
  readonly #store: StreamStore;
  readonly #replica: string;
  readonly #connected: () => ReadonlyMap<string, number>;
  readonly #clock: Clock;
  readonly #log: Logger;
  /** What the store holds for this replica: agent -> since. */
  #sent = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;
  #inFlight: Promise<void> | null = null;
  #isFailing = false;

  constructor(opts: {
    store: StreamStore;
    replica: string;
    /** Agent -> since when it streams from this replica. */
    connected: () => ReadonlyMap<string, number>;
    clock: Clock;
    log: Logger;
  }) {
    this.#store = opts.store;
    this.#replica = opts.replica;
    this.#connected = opts.connected;
    this.#clock = opts.clock;
    this.#log = opts.log.child({ component: 'stream-publisher' });
  }

  start(intervalMs = STREAM_PUBLISH_INTERVAL_MS): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.tick(), intervalMs);
    this.#timer.unref();
    void this.tick();
  }

  /** Publishes what changed since the last publish (and the heartbeat); one at a time. */
  tick(): Promise<void> {
    this.#inFlight ??= this.#publish().finally(() => {
      this.#inFlight = null;
    });
    return this.#inFlight;
  }

  /** Stops publishing and removes this replica's rows: its agents are leaving with it. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#inFlight;
    await this.#store.forget({ replica: this.#replica }).catch(() => undefined);
  }

  async #publish(): Promise<void> {
    const now = this.#connected();
    const up: Array<{ agent: string; sinceMs: number }> = [];
    for (const [agent, sinceMs] of now) if (this.#sent.get(agent) !== sinceMs) up.push({ agent, sinceMs });
    const down = [...this.#sent.keys()].filter((agent) => !now.has(agent));
    try {
      await this.#store.publish(this.#replica, { up, down }, this.#clock.nowMs());
    } catch (err) {
      if (!this.#isFailing) this.#log.warn({ err }, 'could not publish which agents stream from here; retrying');
      this.#isFailing = true;
      return;
    }
    if (this.#isFailing) this.#log.info('publishing which agents stream from here again');
    this.#isFailing = false;
    this.#sent = new Map(now);
  }
}
