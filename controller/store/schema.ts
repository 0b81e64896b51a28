// Table shapes as kysely sees them. Both dialects store times as integer milliseconds
// (bigint in PostgreSQL, which pg returns as a string: rows go through Number() in rows.ts).
import type { Generated } from 'kysely';

type Int = number | string;
type IntIn = number;

export interface PolicyVersionsTable {
  version: IntIn;
  document: string;
  created_at_ms: Int;
  created_by: string;
  comment: string;
  /** The validated policy as JSON (controller/policy/stored.ts), or '' (migration 004). */
  validated: string;
}

export interface AgentsTable {
  id: string;
  name: string;
  public_key: string;
  endpoint: string;
  /** JSON array of {underlay, endpoint}; '[]' when the agent announced only `endpoint`. */
  endpoints: string;
  /** 0/1: the box consents to relay (`--relay`). */
  is_relay: Int;
  overlay_address: string;
  /** JSON array of prefixes. */
  advertised: string;
  credential_hash: string;
  agent_version: string;
  protocol_version: Int;
  enrolled_at_ms: Int;
  revoked_at_ms: Int | null;
  desired_generation: Int;
  desired_hash: string;
  applied_generation: Int;
  last_report_at_ms: Int | null;
  last_report: string | null;
}

export interface JoinTokensTable {
  id: string;
  name: string;
  secret_hash: string;
  /** 0/1: one integer type works the same on both dialects. */
  is_reusable: Int;
  expires_at_ms: Int;
  created_at_ms: Int;
  created_by: string;
  used_at_ms: Int | null;
  revoked_at_ms: Int | null;
}

export interface ApiTokensTable {
  id: string;
  name: string;
  role: string;
  secret_hash: string;
  created_at_ms: Int;
  created_by: string;
  revoked_at_ms: Int | null;
  last_used_at_ms: Int | null;
}

export interface AuditLogTable {
  id: Int;
  at_ms: Int;
  actor_name: string;
  actor_role: string;
  actor_address: string;
  action: string;
  target: string;
  before_json: string;
  after_json: string;
  prev_hash: string;
  hash: string;
}

/** One row (id = 1): the newest audit entry. Writers lock it, which serialises the chain. */
export interface AuditHeadTable {
  id: Generated<number>;
  last_id: Int;
  last_hash: string;
}

/** One row (id = 1): the leader's latest health evaluation (migration 003). */
export interface HealthStateTable {
  id: number;
  /** Bumped by each new leader; a write names its term, so a deposed leader's write changes nothing. */
  term: Int;
  evaluated_by: string;
  evaluated_at_ms: Int;
  /** HealthSnapshot as JSON; '' before the first evaluation. */
  snapshot_json: string;
  /** [agent, ServingState][] as JSON. */
  serving_json: string;
}

export interface HealthEventsTable {
  id: Int;
  at_ms: Int;
  subject: string;
  kind: string;
  from_state: string | null;
  to_state: string | null;
  reason: string;
}

export interface Database {
  policy_versions: PolicyVersionsTable;
  agents: AgentsTable;
  join_tokens: JoinTokensTable;
  api_tokens: ApiTokensTable;
  audit_log: AuditLogTable;
  audit_head: AuditHeadTable;
  health_state: HealthStateTable;
  health_events: HealthEventsTable;
  agent_streams: AgentStreamsTable;
  replicas: ReplicasTable;
}

/** Which replica holds an agent's stream (migration 005, controller/store/stream-store.ts). */
export interface AgentStreamsTable {
  agent: string;
  replica: string;
  since_ms: Int;
}

export interface ReplicasTable {
  id: string;
  seen_at_ms: Int;
}
