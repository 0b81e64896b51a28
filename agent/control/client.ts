// The agent's side of the wire contract: enrollment, the config stream and reports.
// Implemented over Connect RPC with the controller's certificate pinned (agent/control/connect.ts).
import type { AgentConfig, EnrollResponse, ReportRequest } from '../../proto/gen/crosslink/v1/agent_pb.js';

export interface EnrollInput {
  name: string;
  publicKey: string;
  endpoint: string;
  advertisedSubnets: string[];
  agentVersion: string;
}

export interface ConfigStreamEvents {
  /** A full config arrived. */
  onConfig(config: AgentConfig): void;
  /** Connected / disconnected, with the reason for a disconnect. */
  onState(state: { isConnected: boolean; reason?: string; atMs: number }): void;
}

export interface ControlClient {
  enroll(joinSecret: string, input: EnrollInput): Promise<EnrollResponse>;
  /** Keeps a WatchConfig stream open until stop() resolves: detects a dead stream by missing
   *  heartbeats and reconnects with capped exponential backoff and jitter. */
  watch(events: ConfigStreamEvents, hello: { knownContentHash: () => string; endpoint: string; advertisedSubnets: string[]; agentVersion: string }): { stop(): Promise<void> };
  report(report: Omit<ReportRequest, '$typeName' | '$unknown' | 'protocolVersion'>): Promise<void>;
}
