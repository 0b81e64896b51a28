// Builders for health tests (controller/health, api, metrics, cli): a report and an agent input with
// sensible defaults, overridable per case. Test support only; nothing in production imports it.
import { create } from '@bufbuild/protobuf';
import {
  ApplyErrorSchema,
  PeerStatusSchema,
  ProbeResultSchema,
  ReportRequestSchema,
  type ApplyError,
  type PeerStatus,
  type ProbeResult,
  type ReportRequest,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { AgentHealthInput, ProbeSpec } from './types.js';

export const T0 = 1_700_000_000_000;

export interface PeerOpts {
  handshakeAgoSeconds?: number | null;
  rxBytes?: number;
  txBytes?: number;
  isProbed?: boolean;
  isReachable?: boolean;
  rttMs?: number;
  lossRatio?: number;
}

export function peerStatus(name: string, atMs: number, o: PeerOpts = {}): PeerStatus {
  const ago = o.handshakeAgoSeconds === undefined ? 20 : o.handshakeAgoSeconds;
  return create(PeerStatusSchema, {
    name,
    latestHandshakeUnix: ago === null ? 0n : BigInt(Math.floor(atMs / 1000) - ago),
    rxBytes: BigInt(o.rxBytes ?? 1000),
    txBytes: BigInt(o.txBytes ?? 2000),
    isProbed: o.isProbed ?? true,
    isReachable: o.isReachable ?? true,
    rttMs: o.rttMs ?? 1.5,
    lossRatio: o.lossRatio ?? 0,
  });
}

export function probeResult(
  name: string,
  atMs: number,
  o: Partial<{ isOk: boolean; detail: string; rttMs: number; agoMs: number }> = {},
): ProbeResult {
  return create(ProbeResultSchema, {
    name,
    isOk: o.isOk ?? true,
    detail: o.detail ?? 'connected',
    rttMs: o.rttMs ?? 2,
    checkedAtUnixMs: BigInt(atMs - (o.agoMs ?? 1000)),
  });
}

export function applyError(o: Partial<Omit<ApplyError, '$typeName' | '$unknown'>> = {}): ApplyError {
  return create(ApplyErrorSchema, {
    step: 'firewall',
    command: 'nft -f /run/crosslink/ruleset.nft',
    exitCode: 1,
    stderr: 'Error: syntax error\nmore',
    ...o,
  });
}

export function report(o: {
  applied?: number;
  seen?: number;
  atMs: number;
  peers?: PeerStatus[];
  probes?: ProbeResult[];
  errors?: ApplyError[];
}): ReportRequest {
  return create(ReportRequestSchema, {
    protocolVersion: 1,
    generationApplied: BigInt(o.applied ?? 5),
    generationSeen: BigInt(o.seen ?? o.applied ?? 5),
    agentTimeUnixMs: BigInt(o.atMs),
    peers: o.peers ?? [],
    probeResults: o.probes ?? [],
    applyErrors: o.errors ?? [],
  });
}

export function probeSpec(name: string, o: Partial<ProbeSpec> = {}): ProbeSpec {
  return { name, target: '10.20.1.5', protocol: 'tcp', port: 443, expectDeny: false, ...o };
}

/** An agent that reported `reportAgoMs` before `nowMs`, everything healthy unless overridden. */
export type AgentInputOpts = Partial<AgentHealthInput> & {
  reportAgoMs?: number;
  peerOpts?: Record<string, PeerOpts>;
  applied?: number;
  errors?: ApplyError[];
  probeResults?: ProbeResult[];
};

export function agentInput(name: string, nowMs: number, o: AgentInputOpts = {}): AgentHealthInput {
  const peers = o.peers ?? [];
  const reportAtMs = nowMs - (o.reportAgoMs ?? 2000);
  return {
    name,
    isRevoked: o.isRevoked ?? false,
    isConnected: o.isConnected ?? true,
    ...(o.connectedSinceMs !== undefined ? { connectedSinceMs: o.connectedSinceMs } : {}),
    lastReportAtMs: o.lastReportAtMs !== undefined ? o.lastReportAtMs : reportAtMs,
    desiredGeneration: o.desiredGeneration ?? 5,
    lastReport:
      o.lastReport !== undefined
        ? o.lastReport
        : report({
            atMs: reportAtMs,
            applied: o.applied ?? 5,
            peers: peers.map((p) => peerStatus(p, reportAtMs, o.peerOpts?.[p])),
            probes: o.probeResults ?? (o.probes ?? []).map((p) => probeResult(p.name, reportAtMs)),
            errors: o.errors,
          }),
    peers,
    probes: o.probes ?? [],
  };
}
