// Keeps this replica's distributor in step with writes made through the other replicas sharing the
// PostgreSQL database. A change notice (controller/store/changes.ts) names what changed; the replica
// re-reads it from the database and hands it to its own distributor, which recompiles and pushes to
// the agents streaming from this replica only. Notices are handled one at a time, in arrival order.
import type { Logger } from '../../lib/logger.js';
import { VERSION } from '../../lib/version.js';
import { policyOfVersion } from '../policy/stored.js';
import { parseChangeNotice } from '../store/changes.js';
import type { Store } from '../store/store.js';

/** The part of the Distributor this needs. */
export interface SyncTarget {
  policyVersion(): number;
  setPolicy: import('./port.js').DistributionPort['setPolicy'];
  agentsChanged(names: string[]): Promise<void>;
  knownAgentNames(): string[];
  setAgentHealth(name: string, isHealthy: boolean): Promise<void>;
}

export class ReplicaSync {
  readonly #store: Store;
  readonly #target: SyncTarget;
  readonly #log: Logger;
  readonly #origin: string;
  /** The leader stored a health evaluation (read outside the queue: it touches no distributor). */
  onHealth: () => void = () => undefined;
  #queue: Promise<void> = Promise.resolve();
  /** Notices applied from other replicas (for tests and logs). */
  applied = 0;

  constructor(opts: { store: Store; target: SyncTarget; log: Logger; origin: string }) {
    this.#store = opts.store;
    this.#target = opts.target;
    this.#log = opts.log.child({ component: 'replica-sync' });
    this.#origin = opts.origin;
  }

  /** A NOTIFY payload arrived. */
  notice(payload: string | undefined): void {
    const n = parseChangeNotice(payload);
    if (!n) {
      this.#log.warn({ payload: payload?.slice(0, 200) }, 'ignoring a change notice it cannot read');
      return;
    }
    if (n.origin === this.#origin) return; // our own write: already applied by the code that made it
    if (n.kind === 'health') {
      this.onHealth();
      return;
    }
    const arrivedMs = performance.now();
    void this.#enqueue(async () => {
      if (n.kind === 'policy') await this.#reloadPolicy(arrivedMs);
      else if (n.kind === 'agents') await this.#target.agentsChanged(n.names);
      // All at once: the distributor applies them with one recompile.
      else await Promise.all(n.agents.map(([name, isHealthy]) => this.#target.setAgentHealth(name, isHealthy)));
      this.applied++;
    });
  }

  /** After (re)connecting the listener: notices may have been missed, so re-read everything. */
  resync(): Promise<void> {
    return this.#enqueue(async () => {
      const stored = (await this.#store.listAgents()).map((a) => a.name);
      await this.#target.agentsChanged([...new Set([...stored, ...this.#target.knownAgentNames()])]);
      await this.#reloadPolicy();
    });
  }

  /** Resolves when every notice received so far is applied. */
  idle(): Promise<void> {
    return this.#queue;
  }

  #enqueue(fn: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(fn).catch((err: unknown) => {
      // The next notice or resync re-reads from the database, so one failure is not lasting.
      this.#log.error({ err }, 'applying a change from another replica failed');
    });
    this.#queue = run;
    return run;
  }

  async #reloadPolicy(arrivedMs?: number): Promise<void> {
    const startedMs = performance.now();
    const pv = await this.#store.currentValidatedPolicy();
    if (!pv || pv.version <= this.#target.policyVersion()) return;
    const readMs = performance.now() - startedMs;
    const r = await policyOfVersion(pv, VERSION, async () => (await this.#store.listAgents()).map((a) => a.name));
    const parseMs = performance.now() - startedMs - readMs; // with the agents read, when it parsed
    if (!r.policy) {
      this.#log.error({ version: pv.version, errors: r.errors.slice(0, 5) }, 'stored policy does not validate');
      return;
    }
    await this.#target.setPolicy(r.policy, pv.version);
    // read + parse + the distributor's recompile: how long after the other replica's commit its agents here hear.
    const ms = {
      queuedMs: arrivedMs === undefined ? 0 : Math.round(startedMs - arrivedMs),
      readMs: Math.round(readMs),
      parseMs: Math.round(parseMs),
      ms: Math.round(performance.now() - startedMs),
    };
    this.#log.info({ version: pv.version, isParsed: r.isParsed, ...ms }, 'policy applied by another replica');
  }
}
