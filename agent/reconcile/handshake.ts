// A new link's first handshake, started again when both boxes started it at once.
//
// Both ends of a new link get the peer with a persistent keepalive, and WireGuard sends a keepalive
// (so a handshake initiation) the moment one is set. When the two boxes apply within a round trip
// of each other, the initiations cross: each end answers the other's and drops the answer to its
// own, the link stays silent, and WireGuard retries only after its 5 s rekey timeout (bench:e2e
// saw it on about 1 new link in 10-40; docs/performance.md). So, a moment after an apply that
// added peers, the agent looks at them: a new peer with no handshake yet is removed and added again
// (a fresh peer starts one fresh initiation at once) — by the end with the lower public key only,
// so the two ends never restart together and cross again. Once per new peer; WireGuard's own
// retries take it from there.
import type { Logger } from 'pino';
import type { WireGuardPort } from '../host/ports.js';
import type { DesiredState } from './desired.js';
import type { ApplyOutcome, Timers } from './loop.js';

/** How long a new link may go without a handshake before its first one is started again. */
export const DEFAULT_HANDSHAKE_RESTART_MS = 500;

export interface HandshakeStarterOptions {
  reconciler: {
    readonly desiredState: DesiredState | null;
    onApply(listener: (o: ApplyOutcome) => void): void;
    exclusive<T>(fn: () => Promise<T>): Promise<T>;
  };
  wireguard: Pick<WireGuardPort, 'observe' | 'sync'>;
  timers: Timers;
  log: Pick<Logger, 'info' | 'warn'>;
  delayMs?: number;
}

export class HandshakeStarter {
  /** Peers of the last applied config; null before the first (a box's first apply is left alone). */
  private known: Set<string> | null = null;
  private readonly delayMs: number;
  /** Peers restarted so far (for tests and metrics). */
  restarts = 0;

  constructor(private readonly opts: HandshakeStarterOptions) {
    this.delayMs = opts.delayMs ?? DEFAULT_HANDSHAKE_RESTART_MS;
    opts.reconciler.onApply((o) => this.applied(o));
  }

  private applied(o: ApplyOutcome): void {
    const desired = this.opts.reconciler.desiredState;
    if (o.errors.length > 0 || !desired || desired.contentHash !== o.contentHash) return;
    const now = new Set(desired.wireguard.peers.map((p) => p.publicKey));
    const before = this.known;
    this.known = now;
    if (before === null) return;
    const added = [...now].filter((k) => !before.has(k));
    if (added.length === 0) return;
    this.opts.timers.setTimeout(() => {
      this.opts.reconciler
        .exclusive(() => this.restartSilent(desired.interfaceName, new Set(added)))
        .catch((err: unknown) => this.opts.log.warn({ err }, 'could not restart the first handshake of new peers'));
    }, this.delayMs);
  }

  /** Removes and re-adds the peers of `added` that still have no handshake, where ours is the lower key. */
  async restartSilent(ifname: string, added: ReadonlySet<string>): Promise<string[]> {
    const desired = this.opts.reconciler.desiredState;
    if (!desired || desired.interfaceName !== ifname) return [];
    const device = await this.opts.wireguard.observe(ifname);
    if (!device) return [];
    const wanted = new Set(desired.wireguard.peers.map((p) => p.publicKey));
    const silent = device.peers
      .filter(
        (p) =>
          added.has(p.publicKey) &&
          wanted.has(p.publicKey) &&
          p.latestHandshakeUnix === 0 &&
          device.publicKey < p.publicKey,
      )
      .map((p) => p.publicKey);
    if (silent.length === 0) return [];
    const again = new Set(silent);
    const { publicKey: _ours, ...full } = desired.wireguard;
    await this.opts.wireguard.sync(ifname, { ...full, peers: full.peers.filter((p) => !again.has(p.publicKey)) });
    await this.opts.wireguard.sync(ifname, full);
    this.restarts += silent.length;
    const names = silent.map((k) => desired.peerNames[k] ?? k);
    this.opts.log.info({ peers: names }, 'new peers had no handshake yet: started it again');
    return names;
  }
}
