// What the agent shows of itself: the live WireGuard peers with their probe verdicts, and the
// whole AgentStatus that the local endpoint, the metrics and the reports to the controller read.
import type { Clock } from '../lib/clock.js';
import type { AgentStatus, PeerStatusView } from './health/status-server.js';
import { FirewallCounterTotals, type FirewallTotals } from './health/rule-counters.js';
import type { Prober } from './health/prober.js';
import type { Host } from './host/ports.js';
import type { Reconciler } from './reconcile/loop.js';
import { enrollmentUrls, type Enrollment } from './state.js';
import type { ClockSkew } from './control/clock-skew.js';
import { create } from '@bufbuild/protobuf';
import { PeerStatusSchema, type AgentConfig, type PeerStatus } from '../proto/gen/crosslink/v1/agent_pb.js';
import type { WgPeerObserved } from './reconcile/host-state.js';
import type { PeerProbeFields } from './health/peer-prober.js';
import { CLOCK_SKEW_BOUND_MS } from './host/firewall-time.js';
import { ruleWindowsOf } from './health/rule-windows.js';

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The config stream as the agent last saw it. */
export interface ControllerConnection {
  isConnected: boolean;
  /** Since when the config may be stale (stream down, or never up since start). */
  staleSinceMs: number;
  /** Why the stream is down, when known; null while connected. */
  reason: string | null;
}

export interface StatusReaderDeps {
  host: Host;
  reconciler: Reconciler;
  prober: Prober | null;
  clock: Clock;
  name: string;
  publicKey: string;
  interfaceName: string;
  agentVersion: string;
  /** The enrollment, once there is one. */
  enrollment(): Enrollment | null;
  connection: Readonly<ControllerConnection>;
  /** This box's clock against the controller's, and the config enforced; absent: not shown. */
  clockSkew?: ClockSkew;
  enforcedConfig?: () => AgentConfig | null;
}

export class StatusReader {
  constructor(private readonly deps: StatusReaderDeps) {}

  /** The interface's peers by name, sorted, with their probe verdicts; none when it cannot be read. */
  async peers(): Promise<PeerStatusView[]> {
    const nowMs = this.deps.clock.nowMs();
    return (await this.readPeers())
      .map(({ p, name, probe }) => ({
        ...(probe ? { probe } : {}),
        name,
        publicKey: p.publicKey,
        endpoint: p.endpoint,
        latestHandshakeUnix: p.latestHandshakeUnix,
        latestHandshake: p.latestHandshakeUnix > 0 ? new Date(p.latestHandshakeUnix * 1000).toISOString() : null,
        handshakeAgeSeconds:
          p.latestHandshakeUnix > 0 ? Math.max(0, Math.round(nowMs / 1000 - p.latestHandshakeUnix)) : null,
        rxBytes: Number(p.rxBytes),
        txBytes: Number(p.txBytes),
      }))
      .sort(byName);
  }

  /** The same peers as report messages, made straight from the WireGuard reading (no status view,
   *  ISO dates or spread objects on the way; docs/performance.md, issue 19 fifth pass). */
  async peerReports(): Promise<PeerStatus[]> {
    return (await this.readPeers())
      .map(({ p, name, probe }) =>
        create(PeerStatusSchema, {
          name,
          publicKey: p.publicKey,
          endpoint: p.endpoint,
          latestHandshakeUnix: BigInt(p.latestHandshakeUnix),
          rxBytes: p.rxBytes,
          txBytes: p.txBytes,
          isProbed: probe?.isProbed ?? false,
          isReachable: probe?.isReachable ?? false,
          rttMs: probe?.rttMs ?? 0,
          lossRatio: probe?.lossRatio ?? 0,
        }),
      )
      .sort(byName);
  }

  /** The interface's peers with their names (the key's first 8 characters for one the config does
   *  not name) and probe verdicts (absent without a prober); none when it cannot be read. */
  private async readPeers(): Promise<Array<{ p: WgPeerObserved; name: string; probe?: PeerProbeFields }>> {
    let dev;
    try {
      dev = await this.deps.host.wireguard.observe(this.deps.interfaceName);
    } catch {
      return [];
    }
    const names = this.deps.reconciler.desiredState?.peerNames ?? {};
    const prober = this.deps.prober;
    return (dev?.peers ?? []).map((p) => ({
      p,
      name: names[p.publicKey] ?? p.publicKey.slice(0, 8),
      ...(prober ? { probe: prober.peerFields(names[p.publicKey] ?? '') } : {}),
    }));
  }

  private readonly totals = new FirewallCounterTotals();
  private last: FirewallTotals = { dropped: {}, rules: [], zoneDrops: [] };
  private reading: Promise<FirewallTotals> | null = null;

  /** The firewall's drop and per-rule counters as running totals (they survive table reloads);
   *  none when the host has none or cannot read them. One `nft` reading at a time: callers while
   *  one runs share it. */
  counters(): Promise<FirewallTotals> {
    this.reading ??= (async () => {
      try {
        this.last = this.totals.update((await this.deps.host.firewall.counters?.()) ?? {});
      } catch {
        this.last = { dropped: {}, rules: [], zoneDrops: [] };
      } finally {
        this.reading = null;
      }
      return this.last;
    })();
    return this.reading;
  }

  /** The last totals at once, starting a new reading in the background: for the reports, which
   *  must never wait for nft (a slow `nft list` on a loaded box delayed them, and a box that does
   *  not report in time is judged down and failed over). */
  countersNow(): FirewallTotals {
    void this.counters();
    return this.last;
  }

  async status(): Promise<AgentStatus> {
    const { reconciler, prober, clock, connection: conn } = this.deps;
    const r = reconciler.status;
    const nowMs = clock.nowMs();
    const enrollment = this.deps.enrollment();
    return {
      name: this.deps.name,
      version: this.deps.agentVersion,
      interface: this.deps.interfaceName,
      publicKey: this.deps.publicKey,
      overlayAddress: reconciler.desiredState?.addresses[0] ?? enrollment?.overlayAddress ?? '',
      controller: {
        url: enrollment ? enrollmentUrls(enrollment).join(' ') : '',
        isConnected: conn.isConnected,
        staleSince: conn.isConnected ? null : new Date(conn.staleSinceMs).toISOString(),
        staleSeconds: conn.isConnected ? 0 : Math.max(0, (nowMs - conn.staleSinceMs) / 1000),
        reason: conn.isConnected ? null : conn.reason,
      },
      generation: {
        seen: Number(r.generationSeen),
        applied: Number(r.generationApplied),
        desired: Number(r.generationDesired),
      },
      lastApply:
        r.lastApplyAtMs === null
          ? null
          : {
              at: new Date(r.lastApplyAtMs).toISOString(),
              durationMs: r.lastApplyDurationMs ?? 0,
              steps: r.lastStepCount,
            },
      isApplied: r.generationDesired > 0n && r.generationApplied === r.generationDesired && r.errors.length === 0,
      errors: r.errors,
      peers: await this.peers(),
      probes: (prober?.probeResults() ?? []).map((x) => ({
        name: x.name,
        isOk: x.isOk,
        detail: x.detail,
        rttMs: x.rttMs,
        checkedAt: x.checkedAtUnixMs > 0n ? new Date(Number(x.checkedAtUnixMs)).toISOString() : null,
      })),
      ...(await this.counters().then((c) => ({
        firewallCounters: c.dropped,
        ruleCounters: c.rules,
        zoneDrops: c.zoneDrops,
      }))),
      ...this.clockAndWindows(nowMs),
    };
  }

  private clockAndWindows(nowMs: number): Pick<AgentStatus, 'clock' | 'ruleWindows'> {
    const { clockSkew, enforcedConfig } = this.deps;
    const windows = ruleWindowsOf(enforcedConfig?.() ?? null, clockSkew?.appliedMs ?? 0, nowMs);
    const measured = clockSkew?.measuredMs ?? null;
    return {
      ...(measured !== null && clockSkew
        ? {
            clock: {
              skewMs: measured,
              isSkewed: clockSkew.isSkewed,
              boundMs: CLOCK_SKEW_BOUND_MS,
              appliedSkewMs: clockSkew.appliedMs,
            },
          }
        : {}),
      ...(windows.length > 0 ? { ruleWindows: windows } : {}),
    };
  }
}
