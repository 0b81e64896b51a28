// Reports to the controller: what is applied, the apply errors, each peer's handshake and probe
// verdict, and the path probe results. Sent after every apply that changed something or failed
// differently, at once when a probe round changed a verdict, on connecting, and periodically.
import { create } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import type { Clock } from '../lib/clock.js';
import {
  ApplyErrorSchema,
  RuleCounterSchema,
  ZoneDropCounterSchema,
  type PeerStatus,
} from '../proto/gen/crosslink/v1/agent_pb.js';
import type { ControlClient } from './control/client.js';
import type { Prober } from './health/prober.js';
import type { FirewallTotals } from './health/rule-counters.js';
import type { ApplyFailure, ApplyOutcome, Reconciler } from './reconcile/loop.js';

export interface ReporterDeps {
  /** The client to report through; null until enrolled and connected (reports are skipped). */
  control(): ControlClient | null;
  reconciler: Reconciler;
  prober: Prober | null;
  /** The interface's peers as report messages, sorted by name (StatusReader.peerReports). */
  peers(): Promise<PeerStatus[]>;
  /** The firewall's per-rule and per-zone-pair running totals as last read (StatusReader.countersNow:
   *  a report never waits for nft); absent: none reported. */
  firewallCounters?(): Pick<FirewallTotals, 'rules' | 'zoneDrops'>;
  clock: Clock;
  advertisedSubnets: string[];
  agentVersion: string;
  log: Logger;
}

const toApplyError = (e: ApplyFailure) =>
  create(ApplyErrorSchema, {
    step: e.step,
    command: e.command,
    exitCode: e.exitCode,
    stderr: e.stderr.slice(0, 4096),
    isTerminal: e.isTerminal,
  });

export class Reporter {
  private reporting: Promise<void> | null = null;
  private isReportPending = false;
  private lastApplyKey = '';
  private lastRoundKey = '';

  constructor(private readonly deps: ReporterDeps) {}

  /** Sends a report now. One at a time: a request while one is in flight is folded into one more
   *  afterwards. Never rejects (a failure is logged: the controller may be unreachable). */
  reportNow(): Promise<void> {
    if (this.reporting) {
      this.isReportPending = true;
      return this.reporting;
    }
    this.reporting = this.send()
      .catch((err: unknown) =>
        this.deps.log.debug({ err: (err as Error).message }, 'report failed (controller unreachable?)'),
      )
      .finally(() => {
        this.reporting = null;
        if (this.isReportPending) {
          this.isReportPending = false;
          void this.reportNow();
        }
      });
    return this.reporting;
  }

  /** Reports an apply that changed something or whose outcome differs from the last one reported. */
  afterApply(o: ApplyOutcome): void {
    const key = `${o.generation}:${o.errors.map((e) => `${e.step}/${e.exitCode}`).join(',')}`;
    if (o.steps.length > 0 || key !== this.lastApplyKey) {
      this.lastApplyKey = key;
      void this.reportNow();
    }
  }

  /** Reports a probe round that changed a peer's reachability or a path probe's verdict. */
  afterProbeRound(): void {
    const { prober, reconciler } = this.deps;
    if (!prober) return;
    const names = Object.values(reconciler.desiredState?.peerNames ?? {}).sort();
    const key = [
      ...names.map((n) => `${n}:${prober.peerFields(n).isReachable}`),
      ...prober.probeResults().map((x) => `${x.name}:${x.isOk}`),
    ].join(',');
    if (key !== this.lastRoundKey) {
      this.lastRoundKey = key;
      void this.reportNow();
    }
  }

  /** Settles once the report in flight (if any) has. */
  async idle(): Promise<void> {
    await this.reporting;
  }

  private async send(): Promise<void> {
    const control = this.deps.control();
    if (!control) return;
    const { reconciler, prober, clock } = this.deps;
    const r = reconciler.status;
    const peers = await this.deps.peers();
    const { rules, zoneDrops } = this.deps.firewallCounters?.() ?? { rules: [], zoneDrops: [] };
    await control.report({
      generationApplied: r.generationApplied,
      generationSeen: r.generationSeen,
      applyErrors: r.errors.map(toApplyError),
      peers,
      advertisedSubnets: this.deps.advertisedSubnets,
      agentVersion: this.deps.agentVersion,
      probeResults: prober?.probeResults() ?? [],
      agentTimeUnixMs: BigInt(clock.nowMs()),
      ruleCounters: rules.map((c) =>
        create(RuleCounterSchema, {
          rule: c.rule,
          direction: c.direction,
          connections: BigInt(c.connections),
          packets: BigInt(c.packets),
          bytes: BigInt(c.bytes),
        }),
      ),
      zoneDrops: zoneDrops.map((z) =>
        create(ZoneDropCounterSchema, {
          direction: z.direction,
          sourceZone: z.sourceZone,
          destinationZone: z.destinationZone,
          packets: BigInt(z.packets),
          bytes: BigInt(z.bytes),
        }),
      ),
    });
  }
}
