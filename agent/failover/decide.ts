// The edge's failover decisions (issue 14), pure: from the echo's view of each peer and the LAN
// advertisements of the other candidates, which candidate carries each group this box sends to,
// and whether this box holds each group's gateway. Times are passed in; nothing here reads a clock.
import type { FailoverGroup, FailoverView, LivenessSettings } from './groups.js';
import { detectionMs } from '../liveness/echo.js';

/** A peer as the echo sees it: 'init' until its first detection time has passed. */
export type PeerState = 'init' | 'up' | 'down';

export interface PeerLivenessView {
  state(name: string): PeerState | undefined;
  /** Since when the peer has been in its current state (ms). */
  sinceMs(name: string): number | undefined;
  /** True when the peer's echo says it holds `group`'s gateway (echo.ts, held-groups filter);
   *  absent or false: it says nothing (an older agent), or does not hold it. */
  holds?(name: string, group: string): boolean;
}

/** The last LAN advertisement heard from one candidate of one group. */
export interface HeardAdvert {
  rank: number;
  isEligible: boolean;
  isHolding: boolean;
  atMs: number;
}

export interface Decision {
  view: FailoverView;
  /** When to decide again at the latest (a hold-down or a LAN silence ends), ms from now; null: only on events. */
  recheckInMs: number | null;
}

/** The first candidate of `g` that is up and whose echo says it holds the gateway; undefined: none. */
export function holderOf(g: FailoverGroup, peers: PeerLivenessView): string | undefined {
  return g.candidates.find((c) => peers.state(c) === 'up' && peers.holds?.(c, g.name) === true);
}

/** 'init' counts as alive: a new peer gets its detection time before anything moves away from it. */
const isAlive = (s: PeerState | undefined): boolean => s === 'up' || s === 'init';

export class FailoverDecider {
  /** group -> agent -> last advert. */
  private readonly heard = new Map<string, Map<string, HeardAdvert>>();
  private active = new Map<string, string>();
  private held = new Set<string>();
  /** Since when this box has been eligible without a break; null while it is not. */
  private eligibleSinceMs: number | null = null;
  private readonly startedAtMs: number;

  constructor(
    private readonly self: string,
    nowMs: number,
  ) {
    this.startedAtMs = nowMs;
  }

  /** A LAN advertisement from another candidate of `group`. */
  hear(group: string, agent: string, a: HeardAdvert): void {
    if (agent === this.self) return;
    let m = this.heard.get(group);
    if (!m) this.heard.set(group, (m = new Map<string, HeardAdvert>()));
    m.set(agent, a);
  }

  /** True while `group`'s gateway is held by this box (as last decided). */
  isHolding(group: string): boolean {
    return this.held.has(group);
  }

  /**
   * Decides for every group. `isEligible`: this box reaches at least one peer over the overlay (or
   * has none to reach); a box that is not never holds a gateway.
   */
  decide(
    groups: readonly FailoverGroup[],
    peers: PeerLivenessView,
    isEligible: boolean,
    l: LivenessSettings,
    nowMs: number,
  ): Decision {
    const detectMs = detectionMs(l);
    if (!isEligible) this.eligibleSinceMs = null;
    else this.eligibleSinceMs ??= nowMs;
    let recheck: number | null = null;
    const soonest = (ms: number): void => {
      if (ms > 0 && (recheck === null || ms < recheck)) recheck = ms;
    };
    const active = new Map<string, string>();
    const held = new Set<string>();
    for (const g of groups) {
      if (g.rank < 0) {
        const r = this.choose(g, peers, l.holdDownMs, nowMs);
        if (r.name !== undefined) active.set(g.name, r.name);
        if (r.recheckInMs !== null) soonest(r.recheckInMs);
      } else {
        const r = this.elect(g, peers, isEligible, detectMs, l.holdDownMs, nowMs);
        if (r.isHolding) held.add(g.name);
        else {
          // Who holds it, as heard on the LAN: the group's traffic to this box comes from there.
          const holder = g.candidates.find((c) => {
            const a = this.heard.get(g.name)?.get(c);
            return c !== this.self && a !== undefined && a.isHolding && nowMs - a.atMs <= detectMs;
          });
          if (holder !== undefined) active.set(g.name, holder);
        }
        if (r.recheckInMs !== null) soonest(r.recheckInMs);
      }
    }
    this.active = active;
    this.held = held;
    const isSettled = groups.every((g) => g.rank < 0) || nowMs >= this.startedAtMs + detectMs;
    return { view: { active, held, isSettled }, recheckInMs: recheck };
  }

  /**
   * The candidate a sending box gives the group to. The first candidate that is up and says in its
   * echo that it holds the group's gateway: the servers' replies leave through the gateway, so
   * following its holder keeps the path symmetric (the candidates' election applied the hold-down
   * already). When none says so (older agents, or no holder up): the current one while it is
   * alive, unless an earlier one has been up for the hold-down; the first alive one when the
   * current one dies.
   */
  private choose(
    g: FailoverGroup,
    peers: PeerLivenessView,
    holdDownMs: number,
    nowMs: number,
  ): { name: string | undefined; recheckInMs: number | null } {
    const holder = holderOf(g, peers);
    if (holder !== undefined) return { name: holder, recheckInMs: null };
    const current = this.active.get(g.name);
    const currentRank = current === undefined ? -1 : g.candidates.indexOf(current);
    const best = g.candidates.find((c) => isAlive(peers.state(c)));
    if (best === undefined) return { name: currentRank >= 0 ? current : g.candidates[0], recheckInMs: null };
    if (currentRank < 0 || !isAlive(peers.state(current!))) return { name: best, recheckInMs: null };
    const bestRank = g.candidates.indexOf(best);
    if (bestRank >= currentRank) return { name: current, recheckInMs: null };
    // An earlier candidate is back: it must have been up (not just 'init') for the hold-down.
    let recheck: number | null = null;
    for (let i = 0; i < currentRank; i++) {
      const c = g.candidates[i]!;
      if (peers.state(c) !== 'up') continue;
      const upFor = nowMs - (peers.sinceMs(c) ?? nowMs);
      if (upFor >= holdDownMs) return { name: c, recheckInMs: null };
      const left = holdDownMs - upFor;
      if (recheck === null || left < recheck) recheck = left;
    }
    return { name: current, recheckInMs: recheck };
  }

  /**
   * Whether this candidate holds the group's gateway. It may once every earlier candidate is "out":
   * dead on the overlay (its echo) and not heard on the LAN as eligible. It takes the gateway from a
   * later candidate that holds it only after wanting it for the hold-down; it gives it up when it is
   * not eligible, or an earlier candidate says on the LAN that it holds it.
   */
  private elect(
    g: FailoverGroup,
    peers: PeerLivenessView,
    isEligible: boolean,
    detectMs: number,
    holdDownMs: number,
    nowMs: number,
  ): { isHolding: boolean; recheckInMs: number | null } {
    const heard = this.heard.get(g.name);
    const fresh = (agent: string): HeardAdvert | undefined => {
      const a = heard?.get(agent);
      return a && nowMs - a.atMs <= detectMs ? a : undefined;
    };
    let recheck: number | null = null;
    const soonest = (ms: number): void => {
      if (ms > 0 && (recheck === null || ms < recheck)) recheck = ms;
    };
    let isBetterOut = true;
    let isBetterHolding = false;
    for (let i = 0; i < g.rank; i++) {
      const c = g.candidates[i]!;
      const a = fresh(c);
      if (a) soonest(a.atMs + detectMs - nowMs + 1);
      if (a?.isEligible && a.isHolding) isBetterHolding = true;
      const isOverlayUp = peers.state(c) === 'up';
      if (isOverlayUp || a?.isEligible) isBetterOut = false;
    }
    let isWorseHolding = false;
    for (let i = g.rank + 1; i < g.candidates.length; i++) {
      const a = fresh(g.candidates[i]!);
      if (a?.isHolding) {
        isWorseHolding = true;
        soonest(a.atMs + detectMs - nowMs + 1);
      }
    }
    const wasHolding = this.held.has(g.name);
    if (!isEligible || isBetterHolding) return { isHolding: false, recheckInMs: recheck };
    if (wasHolding) return { isHolding: true, recheckInMs: recheck };
    // Listen for one detection time after starting before taking anything.
    const listenLeft = this.startedAtMs + detectMs - nowMs;
    if (listenLeft > 0) return { isHolding: false, recheckInMs: listenLeft + 1 };
    if (!isBetterOut) return { isHolding: false, recheckInMs: recheck };
    if (!isWorseHolding) return { isHolding: true, recheckInMs: recheck };
    // Take it from a later holder only once this box has been eligible for the hold-down (as a
    // sending box moves back only to a candidate up for the hold-down): a box back from a failure
    // waits; one the controller has just moved ahead of the holder takes it at once, as the edges do.
    const left = (this.eligibleSinceMs ?? nowMs) + holdDownMs - nowMs;
    if (left <= 0) return { isHolding: true, recheckInMs: recheck };
    soonest(left + 1);
    return { isHolding: false, recheckInMs: recheck };
  }
}
