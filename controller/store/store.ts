// The controller's storage port. Two adapters implement it with one kysely query layer and one
// append-only migration set: SQLite (embedded, default) and PostgreSQL. A storage contract suite
// (controller/store/store.contract.ts) runs against both. Every mutating call commits durably before it
// resolves (SQLite: WAL + synchronous=FULL); audit entries are written in the same transaction as
// the change they record.

export type Role = 'admin' | 'operator' | 'auditor';

/** Who did something, for the audit log. */
export interface Actor {
  /** Token name, "agent:<name>", or "system". */
  name: string;
  role: Role | 'agent' | 'system';
  /** Remote address of the request, "" for system actions. */
  address: string;
}

export interface AuditInput {
  actor: Actor;
  /** Stable verb, e.g. "policy.put", "agent.revoke", "join_token.create". */
  action: string;
  /** What it acted on, e.g. "policy", "agent/lth-sjuh". */
  target: string;
  /** JSON-serialisable state before and after (never a secret or a hash of one). */
  before: unknown;
  after: unknown;
}

export interface AuditEntry extends AuditInput {
  id: number;
  atMs: number;
  /** sha256 hex of the previous entry's hash + this entry's canonical content. */
  hash: string;
  prevHash: string;
}

export interface PolicyVersion {
  version: number;
  /** The document exactly as submitted (YAML or JSON text). */
  document: string;
  createdAtMs: number;
  createdBy: string;
  comment: string;
}

export interface NewPolicyVersion {
  document: string;
  expectedVersion: number;
  createdBy: string;
  comment: string;
  atMs: number;
  /** The document validated, as controller/policy/stored.ts writes it; absent: ''. Read back only
   *  by currentValidatedPolicy(), never with the document (it is as large again). */
  validated?: string;
}

export interface AgentRecord {
  id: string;
  name: string;
  publicKey: string;
  /** The endpoint on the underlay "default" or, with named underlays, the first one announced. */
  endpoint: string;
  /** One per named underlay the box sits on, sorted by underlay; empty for agents that announce only `endpoint`. */
  endpoints: { underlay: string; endpoint: string }[];
  /** The box consents to relay other boxes' WireGuard datagrams between its underlays (`--relay`). */
  isRelay: boolean;
  overlayAddress: string;
  advertised: string[];
  /** sha256 hex of the agent's bearer credential. */
  credentialHash: string;
  agentVersion: string;
  protocolVersion: number;
  enrolledAtMs: number;
  revokedAtMs: number | null;
  /** Last config generation sent, and its content hash. */
  desiredGeneration: number;
  desiredHash: string;
  /** Last generation the agent reported as applied. */
  appliedGeneration: number;
  lastReportAtMs: number | null;
  /** The last ReportRequest as JSON (proto JSON form), or null. */
  lastReport: string | null;
}

export interface JoinTokenRecord {
  id: string;
  /** Agent name the token is for. */
  name: string;
  /** sha256 hex of the token secret. */
  secretHash: string;
  isReusable: boolean;
  expiresAtMs: number;
  createdAtMs: number;
  createdBy: string;
  usedAtMs: number | null;
  revokedAtMs: number | null;
}

export interface ApiTokenRecord {
  id: string;
  name: string;
  role: Role;
  secretHash: string;
  createdAtMs: number;
  createdBy: string;
  revokedAtMs: number | null;
  lastUsedAtMs: number | null;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** The leader's shared health evaluation and history (several controllers); absent in memory. */
  readonly health?: import('./health-store.js').HealthStateStore;
  /** Which replica holds each agent's stream (several controllers); absent in memory. */
  readonly streams?: import('./stream-store.js').StreamStore;
  migrate(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;

  // Policy: an append-only list of versions; the current one is the highest.
  currentPolicy(): Promise<PolicyVersion | null>;
  policyVersion(version: number): Promise<PolicyVersion | null>;
  listPolicyVersions(): Promise<Omit<PolicyVersion, 'document'>[]>;
  /** The current version with the validated form stored beside it ('' when none was). */
  currentValidatedPolicy(): Promise<(PolicyVersion & { validated: string }) | null>;
  /** Appends a version iff the current version is `expectedVersion` (0 when none); 'conflict' otherwise. */
  appendPolicy(input: NewPolicyVersion, audit: AuditInput): Promise<PolicyVersion | 'conflict'>;

  // Agents.
  listAgents(): Promise<AgentRecord[]>;
  agentByName(name: string): Promise<AgentRecord | null>;
  agentByCredentialHash(hash: string): Promise<AgentRecord | null>;
  /** Allocated overlay addresses, to pick a free one. */
  usedOverlayAddresses(): Promise<string[]>;
  /** Creates or replaces (re-enrolment of the same name) the agent; marks the join token used. */
  enrollAgent(agent: AgentRecord, joinTokenId: string, audit: AuditInput): Promise<void>;
  updateAgent(
    name: string,
    patch: Partial<
      Pick<
        AgentRecord,
        | 'endpoint'
        | 'endpoints'
        | 'isRelay'
        | 'advertised'
        | 'agentVersion'
        | 'protocolVersion'
        | 'desiredGeneration'
        | 'desiredHash'
        | 'appliedGeneration'
        | 'lastReportAtMs'
        | 'lastReport'
      >
    >,
  ): Promise<void>;
  /** Records the desired generation and hash of many agents in one transaction (one fsync for a
   *  policy change that touches hundreds of agents). Unknown names are ignored. */
  setDesiredGenerations(entries: { name: string; generation: number; hash: string }[]): Promise<void>;
  revokeAgent(name: string, atMs: number, audit: AuditInput): Promise<boolean>;
  deleteAgent(name: string, audit: AuditInput): Promise<boolean>;

  // Join tokens.
  createJoinToken(t: JoinTokenRecord, audit: AuditInput): Promise<void>;
  joinTokenBySecretHash(hash: string): Promise<JoinTokenRecord | null>;
  listJoinTokens(): Promise<JoinTokenRecord[]>;
  joinTokenById(id: string): Promise<JoinTokenRecord | null>;
  revokeJoinToken(id: string, atMs: number, audit: AuditInput): Promise<boolean>;

  // API tokens.
  createApiToken(t: ApiTokenRecord, audit: AuditInput | null): Promise<void>;
  apiTokenBySecretHash(hash: string): Promise<ApiTokenRecord | null>;
  listApiTokens(): Promise<ApiTokenRecord[]>;
  apiTokenById(id: string): Promise<ApiTokenRecord | null>;
  revokeApiToken(id: string, atMs: number, audit: AuditInput): Promise<boolean>;
  touchApiToken(id: string, atMs: number): Promise<void>;

  // Audit: append-only hash chain.
  appendAudit(entry: AuditInput, atMs: number): Promise<AuditEntry>;
  listAudit(opts: { afterId?: number; limit?: number }): Promise<AuditEntry[]>;
  auditCount(): Promise<number>;
  /** The newest entry's id and hash as recorded by the writer (id 0 and the genesis hash when empty). */
  auditHead(): Promise<{ lastId: number; lastHash: string }>;
}
