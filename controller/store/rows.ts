// Row <-> record mapping for kysely-store.ts: database rows (schema.ts) to the store's records (store.ts) and back.
import type { Selectable } from 'kysely';
import type { AgentsTable, ApiTokensTable, AuditLogTable, JoinTokensTable, PolicyVersionsTable } from './schema.js';
import type { AgentRecord, ApiTokenRecord, AuditEntry, JoinTokenRecord, PolicyVersion, Role, Store } from './store.js';

export const num = (v: number | string): number => Number(v);
const numOrNull = (v: number | string | null): number | null => (v === null ? null : Number(v));

export function toPolicy(r: Omit<Selectable<PolicyVersionsTable>, 'validated'>): PolicyVersion {
  return {
    version: num(r.version),
    document: r.document,
    createdAtMs: num(r.created_at_ms),
    createdBy: r.created_by,
    comment: r.comment,
  };
}

export function toAgent(r: Selectable<AgentsTable>): AgentRecord {
  return {
    id: r.id,
    name: r.name,
    publicKey: r.public_key,
    endpoint: r.endpoint,
    endpoints: JSON.parse(r.endpoints) as AgentRecord['endpoints'],
    isRelay: num(r.is_relay) === 1,
    overlayAddress: r.overlay_address,
    advertised: JSON.parse(r.advertised) as string[],
    credentialHash: r.credential_hash,
    agentVersion: r.agent_version,
    protocolVersion: num(r.protocol_version),
    enrolledAtMs: num(r.enrolled_at_ms),
    revokedAtMs: numOrNull(r.revoked_at_ms),
    desiredGeneration: num(r.desired_generation),
    desiredHash: r.desired_hash,
    appliedGeneration: num(r.applied_generation),
    lastReportAtMs: numOrNull(r.last_report_at_ms),
    lastReport: r.last_report,
  };
}

export function fromAgent(a: AgentRecord): AgentsTable {
  return {
    id: a.id,
    name: a.name,
    public_key: a.publicKey,
    endpoint: a.endpoint,
    endpoints: JSON.stringify(a.endpoints),
    is_relay: a.isRelay ? 1 : 0,
    overlay_address: a.overlayAddress,
    advertised: JSON.stringify(a.advertised),
    credential_hash: a.credentialHash,
    agent_version: a.agentVersion,
    protocol_version: a.protocolVersion,
    enrolled_at_ms: a.enrolledAtMs,
    revoked_at_ms: a.revokedAtMs,
    desired_generation: a.desiredGeneration,
    desired_hash: a.desiredHash,
    applied_generation: a.appliedGeneration,
    last_report_at_ms: a.lastReportAtMs,
    last_report: a.lastReport,
  };
}

/** The columns an updateAgent patch sets: only the fields it carries (none: an empty object). */
export function agentPatchRow(patch: Parameters<Store['updateAgent']>[1]): Partial<AgentsTable> {
  const set: Partial<AgentsTable> = {};
  if (patch.endpoint !== undefined) set.endpoint = patch.endpoint;
  if (patch.endpoints !== undefined) set.endpoints = JSON.stringify(patch.endpoints);
  if (patch.isRelay !== undefined) set.is_relay = patch.isRelay ? 1 : 0;
  if (patch.advertised !== undefined) set.advertised = JSON.stringify(patch.advertised);
  if (patch.agentVersion !== undefined) set.agent_version = patch.agentVersion;
  if (patch.protocolVersion !== undefined) set.protocol_version = patch.protocolVersion;
  if (patch.desiredGeneration !== undefined) set.desired_generation = patch.desiredGeneration;
  if (patch.desiredHash !== undefined) set.desired_hash = patch.desiredHash;
  if (patch.appliedGeneration !== undefined) set.applied_generation = patch.appliedGeneration;
  if (patch.lastReportAtMs !== undefined) set.last_report_at_ms = patch.lastReportAtMs;
  if (patch.lastReport !== undefined) set.last_report = patch.lastReport;
  return set;
}

export function toJoinToken(r: Selectable<JoinTokensTable>): JoinTokenRecord {
  return {
    id: r.id,
    name: r.name,
    secretHash: r.secret_hash,
    isReusable: num(r.is_reusable) === 1,
    expiresAtMs: num(r.expires_at_ms),
    createdAtMs: num(r.created_at_ms),
    createdBy: r.created_by,
    usedAtMs: numOrNull(r.used_at_ms),
    revokedAtMs: numOrNull(r.revoked_at_ms),
  };
}

export function toApiToken(r: Selectable<ApiTokensTable>): ApiTokenRecord {
  return {
    id: r.id,
    name: r.name,
    role: r.role as Role,
    secretHash: r.secret_hash,
    createdAtMs: num(r.created_at_ms),
    createdBy: r.created_by,
    revokedAtMs: numOrNull(r.revoked_at_ms),
    lastUsedAtMs: numOrNull(r.last_used_at_ms),
  };
}

export function toAudit(r: Selectable<AuditLogTable>): AuditEntry {
  return {
    id: num(r.id),
    atMs: num(r.at_ms),
    actor: { name: r.actor_name, role: r.actor_role as AuditEntry['actor']['role'], address: r.actor_address },
    action: r.action,
    target: r.target,
    before: JSON.parse(r.before_json),
    after: JSON.parse(r.after_json),
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}
