// Failover at the edges (issue 14): runs the decisions of decide.ts on live inputs. It keeps the
// echo (agent/liveness/) pointed at this box's peers, hears and sends the LAN advertisements of the
// groups this box may serve, and hands each new view to the reconciler, which moves allowed IPs and
// gateways with an ordinary run. Nothing here waits for the controller.
import type { Logger } from 'pino';
import type { Clock } from '../../lib/clock.js';
import type { InterfaceAddress } from '../reconcile/host-state.js';
import { isInNetworkOf } from '../host/canonical.js';
import type { Timers } from '../../lib/timers.js';
import type { Advert } from '../liveness/advert.js';
import { FailoverDecider, holderOf, type PeerLivenessView, type PeerState } from './decide.js';
import { viewKey, type FailoverPlan, type FailoverView } from './groups.js';

/** A LAN advertisement between the candidates of one group. */
export type FailoverAdvert = Advert;

/** What the engine needs of the liveness layer (agent/liveness/runner.ts implements it). */
export interface LivenessPort extends PeerLivenessView {
  configure(opts: {
    peers: ReadonlyArray<{ name: string; address: string }>;
    intervalMs: number;
    multiplier: number;
    port: number;
  }): Promise<void>;
  /** The groups whose gateways this box holds, for its echo packets to say (decide.ts follows them). */
  setHeld(groups: readonly string[]): void;
  /** Called with the peers whose state or held groups changed. */
  onChange(listener: (names: string[]) => void): void;
  onAdvert(listener: (advert: FailoverAdvert) => void): void;
  /** Sends on the LAN of `lan` (this box's own address there, with prefix length). */
  sendAdvert(lan: InterfaceAddress, advert: FailoverAdvert): void;
  /** Names of the peers it echoes with. */
  peerNames(): readonly string[];
  /** True once any echo packet came from the peer; absent: not known. */
  hasHeard?(name: string): boolean;
  stop(): Promise<void>;
}

export interface FailoverStatusView {
  /** Reaches at least one peer over the overlay (a candidate that is not holds no gateway). */
  isEligible: boolean;
  groups: Array<
    | {
        name: string;
        candidates: string[];
        role: 'sender';
        active: string;
        /** The first candidate up whose echo says it holds the gateway; null: none says so. */
        holder: string | null;
      }
    | { name: string; candidates: string[]; role: 'candidate'; isHolding: boolean }
  >;
  peers: Array<{ name: string; state: string; forSeconds: number | null }>;
}

export interface FailoverTarget {
  /** The base desired state's serving groups, or undefined when the config has none. */
  readonly failoverPlan: FailoverPlan | undefined;
  setFailoverView(view: FailoverView): boolean;
}

export interface FailoverEngineDeps {
  target: FailoverTarget;
  liveness: LivenessPort;
  /** This box's interface addresses (to find its own address on each group's LAN). */
  addresses: () => Promise<InterfaceAddress[]>;
  clock: Clock;
  timers: Timers;
  log: Logger;
}

/** How often the engine looks for a new plan when the config has no groups. */
const IDLE_CHECK_MS = 1_000;
/** How often it rereads this box's LAN addresses while it has groups to advertise. */
const ADDRESS_REFRESH_MS = 5_000;

export class FailoverEngine {
  private readonly d: FailoverEngineDeps;
  private plan: FailoverPlan | undefined;
  private decider: FailoverDecider | null = null;
  private view: FailoverView | null = null;
  private timer: unknown = null;
  private seq = 0;
  private lan: InterfaceAddress[] = [];
  private lanReadAtMs = -Infinity;
  private isStopped = false;
  private lastEligible: boolean | null = null;
  private nextTickAtMs = Infinity;

  constructor(deps: FailoverEngineDeps) {
    this.d = deps;
    deps.liveness.onChange(() => void this.decide('echo'));
    deps.liveness.onAdvert((a) => this.hear(a));
  }

  start(): void {
    this.tick();
  }

  async stop(): Promise<void> {
    this.isStopped = true;
    if (this.timer !== null) this.d.timers.clearTimeout(this.timer);
    this.timer = null;
    await this.d.liveness.stop();
  }

  /** The last view handed to the reconciler (status). */
  get currentView(): FailoverView | null {
    return this.view;
  }

  /** What `crosslink agent status` shows: each group, who carries it or whether this box holds
   *  its gateway, and each echoed peer's state. Null without serving groups. */
  statusView(): FailoverStatusView | null {
    const plan = this.plan;
    if (!plan) return null;
    const now = this.d.clock.nowMs();
    return {
      isEligible: this.isEligible(),
      groups: plan.groups.map((g) =>
        g.rank >= 0
          ? {
              name: g.name,
              candidates: g.candidates,
              role: 'candidate' as const,
              isHolding: this.view?.held.has(g.name) ?? false,
            }
          : {
              name: g.name,
              candidates: g.candidates,
              role: 'sender' as const,
              active: this.view?.active.get(g.name) ?? g.candidates[0] ?? '',
              holder: holderOf(g, this.d.liveness) ?? null,
            },
      ),
      peers: this.d.liveness.peerNames().map((name) => {
        const since = this.d.liveness.sinceMs(name);
        return {
          name,
          state: describePeer(this.d.liveness.state(name), this.d.liveness.hasHeard?.(name) ?? true),
          forSeconds: since === undefined ? null : Math.max(0, Math.round((now - since) / 100) / 10),
        };
      }),
    };
  }

  /** This box reaches at least one peer over the overlay, or echoes with none. */
  isEligible(): boolean {
    const names = this.d.liveness.peerNames();
    return names.length === 0 || names.some((n) => this.d.liveness.state(n) === 'up');
  }

  private tick(): void {
    if (this.isStopped) return;
    this.timer = null;
    const plan = this.d.target.failoverPlan;
    if (plan !== this.plan) this.adopt(plan);
    if (!this.plan) {
      this.schedule(IDLE_CHECK_MS);
      return;
    }
    const recheck = this.decide('tick');
    this.advertise();
    this.schedule(Math.min(this.plan.liveness.intervalMs, recheck ?? Infinity));
  }

  private adopt(plan: FailoverPlan | undefined): void {
    const before = this.plan;
    this.plan = plan;
    if (!plan) {
      void this.d.liveness.configure({ peers: [], intervalMs: 1000, multiplier: 3, port: 0 }).catch(() => {});
      return;
    }
    if (!this.decider) this.decider = new FailoverDecider(plan.self, this.d.clock.nowMs());
    const peers = [...plan.peers]
      .filter(([, p]) => p.address !== '')
      .map(([name, p]) => ({ name, address: p.address }));
    const l = plan.liveness;
    this.d.liveness
      .configure({ peers, intervalMs: l.intervalMs, multiplier: l.multiplier, port: l.port })
      .catch((e: unknown) => this.d.log.warn({ err: e }, 'liveness could not start'));
    if (!before) this.d.log.info({ groups: plan.groups.length, peers: peers.length }, 'edge failover on');
    this.lanReadAtMs = -Infinity;
  }

  private hear(a: FailoverAdvert): void {
    if (this.isStopped) return;
    const plan = this.plan;
    const g = plan?.groups.find((x) => x.name === a.group);
    if (!plan || !g || g.rank < 0 || !this.decider) return;
    const rank = g.candidates.indexOf(a.agent);
    if (rank < 0 || a.agent === plan.self) return;
    this.decider.hear(a.group, a.agent, {
      rank,
      isEligible: a.isEligible,
      isHolding: a.isHolding,
      atMs: this.d.clock.nowMs(),
    });
    // An earlier candidate that says it holds, or one that gave up: act at once, not at the next tick.
    if (a.isHolding || !a.isEligible) void this.decide('advert');
  }

  /** Decides now; returns when to decide again at the latest (ms), or null. */
  private decide(why: string): number | null {
    const plan = this.plan;
    if (!plan || !this.decider || this.isStopped) return null;
    const isEligible = this.isEligible();
    const wasEligible = this.lastEligible;
    this.lastEligible = isEligible;
    const r = this.decider.decide(plan.groups, this.d.liveness, isEligible, plan.liveness, this.d.clock.nowMs());
    const before = this.view;
    this.view = r.view;
    if (before === null || viewKey(plan, before) !== viewKey(plan, r.view)) {
      this.d.log.info(
        {
          why,
          isEligible,
          active: Object.fromEntries(r.view.active),
          held: [...r.view.held],
        },
        'failover view changed',
      );
      this.d.target.setFailoverView(r.view);
      this.d.liveness.setHeld([...r.view.held].sort());
      this.advertise(); // the other candidates hear a change of holder at once
    } else if (wasEligible !== isEligible) this.advertise();
    // Between ticks, a LAN silence or hold-down that ends sooner than the next tick gets its own.
    if (why !== 'tick' && r.recheckInMs !== null && this.d.clock.nowMs() + r.recheckInMs < this.nextTickAtMs)
      this.schedule(r.recheckInMs);
    return r.recheckInMs;
  }

  private advertise(): void {
    const plan = this.plan;
    if (!plan || !this.decider) return;
    const candidateOf = plan.groups.filter((g) => g.rank >= 0);
    if (candidateOf.length === 0) return;
    const now = this.d.clock.nowMs();
    if (now - this.lanReadAtMs > ADDRESS_REFRESH_MS) {
      this.lanReadAtMs = now;
      void this.d
        .addresses()
        .then((a) => {
          const gateways = new Set(plan.groups.flatMap((g) => g.gateways));
          this.lan = a.filter((x) => !gateways.has(x.cidr));
        })
        .catch((e: unknown) => this.d.log.warn({ err: e }, 'could not read interface addresses'));
    }
    const isEligible = this.isEligible();
    for (const g of candidateOf) {
      const lan = this.lan.find((a) => g.prefixes.some((p) => isInNetworkOf(a.cidr, p)));
      if (!lan) continue;
      this.d.liveness.sendAdvert(lan, {
        group: g.name,
        agent: plan.self,
        rank: g.rank,
        isEligible,
        isHolding: this.decider.isHolding(g.name),
        seq: this.seq++ >>> 0,
      });
    }
  }

  private schedule(ms: number): void {
    if (this.isStopped) return;
    if (this.timer !== null) this.d.timers.clearTimeout(this.timer);
    const delay = Math.max(1, ms);
    this.nextTickAtMs = this.d.clock.nowMs() + delay;
    this.timer = this.d.timers.setTimeout(() => this.tick(), delay);
  }
}

/** A peer state for status and logs. A peer down that never sent a packet is "never heard": it
 *  runs no echo (a box with no serving group does not), or has been unreachable since it was added. */
export function describePeer(state: PeerState | undefined, hasHeard = true): string {
  if (state === 'down' && !hasHeard) return 'never heard';
  return state ?? 'not echoed';
}
