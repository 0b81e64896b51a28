// The distributor: who needs which config. It holds the current policy, the live inventory (every
// enrolled, unrevoked agent), each agent's current config with its generation and content hash, and
// the open WatchConfig streams. On every change it recompiles, and pushes a config only to agents
// whose content hash changed; an unchanged recompile pushes nothing. Generations are persisted
// (store.updateAgent) *before* a config is pushed: a restart never reuses one for other content.
import { create } from '@bufbuild/protobuf';
import type { Logger } from '../../lib/logger.js';
import type { Clock } from '../../lib/clock.js';
import { VERSION } from '../../lib/version.js';
import { AgentConfigSchema, type AgentConfig, type TraceReport } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { Store } from '../store/store.js';
import type { Inventory, Policy } from '../policy/types.js';
import { policyOfVersion } from '../policy/stored.js';
import type {
  AgentDiff,
  AgentLiveView,
  DistributionPort,
  DryRun,
  PairPathView,
  UnconfirmedView,
  UnservedView,
} from './port.js';
import { pathViews, unservedView } from './views.js';
import {
  compilePolicy,
  contentHash as contentHashOf,
  diffConfig,
  PolicyCompiler,
  type CompileOptions,
  type CompileResult,
} from '../policy/index.js';
import { emptyConfig, stamp, withHash, type Current } from './agent-config.js';
import { handoversBetween, type Handover, type ServingAssignment } from './handover.js';
import { knownOf, type Known } from './known-agent.js';
import { oldestSince, type CloseReason, type ConfigSink, type SinkEntry, type Subscription } from './sink.js';
import { LiveTraces } from './live-traces.js';
import type { LiveBox, LiveRequest } from '../trace/live-plan.js';

export type { CloseReason, ConfigSink, Subscription } from './sink.js';
export type { Handover, ServingAssignment } from './handover.js';

export interface DistributorOptions {
  store: Store;
  log: Logger;
  clock: Clock;
  /** Heartbeat interval for WatchConfig streams (default 10 s, at most 30 s). */
  heartbeatIntervalMs?: number;
  /** Options for controller/policy's compiler (keepalive, probe interval). */
  compileOptions?: CompileOptions;
  /** Called after a recompile that moved subnets to another agent (failover, fail-back, policy or
   *  inventory change). Not called for the first compile after start. */
  onHandover?: (handovers: readonly Handover[]) => void;
  /** A new policy version is current and compiled (here or synced from a replica; not at start). Must not throw. */
  onPolicyChange?: (version: number) => void;
}

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;
export const MAX_HEARTBEAT_INTERVAL_MS = 30_000;

export class Distributor implements DistributionPort {
  readonly heartbeatIntervalMs: number;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #compileOptions: CompileOptions;
  /** The live incremental compiler (update() rebuilds only the agents a change touches). */
  readonly #compiler: PolicyCompiler;
  /** The policy the live compiler last compiled; null before the first compile and after a failed one. */
  #compiledPolicy: Policy | null = null;
  #lastCompile: CompileResult | null = null;
  #policy: Policy | null = null;
  #policyVersion = 0;
  readonly #known = new Map<string, Known>();
  readonly #health = new Map<string, boolean>();
  readonly #pendingHealth = new Map<string, boolean>(); // for the queued #healthFlush (setAgentHealth)
  #healthFlush: Promise<void> | null = null;
  readonly #current = new Map<string, Current>();
  readonly #streams = new Map<string, Set<SinkEntry>>();
  #queue: Promise<unknown> = Promise.resolve();
  #isReady = false;
  #isStopped = false;
  #streamCount = 0;
  readonly #onHandover: DistributorOptions['onHandover'];
  readonly #onPolicyChange: DistributorOptions['onPolicyChange'];
  /** subnet -> serving agent after the last recompile; null before the first one. */
  #servedBy: Map<string, string> | null = null;
  /** Subnets served on their boxes' own choice (no candidate healthy) at the last recompile. */
  #unconfirmed: ReadonlySet<string> = new Set();
  /** `crosslink trace --live` in flight: requests go down the agents' open streams. */
  readonly #traces = new LiveTraces((name, request) => {
    let isSent = false;
    for (const e of this.#streams.get(name) ?? []) {
      if (!e.sink.trace) continue;
      e.sink.trace(request);
      isSent = true;
    }
    return isSent;
  });

  constructor(opts: DistributorOptions) {
    this.#onHandover = opts.onHandover;
    this.#onPolicyChange = opts.onPolicyChange;
    this.#store = opts.store;
    this.#log = opts.log.child({ component: 'distributor' });
    this.#clock = opts.clock;
    this.#compileOptions = opts.compileOptions ?? {};
    this.#compiler = new PolicyCompiler(this.#compileOptions);
    this.heartbeatIntervalMs = Math.min(
      MAX_HEARTBEAT_INTERVAL_MS,
      Math.max(1, opts.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS),
    );
  }

  /** Loads the current policy and the inventory from the store and compiles every config. */
  async start(): Promise<void> {
    await this.#serial(async () => {
      const [pv, agents] = await Promise.all([this.#store.currentValidatedPolicy(), this.#store.listAgents()]);
      for (const a of agents) if (a.revokedAtMs === null) this.#known.set(a.name, knownOf(a));
      let isPolicyOk = true;
      if (pv) {
        const r = await policyOfVersion(pv, VERSION, () => agents.map((a) => a.name));
        if (r.policy) {
          this.#policy = r.policy;
          this.#policyVersion = pv.version;
        } else {
          // The API validates before storing, so this means a bug or a hand-edited database.
          isPolicyOk = false;
          this.#log.error(
            { version: pv.version, errors: r.errors.slice(0, 5) },
            'stored policy does not validate; distributing without it',
          );
        }
      }
      await this.#recompile();
      this.#isReady = isPolicyOk;
      this.#log.info({ agents: this.#known.size, policyVersion: this.#policyVersion }, 'distribution started');
    });
  }

  /** Ends every stream (the server is going away). */
  async stop(): Promise<void> {
    this.#isStopped = true;
    await this.#queue.catch(() => undefined);
    for (const name of [...this.#streams.keys()]) this.#closeStreams(name, 'stopping');
    this.#isReady = false;
  }

  // ---- DistributionPort -------------------------------------------------------------------

  setPolicy(policy: Policy, version: number): Promise<void> {
    return this.#serial(async () => {
      // Replicas: another replica's newer version (LISTEN/NOTIFY) may be applied before this
      // replica's own older PUT reaches the queue; the newest version stays.
      if (version < this.#policyVersion) {
        this.#log.info({ version, current: this.#policyVersion }, 'older policy version not applied');
        return;
      }
      const isNewVersion = version !== this.#policyVersion;
      this.#policy = policy;
      this.#policyVersion = version;
      await this.#recompile();
      this.#isReady = true;
      if (isNewVersion) this.#onPolicyChange?.(version);
    });
  }

  agentsChanged(names: string[]): Promise<void> {
    return this.#serial(async () => {
      const unique = [...new Set(names)];
      const records = await Promise.all(unique.map((n) => this.#store.agentByName(n)));
      unique.forEach((name, i) => {
        const rec = records[i];
        const old = this.#known.get(name);
        if (!rec || rec.revokedAtMs !== null) {
          // Out of the inventory: every peer's next config drops it; its own streams end now.
          this.#known.delete(name);
          this.#current.delete(name);
          this.#health.delete(name);
          this.#closeStreams(name, rec ? 'revoked' : 'deleted');
          return;
        }
        if (old && old.credentialHash !== rec.credentialHash)
          this.#closeStreams(name, 'reenrolled', rec.credentialHash);
        this.#known.set(name, knownOf(rec));
      });
      await this.#recompile();
    });
  }

  async dryRun(candidate: Policy): Promise<DryRun> {
    await this.#queue.catch(() => undefined);
    const inventory = this.#inventory();
    // A throw-away compiler: a dry run must not disturb the live one's state.
    const r = compilePolicy(candidate, inventory, this.#compileOptions);
    const compiled = r.configs;
    const out: AgentDiff[] = [];
    for (const a of inventory.agents) {
      const next = withHash(compiled.get(a.name) ?? emptyConfig(a));
      const cur = this.#current.get(a.name);
      if (cur && cur.hash === next.contentHash) continue;
      const changes = diffConfig(cur?.config ?? create(AgentConfigSchema), next);
      if (changes.length > 0) out.push({ agent: a.name, changes, isConnected: this.liveView(a.name).isConnected });
    }
    return { agents: out, paths: pathViews(r.indirectPairs), unserved: r.unserved.map(unservedView) };
  }

  indirectPaths(): PairPathView[] {
    return this.#policy && this.#lastCompile ? pathViews(this.#lastCompile.indirectPairs) : [];
  }

  unservedSubnets(): UnservedView[] {
    return this.#policy && this.#lastCompile ? this.#lastCompile.unserved.map(unservedView) : [];
  }

  unconfirmedSubnets(): UnconfirmedView[] {
    const r = this.#policy ? this.#lastCompile : null;
    if (!r) return [];
    return r.unconfirmed.map((u) => ({
      subnet: u.subnet,
      candidates: [...(r.candidates.get(u.subnet) ?? [])],
      reason: u.reason,
    }));
  }

  currentPolicy(): { policy: Policy; version: number } | null {
    return this.#policy ? { policy: this.#policy, version: this.#policyVersion } : null;
  }

  servingAgent(subnet: string): string | null {
    return this.#servedBy?.get(subnet) ?? null;
  }

  liveView(name: string): AgentLiveView {
    const streams = this.#streams.get(name);
    const cur = this.#current.get(name);
    return {
      isConnected: (streams?.size ?? 0) > 0,
      connectedSinceMs: streams ? oldestSince(streams) : null,
      servedSubnets: cur ? cur.config.localSubnets.map((s) => s.name) : [],
      desiredGeneration: cur?.generation ?? 0,
      desiredHash: cur?.hash ?? '',
    };
  }

  currentConfig(name: string): AgentConfig | undefined {
    return this.#current.get(name)?.config;
  }

  isReady(): boolean {
    return this.#isReady;
  }

  /** Agents with at least one open stream. */
  connectedCount(): number {
    return this.#streams.size;
  }

  /** Agent -> since when it streams (its oldest open stream), for the other replicas. */
  connectedSince(): Map<string, number> {
    return new Map([...this.#streams].map(([name, set]) => [name, oldestSince(set)]));
  }

  runLiveTrace(requests: readonly LiveRequest[], windowMs: number): Promise<LiveBox[]> {
    return this.#traces.run(requests, windowMs);
  }

  liveTracesInFlight(): number {
    return this.#traces.inFlight;
  }

  // ---- for the RPC layer and health ---------------------------------------------------------

  /** Registers an open stream. The caller sends `current` first, then whatever `sink.push` gets. */
  subscribe(name: string, sink: ConfigSink): Subscription {
    if (this.#isStopped) {
      queueMicrotask(() => sink.close('stopping'));
      return { current: undefined, unsubscribe: () => undefined };
    }
    const known = this.#known.get(name);
    if (!known || known.credentialHash !== sink.credentialHash) {
      // Revoked, deleted or re-enrolled between the stream's authentication and now.
      queueMicrotask(() => sink.close(known ? 'reenrolled' : 'revoked'));
      return { current: undefined, unsubscribe: () => undefined };
    }
    const entry: SinkEntry = { sink, sinceMs: this.#clock.nowMs() };
    let set = this.#streams.get(name);
    if (!set) this.#streams.set(name, (set = new Set()));
    set.add(entry);
    this.#streamCount++;
    return {
      current: this.#current.get(name)?.config,
      unsubscribe: () => {
        const s = this.#streams.get(name);
        if (s?.delete(entry)) {
          this.#streamCount--;
          if (s.size === 0) this.#streams.delete(name);
        }
      },
    };
  }

  /** An agent's ReportTrace; false: no live trace in flight asked it for that id. */
  deliverTrace(name: string, report: TraceReport): boolean {
    return this.#traces.deliver(name, report);
  }

  /** Ends the agent's open streams now (e.g. the API revoked it and calls agentsChanged next). */
  disconnect(name: string, reason: CloseReason): void {
    this.#closeStreams(name, reason);
  }

  /** Open streams in total (an agent may briefly hold two while it reconnects). */
  streamCount(): number {
    return this.#streamCount;
  }

  /** The underlays the current policy declares; undefined with no policy or one that declares none. */
  declaredUnderlays(): string[] | undefined {
    const names = this.#policy?.underlays.map((u) => u.name) ?? [];
    return names.length > 0 ? names : undefined;
  }

  policyVersion(): number {
    return this.#policyVersion;
  }

  /** Names of the enrolled, unrevoked agents it distributes to. */
  knownAgentNames(): string[] {
    return [...this.#known.keys()];
  }

  /**
   * Every (subnet, candidate agent) pair of the current policy, sorted by subnet then `via` order,
   * with whether that agent serves the subnet now. Feeds `crosslink_agent_serving`.
   */
  servingAssignments(): ServingAssignment[] {
    const out: ServingAssignment[] = [];
    if (!this.#policy) return out;
    const served = this.#servedMap();
    for (const s of [...this.#policy.subnets].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      s.via.forEach((agent, i) => {
        if (!this.#known.has(agent)) return;
        out.push({
          subnet: s.name,
          agent,
          role: i === 0 ? 'primary' : 'standby',
          isServing: served.get(s.name) === agent,
        });
      });
    }
    return out;
  }

  /**
   * Forwarding health of an agent (serving health: probes, silence, hold-down); an unhealthy agent
   * stops serving its subnets, so the next healthy agent in `via` takes over. Changes made before the
   * queued recompile runs share it: thousands flipped at once cost one compile, not one per agent.
   */
  setAgentHealth(name: string, isHealthy: boolean): Promise<void> {
    if ((this.#pendingHealth.get(name) ?? this.#health.get(name) ?? true) === isHealthy)
      return this.#healthFlush ?? Promise.resolve();
    this.#pendingHealth.set(name, isHealthy);
    this.#healthFlush ??= this.#serial(async () => {
      this.#healthFlush = null;
      for (const [agent, healthy] of this.#pendingHealth) if (this.#known.has(agent)) this.#health.set(agent, healthy);
      this.#pendingHealth.clear();
      await this.#recompile();
    });
    return this.#healthFlush;
  }

  // ---- internals ---------------------------------------------------------------------------

  /** Runs changes one at a time, in call order, so compiles and pushes never interleave. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.catch(() => undefined).then(fn);
    this.#queue = run;
    return run;
  }

  #inventory(): Inventory {
    const agents = [...this.#known.values()].map((k) => ({
      ...k.inventory,
      isHealthy: this.#health.get(k.inventory.name) ?? true,
    }));
    agents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { agents };
  }

  async #recompile(): Promise<void> {
    const startedMs = this.#clock.nowMs();
    const inventory = this.#inventory();
    const compiled = this.#policy ? this.#compileLive(this.#policy, inventory).configs : new Map<string, AgentConfig>();
    const compiledMs = this.#clock.nowMs();
    const changed: { name: string; config: AgentConfig; generation: number; hash: string }[] = [];
    for (const a of inventory.agents) {
      const raw = compiled.get(a.name) ?? emptyConfig(a);
      const hash = raw.contentHash || contentHashOf(raw);
      const cur = this.#current.get(a.name);
      const known = this.#known.get(a.name)!;
      if (cur?.hash === hash) continue;
      if (!cur && known.persistedHash === hash && known.persistedGeneration > 0) {
        // Same content as before a restart (or before re-enrolment): keep its generation, push nothing new.
        const generation = known.persistedGeneration;
        this.#current.set(a.name, { config: stamp(raw, generation, hash), generation, hash });
        continue;
      }
      const generation = Math.max(cur?.generation ?? 0, known.persistedGeneration) + 1;
      changed.push({ name: a.name, config: raw, generation, hash });
    }
    if (changed.length === 0) {
      this.#log.debug(
        { agents: inventory.agents.length, ms: this.#clock.nowMs() - startedMs },
        'recompiled; nothing changed',
      );
      this.#noteHandovers();
      return;
    }
    // Persist first: a pushed generation must survive a restart.
    await this.#store.setDesiredGenerations(
      changed.map((c) => ({ name: c.name, generation: c.generation, hash: c.hash })),
    );
    const persistedMs = this.#clock.nowMs();
    let pushed = 0;
    for (const c of changed) {
      const known = this.#known.get(c.name);
      if (!known) continue; // removed while we were persisting (cannot happen while serialised, kept for safety)
      known.persistedGeneration = c.generation;
      known.persistedHash = c.hash;
      const config = stamp(c.config, c.generation, c.hash);
      this.#current.set(c.name, { config, generation: c.generation, hash: c.hash });
      for (const s of this.#streams.get(c.name) ?? []) {
        s.sink.push(config);
        pushed++;
      }
    }
    const ms = (from: number, to = this.#clock.nowMs()) => to - from; // compile or persist: which to make faster?
    const times = { ms: ms(startedMs), compileMs: ms(startedMs, compiledMs), persistMs: ms(compiledMs, persistedMs) };
    const counts = { agents: inventory.agents.length, changed: changed.length, pushed };
    this.#log.info({ ...counts, ...times }, 'distributed changed configs');
    this.#noteHandovers();
  }

  /** Who serves each subnet now: the box whose config carries it, or, in a serving group (where
   *  every candidate carries it), the candidate the controller puts first. */
  #servedMap(): Map<string, string> {
    const served = new Map<string, string>();
    for (const [agent, cur] of this.#current) {
      for (const l of cur.config.localSubnets) {
        const group = cur.config.servingGroups.find((g) => g.subnets.includes(l.name));
        if (!group || group.candidates[0] === agent) served.set(l.name, agent);
      }
    }
    return served;
  }

  /** Compares who serves what with the previous recompile and tells `onHandover` about moves. */
  #noteHandovers(): void {
    const now = this.#servedMap();
    const before = this.#servedBy;
    this.#servedBy = now;
    const unconfirmed = { before: this.#unconfirmed, now: new Set(this.unconfirmedSubnets().map((u) => u.subnet)) };
    this.#unconfirmed = unconfirmed.now;
    if (before === null || !this.#onHandover) return;
    const handovers = handoversBetween(before, now, this.#policy, this.#health, unconfirmed);
    if (handovers.length === 0) return;
    this.#log.warn({ handovers }, 'subnets changed hands');
    try {
      this.#onHandover(handovers);
    } catch (err) {
      this.#log.error({ err }, 'handover listener failed');
    }
  }

  #closeStreams(name: string, reason: CloseReason, keepCredentialHash?: string): void {
    const set = this.#streams.get(name);
    if (!set) return;
    for (const e of [...set]) {
      if (keepCredentialHash !== undefined && e.sink.credentialHash === keepCredentialHash) continue;
      set.delete(e);
      this.#streamCount--;
      e.sink.close(reason);
    }
    if (set.size === 0) this.#streams.delete(name);
  }

  /** The first call, and the call after a failed one, compile from scratch; later ones are
   *  incremental (the compiler works out itself what changed). */
  #compileLive(policy: Policy, inventory: Inventory): CompileResult {
    const previous = this.#compiledPolicy;
    this.#compiledPolicy = null;
    const r =
      previous === null
        ? this.#compiler.compile(policy, inventory)
        : this.#compiler.update(previous === policy ? { inventory } : { policy, inventory });
    this.#compiledPolicy = policy;
    this.#lastCompile = r;
    return r;
  }
}
