// The health monitor's live input: one AgentHealthInput per enrolled agent, from the store (last
// report, revocation) and the distributor (stream open, desired generation, current config's peers
// and probes). Reports are stored as proto JSON; each is parsed once and cached by its report time,
// so an evaluation every few seconds does not re-parse an unchanged fleet.
import { fromJsonString } from '@bufbuild/protobuf';
import { ReportRequestSchema, type AgentConfig, type ReportRequest } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { Logger } from '../../lib/logger.js';
import type { AgentRecord } from '../store/store.js';
import type { AgentHealthInput } from './types.js';

export interface HealthSourceDeps {
  listAgents(): Promise<AgentRecord[]>;
  liveView(name: string): { isConnected: boolean; connectedSinceMs?: number | null; desiredGeneration: number };
  currentConfig(name: string): AgentConfig | undefined;
  /** Several controllers: whether the agent streams from another one (its own view is liveView). */
  isConnectedElsewhere?(a: AgentRecord): boolean;
  /** Runs before each evaluation's reads (e.g. re-reads what isConnectedElsewhere answers from). */
  refresh?(): Promise<void>;
  log: Logger;
}

export function healthSource(deps: HealthSourceDeps): () => Promise<AgentHealthInput[]> {
  const parsed = new Map<string, { atMs: number; report: ReportRequest | null }>();
  const reportOf = (a: AgentRecord): ReportRequest | null => {
    if (a.lastReport === null || a.lastReportAtMs === null) return null;
    const hit = parsed.get(a.name);
    if (hit !== undefined && hit.atMs === a.lastReportAtMs) return hit.report;
    let report: ReportRequest | null = null;
    try {
      report = fromJsonString(ReportRequestSchema, a.lastReport, { ignoreUnknownFields: true });
    } catch (err) {
      deps.log.warn(
        { agent: a.name, err: (err as Error).message },
        'health: stored report does not parse; treating the agent as not reported',
      );
    }
    parsed.set(a.name, { atMs: a.lastReportAtMs, report });
    return report;
  };
  return async () => {
    await deps.refresh?.();
    const agents = await deps.listAgents();
    const names = new Set(agents.map((a) => a.name));
    for (const name of [...parsed.keys()]) if (!names.has(name)) parsed.delete(name);
    return agents.map((a): AgentHealthInput => {
      const isRevoked = a.revokedAtMs !== null;
      let live = isRevoked ? { isConnected: false, desiredGeneration: 0 } : deps.liveView(a.name);
      if (!isRevoked && !live.isConnected && deps.isConnectedElsewhere?.(a))
        live = { isConnected: true, connectedSinceMs: null, desiredGeneration: a.desiredGeneration };
      const config = isRevoked ? undefined : deps.currentConfig(a.name);
      const report = reportOf(a);
      return {
        name: a.name,
        isRevoked,
        isConnected: live.isConnected,
        connectedSinceMs: live.connectedSinceMs ?? null,
        lastReportAtMs: report === null ? null : a.lastReportAtMs,
        desiredGeneration: live.desiredGeneration,
        lastReport: report,
        peers: (config?.peers ?? []).map((p) => p.name),
        probes: (config?.probes ?? []).map((p) => ({
          name: p.name,
          target: p.target,
          protocol: p.protocol,
          port: p.port,
          expectDeny: p.expectDeny,
        })),
        enrolledAtMs: a.enrolledAtMs,
      };
    });
  };
}
