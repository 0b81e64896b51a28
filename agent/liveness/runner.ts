// The liveness driver: the echo state machine (echo.ts) on the liveness socket (socket.ts), run by
// one timer. It tells listeners which peers changed state; the failover logic decides what that
// means. LAN advertisements pass through (the failover logic sends and reads them).
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { realTimers, type Timers } from '../../lib/timers.js';
import type { Advert } from './advert.js';
import { EchoSessions, filterHolds, heldFilter, type EchoTiming, type PeerLiveness } from './echo.js';
import { DEFAULT_ECHO_INTERVAL_MS, DEFAULT_ECHO_MULTIPLIER } from './settings.js';
import { LivenessSocket, type AdvertListener, type EchoListener } from './socket.js';

/** What the runner needs of the socket (LivenessSocket; tests pass a fake). */
export interface LivenessTransport {
  sendEcho(address: string, packet: Uint8Array): void;
  sendAdvert(lanCidr: string, ifname: string, advert: Advert): void;
  onEcho(cb: EchoListener): void;
  onAdvert(cb: AdvertListener): void;
  setPort(port: number): void;
  close(): void;
}

export interface LivenessRunnerOptions {
  /** Default 200 ms x 3. */
  timing?: EchoTiming;
  /** UDP port; default 51821. Ignored when `transport` is given. */
  port?: number;
  log?: Logger;
  /** Monotonic milliseconds; default performance.now(). */
  clock?: Clock;
  timers?: Timers;
  transport?: LivenessTransport;
  /**
   * Runs a due tick once the I/O already waiting has been read (default setImmediate): a box whose
   * timer fired late, its CPU busy, first reads the echoes that arrived meanwhile, and does not
   * count a peer down whose packets sat unread in the socket.
   */
  afterPendingIo?: (fn: () => void) => void;
}

export type LivenessPeerView = ReturnType<EchoSessions['snapshot']>[number];

const monotonicClock: Clock = { nowMs: () => performance.now() };

export class LivenessRunner {
  private readonly sessions: EchoSessions;
  private readonly transport: LivenessTransport;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly log: Logger | undefined;
  private readonly afterPendingIo: (fn: () => void) => void;
  private readonly changeListeners: Array<(names: string[]) => void> = [];
  private readonly advertListeners: AdvertListener[] = [];
  /** Agent names this box advertised as: their adverts coming back (broadcast loop) are dropped. */
  private readonly ownAgents = new Set<string>();
  private timer: unknown = null;
  private dueAtMs = Infinity;
  private isStopped = false;

  constructor(opts: LivenessRunnerOptions = {}) {
    this.clock = opts.clock ?? monotonicClock;
    this.timers = opts.timers ?? realTimers;
    this.log = opts.log;
    this.afterPendingIo = opts.afterPendingIo ?? ((fn) => setImmediate(fn));
    this.sessions = new EchoSessions(
      opts.timing ?? { intervalMs: DEFAULT_ECHO_INTERVAL_MS, multiplier: DEFAULT_ECHO_MULTIPLIER },
      this.clock.nowMs(),
    );
    this.transport = opts.transport ?? new LivenessSocket({ ...(opts.port ? { port: opts.port } : {}), log: opts.log });
    this.transport.onEcho((address, packet) => {
      const changed = this.sessions.receive(address, packet, this.clock.nowMs());
      if (changed.length > 0) this.emit(changed);
    });
    this.transport.onAdvert((address, advert) => {
      if (this.ownAgents.has(advert.agent)) return;
      for (const cb of this.advertListeners) this.guard(() => cb(address, advert));
    });
  }

  /** Peers to echo with: name and overlay address (no prefix length). */
  setPeers(peers: ReadonlyArray<{ name: string; address: string }>): void {
    this.sessions.setPeers(peers, this.clock.nowMs());
    this.schedule();
  }

  setTiming(t: EchoTiming): void {
    this.sessions.setTiming(t);
    this.schedule();
  }

  get timing(): EchoTiming {
    return this.sessions.currentTiming;
  }

  /** Another UDP port: the sockets are bound again; peer states stay. */
  setPort(port: number): void {
    this.transport.setPort(port);
  }

  /** Called with the names of the peers whose state or held groups changed (read them with state()
   *  and holds()). */
  onChange(listener: (names: string[]) => void): void {
    this.changeListeners.push(listener);
  }

  /** LAN advertisements of other agents (our own, looped back, are not passed on). */
  onAdvert(listener: AdvertListener): void {
    this.advertListeners.push(listener);
  }

  sendAdvert(lanCidr: string, ifname: string, advert: Advert): void {
    this.ownAgents.add(advert.agent);
    this.transport.sendAdvert(lanCidr, ifname, advert);
  }

  state(name: string): PeerLiveness | undefined {
    return this.sessions.state(name);
  }

  /** The serving groups whose gateways this box holds: its echo packets say so from now on. */
  setHeld(groups: Iterable<string>): void {
    this.sessions.setHeld(heldFilter(groups));
  }

  /** True when the peer's last packet says it holds `group`'s gateway (an older agent says nothing). */
  holds(name: string, group: string): boolean {
    const f = this.sessions.heldBy(name);
    return f !== null && filterHolds(f, group);
  }

  /** True once any packet came from the peer (see EchoSessions.hasHeard). */
  hasHeard(name: string): boolean {
    return this.sessions.hasHeard(name);
  }

  /** Since when (runner clock) the peer has been in its current state. */
  sinceMs(name: string): number | undefined {
    return this.sessions.sinceMs(name);
  }

  /** Every peer, sorted by name; times are the runner clock's (monotonic ms). */
  states(): LivenessPeerView[] {
    return this.sessions.snapshot();
  }

  /** Echo packets received from peers and sent to them, and ignored (unknown sender, malformed). */
  counters(): { rx: number; tx: number; unknown: number; malformed: number } {
    return { ...this.sessions.counters };
  }

  stop(): void {
    this.isStopped = true;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.transport.close();
  }

  private run(): void {
    this.timer = null;
    this.dueAtMs = Infinity;
    if (this.isStopped) return;
    // A timer may fire up to a millisecond before the fractional due time: count that as due.
    const r = this.sessions.tick(this.clock.nowMs() + 1);
    const sends = r.sends;
    for (let i = 0; i < sends.length; i++) this.transport.sendEcho(sends[i]!.address, sends[i]!.packet);
    if (r.changed.length > 0) this.emit(r.changed);
    this.schedule();
  }

  /** One timer, at the next due time (moved earlier when peers or timing change). */
  private schedule(): void {
    if (this.isStopped) return;
    const now = this.clock.nowMs();
    const wait = this.sessions.nextDueInMs(now);
    if (wait === Infinity) {
      if (this.timer !== null) this.timers.clearTimeout(this.timer);
      this.timer = null;
      this.dueAtMs = Infinity;
      return;
    }
    const at = now + wait;
    if (this.timer !== null && this.dueAtMs <= at) return;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.dueAtMs = at;
    this.timer = this.timers.setTimeout(() => this.afterPendingIo(() => this.run()), Math.ceil(wait));
  }

  private emit(names: string[]): void {
    const copy = [...names];
    for (const cb of this.changeListeners) this.guard(() => cb(copy));
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log?.error({ err: (e as Error).message }, 'liveness: a listener threw');
    }
  }
}
