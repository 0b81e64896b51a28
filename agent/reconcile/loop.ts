// The reconcile loop: observe the host -> plan -> apply, on every new config, on a periodic resync,
// on demand (host events) and, after a failure, on a backoff retry. Level-based: every run starts
// from what the host really looks like, so a missed event or a half-applied run heals by itself.
import type { Logger } from 'pino';
import { Backoff, type BackoffOptions } from '../../lib/backoff.js';
import type { Clock } from '../../lib/clock.js';
import { realTimers, type Timers } from '../../lib/timers.js';
import { isCrosslinkError } from '../../lib/errors.js';
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { viewKey, type FailoverPlan, type FailoverView } from '../failover/groups.js';
import type { Host } from '../host/ports.js';
import { StaleFlows } from './stale-flows.js';
import {
  desiredState,
  withFailover,
  InvalidConfigError,
  type AgentSettings,
  type DesiredState,
  type FirewallRenderer,
} from './desired.js';
import { describeStep, plan, type FirewallRecord, type ObservedState, type Step } from './plan.js';
import { RunPrep, stepName, stepPhases, toFailure, type ApplyFailure } from './phases.js';
import { HostReader, type HostReading } from './reading.js';
import { memoizeFirewallRenderer } from './render-memo.js';

export { stepPhases, toFailure, type ApplyFailure };
export { realTimers, type Timers };

export interface ApplyOutcome {
  generation: bigint;
  contentHash: string;
  trigger: string;
  steps: Step[];
  errors: ApplyFailure[];
  atMs: number;
  durationMs: number;
}

export interface ReconcilerStatus {
  /** Highest generation received, valid or not. 0n: none. */
  generationSeen: bigint;
  /** Generation of the config last applied completely. 0n: none. */
  generationApplied: bigint;
  /** Generation currently enforced (may be above generationApplied while failing). */
  generationDesired: bigint;
  contentHashApplied: string;
  lastApplyAtMs: number | null;
  lastApplyDurationMs: number | null;
  lastStepCount: number;
  /** Failures of the last run plus a terminal config error, if the newest config was invalid. */
  errors: ApplyFailure[];
  consecutiveFailures: number;
  nextRetryAtMs: number | null;
  runsTotal: number;
  applyErrorsTotal: number;
}

export interface ReconcilerOptions {
  host: Host;
  clock: Clock;
  log: Logger;
  settings: AgentSettings;
  renderFirewall: FirewallRenderer;
  /** Periodic resync; drift is put right within this interval. Default 10 s. */
  resyncIntervalMs?: number;
  /** Retry after a failed run. Default 1 s doubling up to 60 s, half jitter. */
  retryBackoff?: BackoffOptions;
  random?: () => number;
  timers?: Timers;
}

export const DEFAULT_RESYNC_INTERVAL_MS = 10_000;

export class Reconciler {
  private readonly host: Host;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly settings: AgentSettings;
  private readonly renderFirewall: FirewallRenderer;
  private readonly resyncIntervalMs: number;
  private readonly backoff: Backoff;
  private readonly timers: Timers;
  private readonly listeners: Array<(o: ApplyOutcome) => void> = [];

  /** The config's desired state, before the failover view is applied. */
  private base: DesiredState | null = null;
  /** What the edge failover decided (agent/failover/); null until it first decides. */
  private failoverView: FailoverView | null = null;
  /** `base` under `failoverView`: what runs enforce. */
  private desired: DesiredState | null = null;
  /** Gateway addresses of every desired state seen (the saved one at start included). */
  private readonly knownGateways = new Set<string>();
  private isGatewayClaimAllowed = false;
  private firewallRecord: FirewallRecord | null = null;
  /** The relay forwards of the last firewall this agent installed; null: none since start. */
  private readonly staleFlows: StaleFlows;
  private configErrors: ApplyFailure[] = [];
  private lastRunErrors: ApplyFailure[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private isRunning = false;
  /** Reads the host, also ahead of a run (reading.ts). */
  private readonly reader: HostReader;
  private queued: Promise<ApplyOutcome | null> | null = null;
  private timer: unknown = null;
  private isStarted = false;
  private readonly st = {
    generationSeen: 0n,
    generationApplied: 0n,
    contentHashApplied: '',
    lastApplyAtMs: null as number | null,
    lastApplyDurationMs: null as number | null,
    lastStepCount: 0,
    consecutiveFailures: 0,
    nextRetryAtMs: null as number | null,
    runsTotal: 0,
    applyErrorsTotal: 0,
  };

  constructor(opts: ReconcilerOptions) {
    this.host = opts.host;
    this.clock = opts.clock;
    this.log = opts.log;
    this.settings = opts.settings;
    this.reader = new HostReader(opts.host, opts.settings.interfaceName, this.knownGateways);
    this.staleFlows = new StaleFlows(opts.host.conntrack);
    // A new config usually carries the same firewall: don't render 10,000 tuples again.
    this.renderFirewall = memoizeFirewallRenderer(opts.renderFirewall);
    this.resyncIntervalMs = opts.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS;
    this.backoff = new Backoff(opts.retryBackoff ?? { initialMs: 1_000, maxMs: 60_000, jitter: 0.5 }, opts.random);
    this.timers = opts.timers ?? realTimers;
  }

  /**
   * Takes a new config. Returns whether it changed what is enforced; an invalid config is kept out
   * (the previous one stays enforced), reported as a terminal error and never retried.
   */
  setDesired(config: AgentConfig): { isChanged: boolean; error?: InvalidConfigError } {
    if (config.generation > this.st.generationSeen) this.st.generationSeen = config.generation;
    // The same content again (e.g. re-sent on reconnect) needs no run, and no reading.
    if (config.contentHash === '' || config.contentHash !== this.desired?.contentHash) this.startEarly();
    let next: DesiredState;
    try {
      next = desiredState(config, this.settings, this.renderFirewall);
    } catch (e) {
      if (!(e instanceof InvalidConfigError)) throw e;
      this.configErrors = [
        { step: 'config', command: '', exitCode: -1, stderr: e.message, isTerminal: true, message: e.message },
      ];
      this.log.error(
        { generation: String(config.generation), details: e.details },
        'config is invalid; keeping the previous one',
      );
      this.reader.dropEarly(); // no run comes of it
      return { isChanged: false, error: e };
    }
    this.configErrors = [];
    const prev = this.base;
    this.base = next;
    this.desired = withFailover(next, this.failoverView);
    for (const g of this.desired.gateways ?? []) this.knownGateways.add(g);
    // A group's gateways are this box's to add or remove too (once the failover view decides).
    for (const g of next.failover?.groups ?? []) for (const gw of g.gateways) this.knownGateways.add(gw);
    const isSameFirewall = prev?.firewall.hash === next.firewall.hash; // a new clock skew changes it
    if (prev && isSameFirewall && prev.contentHash === next.contentHash && prev.contentHash !== '') {
      // Same content under a new generation: nothing to do on the host.
      if (this.lastRunErrors.length === 0 && this.st.contentHashApplied === next.contentHash && this.isSettled())
        this.st.generationApplied = next.generation;
      this.reader.dropEarly(); // no run comes of it
      return { isChanged: false };
    }
    this.backoff.reset();
    if (this.isStarted) this.kick();
    return { isChanged: true };
  }

  /**
   * From now on, add and remove virtual gateway addresses. Until this is called (the controller
   * confirmed a config, or has been unreachable for long), gateway addresses are left as they are:
   * a box restarting with a saved config must not take a gateway its standby holds now.
   */
  allowGatewayClaim(): void {
    if (this.isGatewayClaimAllowed) return;
    this.isGatewayClaimAllowed = true;
    if (this.isStarted) this.kick();
  }

  /** The config being enforced, as a desired state (null before the first valid config). */
  get desiredState(): DesiredState | null {
    return this.desired;
  }

  /** The config's serving groups (agent/failover/engine.ts reads them); undefined without any. */
  get failoverPlan(): FailoverPlan | undefined {
    return this.base?.failover;
  }

  /**
   * Takes the edge failover's decision (agent/failover/engine.ts): which candidate carries each
   * group this box sends to, and which groups' gateways it holds. A run follows when it changes
   * what is enforced. Before the first view, the groups' gateways are left as they are.
   */
  setFailoverView(view: FailoverView): boolean {
    const plan = this.base?.failover;
    if (this.failoverView !== null && plan && viewKey(plan, view) === viewKey(plan, this.failoverView)) {
      this.failoverView = view;
      return false;
    }
    this.failoverView = view;
    if (!this.base) return false;
    this.desired = withFailover(this.base, view);
    for (const g of this.desired.gateways ?? []) this.knownGateways.add(g);
    if (this.isStarted) this.kick();
    return true;
  }

  onApply(listener: (o: ApplyOutcome) => void): void {
    this.listeners.push(listener);
  }

  /** Starts the periodic resync and runs once now. */
  start(): void {
    this.isStarted = true;
    this.kick();
  }

  /** Stops scheduling and waits for a run in progress. The data plane is left as it is. */
  async stop(): Promise<void> {
    this.isStarted = false;
    this.clearTimer();
    await this.chain;
  }

  /** Asks for a run soon (host event, new config). Coalesces with a run already queued. */
  kick(): void {
    void this.reconcile('kick');
  }

  /**
   * Runs observe -> plan -> apply once, after any run in progress. Concurrent callers share one
   * queued run.
   */
  reconcile(trigger = 'manual'): Promise<ApplyOutcome | null> {
    if (this.queued) return this.queued;
    const run = this.chain.then(async () => {
      this.queued = null;
      this.isRunning = true;
      try {
        return await this.runOnce(trigger);
      } finally {
        this.isRunning = false;
      }
    });
    this.queued = run;
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Runs `fn` between two reconcile runs, never during one: host work that must not interleave
   *  with a plan's steps (handshake.ts restarts a new peer this way). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  get status(): ReconcilerStatus {
    return {
      ...this.st,
      generationDesired: this.desired?.generation ?? 0n,
      errors: [...this.configErrors, ...this.lastRunErrors],
    };
  }

  /** Forgets what it wrote (after `agent down` removed it), so the next run writes it again. */
  forgetWrites(): void {
    this.firewallRecord = null;
  }

  /** `isClaimAllowed`: gateway addresses may be added or removed in the run this observes for
   *  (decided when the run starts, together with its desired state). */
  async observe(desired: DesiredState, isClaimAllowed = this.isGatewayClaimAllowed): Promise<ObservedState> {
    return this.assemble(await this.reader.readFor(desired), isClaimAllowed);
  }

  private assemble(r: HostReading, isClaimAllowed: boolean): ObservedState {
    const { wireguard, link, routes, firewall, sysctls, interfaceAddresses } = r;
    const observed: ObservedState = { wireguard, link, routes, firewall, firewallRecord: this.firewallRecord, sysctls };
    if (interfaceAddresses !== undefined) {
      observed.interfaceAddresses = interfaceAddresses;
      observed.gatewayOwnership = isClaimAllowed ? this.ownedGateways() : null;
    }
    return observed;
  }

  /** Whether the failover view, if the config has groups, has settled (groups.ts FailoverView). */
  private isSettled(): boolean {
    return !this.base?.failover || this.failoverView?.isSettled === true;
  }

  /** The gateways a run may add or remove: every one known, but a group's only once the failover
   *  view has decided (a restarted holder must not drop its gateway before it has listened). */
  private ownedGateways(): string[] {
    const undecided = this.failoverView === null ? (this.base?.failover?.groups ?? []) : [];
    const skip = new Set(undecided.flatMap((g) => g.gateways));
    return [...this.knownGateways].filter((g) => !skip.has(g)).sort();
  }

  /** Starts reading the host for the next run while a new config's desired state is computed
   *  (reading.ts); only when no run is in progress, so the reading is no older than its writes. */
  private startEarly(): void {
    if (this.isStarted && !this.isRunning) this.reader.startEarly(this.st.runsTotal);
  }

  private async applyStep(step: Step, prep: RunPrep): Promise<void> {
    const h = this.host;
    switch (step.kind) {
      case 'wireguard.create':
        return h.wireguard.create(step.ifname, step.mode);
      case 'link.up':
        return h.links.setUp(step.ifname, step.mtu);
      case 'address.add':
        return h.links.addAddress(step.ifname, step.cidr);
      case 'address.del':
        return h.links.delAddress(step.ifname, step.cidr);
      case 'firewall.replace': {
        this.firewallRecord = null;
        const fingerprint = await h.firewall.replace(step.ruleset, { whileCommitting: () => prep.run() });
        this.firewallRecord = { hash: step.hash, fingerprint };
        await this.staleFlows.afterFirewall(step.relay ?? new Map(), step.marks ?? new Set());
        return;
      }
      case 'wireguard.sync':
        return h.wireguard.sync(step.ifname, step.device);
      case 'routes':
        return h.routes.apply(prep.routeChanges(step));
      case 'sysctl.set':
        return h.sysctl.set(step.key, step.value);
      case 'gateway.add': {
        if (step.ifname === '')
          throw new Error(
            `gateway ${step.cidr}: no interface of this box has an address in its network; give the LAN interface an address there`,
          );
        if (!h.links.addGateway) throw new Error('this host cannot add gateway addresses');
        return h.links.addGateway(step.ifname, step.cidr);
      }
      case 'gateway.del':
        return h.links.delAddress(step.ifname, step.cidr);
    }
  }

  private async runOnce(trigger: string): Promise<ApplyOutcome | null> {
    const desired = this.desired;
    // Read with the desired state, not after the observe: a restarted box runs its saved config
    // (it served before) while the controller's first config arrives; that config allows claims,
    // and a run still observing for the saved one must not take the gateway with it (it would
    // pull the LAN's return traffic from the standby that serves now).
    const isClaimAllowed = this.isGatewayClaimAllowed;
    if (!desired) {
      this.schedule(this.resyncIntervalMs);
      return null;
    }
    const startMs = this.clock.nowMs();
    const errors: ApplyFailure[] = [];
    let steps: Step[] = [];
    try {
      const early = await this.reader.takeEarly(desired, this.st.runsTotal);
      await this.reader.settleDropped();
      const reading = early ?? (await this.reader.readFor(desired));
      steps = plan(desired, this.assemble(reading, isClaimAllowed));
    } catch (e) {
      errors.push(toFailure('observe', e));
    }
    errors.push(...(await this.applySteps(steps)));
    const endMs = this.clock.nowMs();
    const outcome: ApplyOutcome = {
      generation: desired.generation,
      contentHash: desired.contentHash,
      trigger,
      steps,
      errors,
      atMs: endMs,
      durationMs: endMs - startMs,
    };
    this.record(outcome);
    return outcome;
  }

  /**
   * Every step is tried even when an earlier one failed: the others still bring the box closer,
   * and the report then names everything that is wrong, not just the first thing. Steps run in
   * phases (stepPhases); within a phase, independent lanes run at the same time. Returns the
   * failures in the plan's order.
   */
  private async applySteps(steps: Step[]): Promise<ApplyFailure[]> {
    const failures = new Map<Step, ApplyFailure>();
    const prep = new RunPrep(this.host, steps);
    for (const lanes of stepPhases(steps)) {
      if (lanes.some((lane) => lane.some((s) => RunPrep.isPrepared(s)))) prep.run();
      await Promise.all(
        lanes.map(async (lane) => {
          for (const step of lane) {
            try {
              await this.applyStep(step, prep);
            } catch (e) {
              const f = toFailure(stepName(step), e);
              failures.set(step, f);
              this.log.warn(
                {
                  step: describeStep(step),
                  command: f.command,
                  exitCode: f.exitCode,
                  stderr: f.stderr,
                  isCrosslink: isCrosslinkError(e),
                },
                'step failed',
              );
            }
          }
        }),
      );
    }
    return steps.flatMap((step) => failures.get(step) ?? []);
  }

  /** Counts a finished run, schedules the next one and tells the listeners. */
  private record(outcome: ApplyOutcome): void {
    const {
      steps: { length: stepCount },
      atMs: endMs,
    } = outcome;
    this.st.runsTotal++;
    this.st.lastStepCount = stepCount;
    this.st.lastApplyAtMs = endMs;
    this.st.lastApplyDurationMs = outcome.durationMs;
    this.st.applyErrorsTotal += outcome.errors.length;
    this.lastRunErrors = outcome.errors;
    if (outcome.errors.length === 0) {
      // With serving groups, applied means the first failover decision is in effect as well.
      if (this.isSettled()) this.st.generationApplied = outcome.generation;
      this.st.contentHashApplied = outcome.contentHash;
      this.st.consecutiveFailures = 0;
      this.st.nextRetryAtMs = null;
      this.backoff.reset();
      this.schedule(this.resyncIntervalMs);
      if (stepCount > 0)
        this.log.info(
          {
            generation: String(outcome.generation),
            steps: stepCount,
            trigger: outcome.trigger,
            durationMs: outcome.durationMs,
          },
          'applied plan',
        );
    } else {
      this.st.consecutiveFailures++;
      const delayMs = Math.min(this.backoff.next(), this.resyncIntervalMs);
      this.st.nextRetryAtMs = endMs + delayMs;
      this.schedule(delayMs);
      this.log.warn(
        { generation: String(outcome.generation), failed: outcome.errors.length, steps: stepCount, retryInMs: delayMs },
        'apply incomplete; will retry',
      );
    }
    for (const l of this.listeners) {
      try {
        l(outcome);
      } catch (e) {
        this.log.error({ err: e }, 'apply listener failed');
      }
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(delayMs: number): void {
    this.clearTimer();
    if (!this.isStarted) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      void this.reconcile(this.st.consecutiveFailures > 0 ? 'retry' : 'resync');
    }, delayMs);
  }
}
