// Peer probes: an ICMP echo to each peer's overlay address every few seconds. It goes through
// WireGuard (the route to the overlay is the tunnel), so an answer proves the tunnel carries
// packets both ways, which a fresh handshake alone does not. Node has no raw ICMP, so one
// `fping -C 1 -q` per round echoes every peer (up to FPING_MAX_TARGETS per process), in the
// agent's own namespace; the source is the overlay address the kernel picks for that route.
// Without fping (checked once with `fping -v`) it falls back to one iputils `ping -n -c 1 -W 1`
// per peer. Reachability, RTT and loss over the last 10 go into PeerStatus, the same for both.
import type { Logger } from '../../lib/logger.js';
import { FpingEchoes, PingEachEchoes, type PeerEchoes } from './echoes.js';
import { detectFping } from './fping.js';
import type { AttemptOutcome, ProbeCommandRunner } from './ports.js';

/** The PeerStatus fields the prober fills in. */
export interface PeerProbeFields {
  isProbed: boolean;
  isReachable: boolean;
  /** Of the last successful probe; 0 if none. */
  rttMs: number;
  /** Over the last `windowSize` probes, 0..1. */
  lossRatio: number;
}

export const NOT_PROBED: PeerProbeFields = Object.freeze({
  isProbed: false,
  isReachable: false,
  rttMs: 0,
  lossRatio: 0,
});

interface PeerWindow {
  results: boolean[];
  lastRttMs: number;
}

export interface PeerTarget {
  name: string;
  overlayIp: string;
}

/** Probes a new peer must have lost (with none answered) before it counts as unreachable. */
export const MIN_PROBES_FOR_LOSS = 3;

export interface PeerProberDeps {
  runner: ProbeCommandRunner;
  log?: Logger;
  windowSize?: number;
  timeoutSeconds?: number;
  /** Pings at a time on the fallback path. */
  concurrency?: number;
  /** How to echo; absent: fping if `fping -v` works (checked once, at the first round), else ping. */
  echoes?: PeerEchoes;
}

export class PeerProber {
  private readonly windows = new Map<string, PeerWindow>();
  private readonly windowSize: number;
  private readonly timeoutSeconds: number;
  private echoes: Promise<PeerEchoes> | null;

  constructor(private readonly deps: PeerProberDeps) {
    this.windowSize = deps.windowSize ?? 10;
    this.timeoutSeconds = deps.timeoutSeconds ?? 1;
    this.echoes = deps.echoes ? Promise.resolve(deps.echoes) : null;
  }

  /** fping when it is installed, else one ping per peer; decided once, at the first round. */
  private chooseEchoes(): Promise<PeerEchoes> {
    this.echoes ??= detectFping(this.deps.runner).then((version) => {
      if (version !== null) {
        this.deps.log?.info({ version }, 'peer probes: one fping per round');
        return new FpingEchoes({ runner: this.deps.runner, log: this.deps.log });
      }
      this.deps.log?.warn('fping is not installed: peer probes run one ping per peer (install the fping package)');
      return new PingEachEchoes({ runner: this.deps.runner, concurrency: this.deps.concurrency });
    });
    return this.echoes;
  }

  /** Probes every peer once (all at once) and forgets peers no longer listed. */
  async probeAll(peers: readonly PeerTarget[]): Promise<void> {
    const names = new Set(peers.map((p) => p.name));
    for (const name of [...this.windows.keys()]) if (!names.has(name)) this.windows.delete(name);
    const probed = peers.filter((p) => p.overlayIp !== '');
    if (probed.length === 0) return;
    const echoes = await this.chooseEchoes();
    const outcomes = await echoes.echoAll(
      probed.map((p) => p.overlayIp),
      this.timeoutSeconds,
    );
    for (const p of probed) this.record(p.name, outcomes.get(p.overlayIp) ?? { kind: 'error', detail: 'no result' });
  }

  private record(name: string, outcome: AttemptOutcome): void {
    const w = this.windows.get(name) ?? { results: [], lastRttMs: 0 };
    const isReachable = outcome.kind === 'connected';
    w.results.push(isReachable);
    if (w.results.length > this.windowSize) w.results.shift();
    if (outcome.kind === 'connected') w.lastRttMs = outcome.rttMs;
    this.windows.set(name, w);
  }

  fields(name: string): PeerProbeFields {
    const w = this.windows.get(name);
    if (w === undefined || w.results.length === 0) return NOT_PROBED;
    const lost = w.results.filter((r) => !r).length;
    // A peer just configured loses its first echoes while the other box is still applying its side
    // (it ignores our handshake until then). Losses alone in a window that young are no verdict
    // yet: reported as lost, they made the controller fail a healthy box over (or withdraw its
    // subnets when it had no standby) and hold it down for the hold-down period.
    if (lost === w.results.length && w.results.length < MIN_PROBES_FOR_LOSS) return NOT_PROBED;
    return {
      isProbed: true,
      isReachable: w.results.at(-1) === true,
      rttMs: w.lastRttMs,
      lossRatio: lost / w.results.length,
    };
  }
}
