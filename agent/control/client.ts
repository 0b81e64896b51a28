// The agent's side of the wire contract: enrollment, the config stream and reports.
// Implemented over Connect RPC with the controller's certificate pinned (agent/control/connect.ts).
import type {
  AgentConfig,
  EnrollResponse,
  ReportRequest,
  TraceReport,
  TraceRequest,
} from '../../proto/gen/crosslink/v1/agent_pb.js';

/** One endpoint per named underlay the box is cabled to. */
export interface UnderlayEndpoint {
  underlay: string;
  endpoint: string;
}

/** What the agent tells the controller about itself, at enrolment and on each config stream. */
export interface AgentAnnouncement {
  /** The first endpoint (an old controller reads only this). */
  endpoint: string;
  /** Every named endpoint; empty when the box has only a bare HOST:PORT. */
  endpoints?: UnderlayEndpoint[];
  /** The box consents to relay other boxes' encrypted datagrams between its underlays. */
  isRelay?: boolean;
  advertisedSubnets: string[];
  agentVersion: string;
}

export interface EnrollInput extends AgentAnnouncement {
  name: string;
  publicKey: string;
}

export interface ConfigStreamEvents {
  /** A full config arrived. */
  onConfig(config: AgentConfig): void;
  /** Connected / disconnected, with the reason for a disconnect. */
  onState(state: { isConnected: boolean; reason?: string; atMs: number }): void;
  /** A heartbeat arrived: the controller's clock then, and this box's when it arrived. */
  onHeartbeat?(h: { serverTimeMs: number; receivedAtMs: number }): void;
  /** The controller asks this box to watch a live trace's test flow (answer with reportTrace). */
  onTraceRequest?(request: TraceRequest): void;
}

export interface ControlClient {
  enroll(joinSecret: string, input: EnrollInput): Promise<EnrollResponse>;
  /** Keeps a WatchConfig stream open until stop() resolves: detects a dead stream by missing
   *  heartbeats and reconnects with capped exponential backoff and jitter. */
  watch(
    events: ConfigStreamEvents,
    hello: AgentAnnouncement & { knownContentHash: () => string },
  ): { stop(): Promise<void> };
  report(
    report: Omit<ReportRequest, '$typeName' | '$unknown' | 'protocolVersion' | 'ruleCounters' | 'zoneDrops'> &
      Partial<Pick<ReportRequest, 'ruleCounters' | 'zoneDrops'>>,
  ): Promise<void>;
  /** Answers a TraceRequest (ReportTrace); absent: this client cannot (the request is not run). */
  reportTrace?(report: Omit<TraceReport, '$typeName' | '$unknown' | 'protocolVersion'>): Promise<void>;
  /** Releases what the client holds open (a Connect client's HTTP/2 session); absent: nothing to release. */
  close?(): Promise<void>;
}
