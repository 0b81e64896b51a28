// The agent's prober: two kinds of evidence that forwarding works, peer probes (peer-prober.ts:
// an echo through the tunnel to each peer) and path probes (path-prober.ts: a real connection
// between two subnets, across both boxes' firewalls), run together every few seconds.
//
// Everything that touches the host is injected (ports.ts: command runner, tcp connect, udp
// exchange, local addresses, clock, timers); the real implementations are in sockets.ts.
import type { AgentConfig, ProbeResult } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { Logger } from '../../lib/logger.js';
import { PathProber, type PathProberDeps } from './path-prober.js';
import { PeerProber, type PeerProbeFields } from './peer-prober.js';
import type { ProbeTimers } from './ports.js';

export const DEFAULT_PROBE_INTERVAL_SECONDS = 5;

export interface ProberDeps extends PathProberDeps {
  log: Logger;
  timers?: ProbeTimers;
  /**
   * Called after every round (e.g. to send a report when a result changed), and also as soon as the
   * peer probes of a round are done when a peer's reachability changed: the controller fails a dead
   * box over on its peers' failing probes, so that news must not wait for slow path probes (a
   * path probe through the dead box waits for its whole timeout).
   */
  onRound?: () => void;
}

const defaultTimers: ProbeTimers = {
  setInterval: (fn, ms) => {
    const h = setInterval(fn, ms);
    h.unref();
    return h;
  },
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

/**
 * Runs peer and path probes every `probe_interval_seconds` of the current config (default 5 s).
 * Wire it as: `prober.setConfig(config)` on every applied config; in reports, spread
 * `prober.peerFields(name)` into each PeerStatus and send `prober.probeResults()`.
 */
export class Prober {
  private readonly peers: PeerProber;
  private readonly paths: PathProber;
  private readonly timers: ProbeTimers;
  private config: AgentConfig | null = null;
  private results = new Map<string, ProbeResult>();
  private timer: unknown = null;
  private intervalMs = DEFAULT_PROBE_INTERVAL_SECONDS * 1000;
  private round: Promise<void> | null = null;

  constructor(private readonly deps: ProberDeps) {
    this.peers = new PeerProber({ runner: deps.runner, log: deps.log });
    this.paths = new PathProber(deps);
    this.timers = deps.timers ?? defaultTimers;
  }

  /** The config to probe for; restarts the timer when the interval changed. */
  setConfig(config: AgentConfig): void {
    this.config = config;
    const names = new Set(config.probes.map((p) => p.name));
    for (const name of [...this.results.keys()]) if (!names.has(name)) this.results.delete(name);
    const intervalMs = (config.probeIntervalSeconds || DEFAULT_PROBE_INTERVAL_SECONDS) * 1000;
    if (intervalMs !== this.intervalMs) {
      this.intervalMs = intervalMs;
      if (this.timer !== null) {
        this.stop();
        this.start();
      }
    }
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = this.timers.setInterval(() => {
      void this.runOnce();
    }, this.intervalMs);
    void this.runOnce();
  }

  stop(): void {
    if (this.timer !== null) this.timers.clearInterval(this.timer);
    this.timer = null;
  }

  /** One round of every probe. A round still running is not started twice. */
  runOnce(): Promise<void> {
    if (this.round !== null) return this.round;
    this.round = this.doRound().finally(() => {
      this.round = null;
    });
    return this.round;
  }

  private async doRound(): Promise<void> {
    const config = this.config;
    if (config === null) return;
    try {
      const targets = config.peers.map((p) => ({ name: p.name, overlayIp: p.overlayIp }));
      const reachableBefore = targets.map((p) => this.peers.fields(p.name).isReachable);
      const peersDone = this.peers.probeAll(targets).then(() => {
        if (targets.some((p, i) => this.peers.fields(p.name).isReachable !== reachableBefore[i])) this.notifyRound();
      });
      const [, results] = await Promise.all([peersDone, this.paths.runAll(config.probes)]);
      // Keep only results of probes still configured (the config may have changed meanwhile).
      const current = new Set((this.config?.probes ?? []).map((p) => p.name));
      for (const r of results) if (current.has(r.name)) this.results.set(r.name, r);
    } catch (err) {
      this.deps.log.warn({ err }, 'probe round failed');
    }
    this.notifyRound();
  }

  private notifyRound(): void {
    try {
      this.deps.onRound?.();
    } catch (err) {
      this.deps.log.warn({ err }, 'probe round listener failed');
    }
  }

  peerFields(name: string): PeerProbeFields {
    return this.peers.fields(name);
  }

  /** Latest result of every configured path probe, sorted by name. */
  probeResults(): ProbeResult[] {
    return [...this.results.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}
