// An in-memory Store for tests and benchmarks: the same observable behaviour as the kysely adapters
// (same ordering, same conditional writes, the same audit hash chain), no durability. Every value
// goes in and comes out as a copy, so callers can never change stored state behind its back.
import { CrosslinkError } from '../../lib/errors.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import { auditEntryHash, canonicalJson, GENESIS_HASH } from './audit-chain.js';
import type {
  AgentRecord,
  ApiTokenRecord,
  AuditEntry,
  AuditInput,
  JoinTokenRecord,
  NewPolicyVersion,
  PolicyVersion,
  Store,
} from './store.js';

type AgentPatch = Parameters<Store['updateAgent']>[1];

const copy = <T>(v: T): T => structuredClone(v);

/* eslint-disable @typescript-eslint/require-await -- Store is async; these answer at once, and async turns their throws into rejections as in the SQL stores */
export class MemoryStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly #clock: Clock;
  #policies: PolicyVersion[] = [];
  /** version -> the validated form stored beside it. */
  #validated = new Map<number, string>();
  #agents = new Map<string, AgentRecord>();
  #agentByCredential = new Map<string, string>();
  #joinTokens = new Map<string, JoinTokenRecord>();
  #apiTokens = new Map<string, ApiTokenRecord>();
  #audit: AuditEntry[] = [];
  #head = { lastId: 0, lastHash: GENESIS_HASH };
  #isClosed = false;

  constructor(opts: { clock?: Clock } = {}) {
    this.#clock = opts.clock ?? systemClock;
  }

  async migrate(): Promise<void> {}
  async ping(): Promise<void> {
    if (this.#isClosed) throw new CrosslinkError('unavailable', 'store is closed');
  }
  async close(): Promise<void> {
    this.#isClosed = true;
  }

  // ---- audit ---------------------------------------------------------------------------

  #appendAuditRow(input: AuditInput, atMs: number): AuditEntry {
    // Keep exactly what is hashed: the canonical form (undefined -> null, keys sorted).
    const before = JSON.parse(canonicalJson(input.before)) as unknown;
    const after = JSON.parse(canonicalJson(input.after)) as unknown;
    const actor = { name: input.actor.name, role: input.actor.role, address: input.actor.address };
    const base = { id: this.#head.lastId + 1, atMs, actor, action: input.action, target: input.target, before, after };
    const prevHash = this.#head.lastHash;
    const entry: AuditEntry = { ...base, prevHash, hash: auditEntryHash(prevHash, base) };
    this.#audit.push(entry);
    this.#head = { lastId: entry.id, lastHash: entry.hash };
    return copy(entry);
  }

  async appendAudit(entry: AuditInput, atMs: number): Promise<AuditEntry> {
    return this.#appendAuditRow(entry, atMs);
  }
  async listAudit(opts: { afterId?: number; limit?: number }): Promise<AuditEntry[]> {
    const limit = Math.max(1, Math.min(opts.limit ?? 1000, 10_000));
    const after = opts.afterId ?? 0;
    return copy(this.#audit.filter((e) => e.id > after).slice(0, limit));
  }
  async auditCount(): Promise<number> {
    return this.#audit.length;
  }
  async auditHead(): Promise<{ lastId: number; lastHash: string }> {
    return { ...this.#head };
  }

  // ---- policy --------------------------------------------------------------------------

  async currentPolicy(): Promise<PolicyVersion | null> {
    const p = this.#policies[this.#policies.length - 1];
    return p ? copy(p) : null;
  }
  async policyVersion(version: number): Promise<PolicyVersion | null> {
    const p = this.#policies.find((v) => v.version === version);
    return p ? copy(p) : null;
  }
  async listPolicyVersions(): Promise<Omit<PolicyVersion, 'document'>[]> {
    return this.#policies.map(({ version, createdAtMs, createdBy, comment }) => ({
      version,
      createdAtMs,
      createdBy,
      comment,
    }));
  }
  async currentValidatedPolicy(): Promise<(PolicyVersion & { validated: string }) | null> {
    const p = this.#policies[this.#policies.length - 1];
    return p ? { ...copy(p), validated: this.#validated.get(p.version) ?? '' } : null;
  }
  async appendPolicy(input: NewPolicyVersion, audit: AuditInput): Promise<PolicyVersion | 'conflict'> {
    const current = this.#policies.length ? this.#policies[this.#policies.length - 1]!.version : 0;
    if (current !== input.expectedVersion) return 'conflict';
    const v: PolicyVersion = {
      version: current + 1,
      document: input.document,
      createdAtMs: input.atMs,
      createdBy: input.createdBy,
      comment: input.comment,
    };
    this.#policies.push(v);
    this.#validated.set(v.version, input.validated ?? '');
    this.#appendAuditRow(audit, input.atMs);
    return copy(v);
  }

  // ---- agents --------------------------------------------------------------------------

  async listAgents(): Promise<AgentRecord[]> {
    return [...this.#agents.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map(copy);
  }
  async agentByName(name: string): Promise<AgentRecord | null> {
    const a = this.#agents.get(name);
    return a ? copy(a) : null;
  }
  async agentByCredentialHash(hash: string): Promise<AgentRecord | null> {
    const name = this.#agentByCredential.get(hash);
    return name === undefined ? null : this.agentByName(name);
  }
  async usedOverlayAddresses(): Promise<string[]> {
    return [...this.#agents.values()].map((a) => a.overlayAddress);
  }
  async enrollAgent(agent: AgentRecord, joinTokenId: string, audit: AuditInput): Promise<void> {
    this.#removeAgent(agent.name);
    this.#agents.set(agent.name, copy(agent));
    this.#agentByCredential.set(agent.credentialHash, agent.name);
    const t = this.#joinTokens.get(joinTokenId);
    if (t) t.usedAtMs = agent.enrolledAtMs;
    this.#appendAuditRow(audit, agent.enrolledAtMs);
  }
  async updateAgent(name: string, patch: AgentPatch): Promise<void> {
    const a = this.#agents.get(name);
    if (!a) return;
    for (const [k, v] of Object.entries(patch) as [keyof AgentPatch, unknown][]) {
      if (v !== undefined) (a as unknown as Record<string, unknown>)[k] = copy(v);
    }
  }
  async setDesiredGenerations(entries: { name: string; generation: number; hash: string }[]): Promise<void> {
    for (const e of entries) await this.updateAgent(e.name, { desiredGeneration: e.generation, desiredHash: e.hash });
  }
  async revokeAgent(name: string, atMs: number, audit: AuditInput): Promise<boolean> {
    const a = this.#agents.get(name);
    if (!a || a.revokedAtMs !== null) return false;
    a.revokedAtMs = atMs;
    this.#appendAuditRow(audit, atMs);
    return true;
  }
  async deleteAgent(name: string, audit: AuditInput): Promise<boolean> {
    if (!this.#removeAgent(name)) return false;
    this.#appendAuditRow(audit, this.#clock.nowMs());
    return true;
  }
  #removeAgent(name: string): boolean {
    const old = this.#agents.get(name);
    if (!old) return false;
    this.#agentByCredential.delete(old.credentialHash);
    this.#agents.delete(name);
    return true;
  }

  // ---- join tokens ---------------------------------------------------------------------

  async createJoinToken(t: JoinTokenRecord, audit: AuditInput): Promise<void> {
    if (this.#joinTokens.has(t.id)) throw new CrosslinkError('conflict', `join token ${t.id} already exists`);
    this.#joinTokens.set(t.id, copy(t));
    this.#appendAuditRow(audit, t.createdAtMs);
  }
  async joinTokenBySecretHash(hash: string): Promise<JoinTokenRecord | null> {
    for (const t of this.#joinTokens.values()) if (t.secretHash === hash) return copy(t);
    return null;
  }
  async joinTokenById(id: string): Promise<JoinTokenRecord | null> {
    const t = this.#joinTokens.get(id);
    return t ? copy(t) : null;
  }
  async listJoinTokens(): Promise<JoinTokenRecord[]> {
    return [...this.#joinTokens.values()].sort(byCreatedThenId).map(copy);
  }
  async revokeJoinToken(id: string, atMs: number, audit: AuditInput): Promise<boolean> {
    const t = this.#joinTokens.get(id);
    if (!t || t.revokedAtMs !== null) return false;
    t.revokedAtMs = atMs;
    this.#appendAuditRow(audit, atMs);
    return true;
  }

  // ---- API tokens ----------------------------------------------------------------------

  async createApiToken(t: ApiTokenRecord, audit: AuditInput | null): Promise<void> {
    for (const o of this.#apiTokens.values()) {
      if (o.name === t.name && o.revokedAtMs === null) {
        throw new CrosslinkError('conflict', `an API token named "${t.name}" already exists`, [
          { path: 'body.name', message: 'name in use' },
        ]);
      }
    }
    this.#apiTokens.set(t.id, copy(t));
    if (audit) this.#appendAuditRow(audit, t.createdAtMs);
  }
  async apiTokenBySecretHash(hash: string): Promise<ApiTokenRecord | null> {
    for (const t of this.#apiTokens.values()) if (t.secretHash === hash) return copy(t);
    return null;
  }
  async apiTokenById(id: string): Promise<ApiTokenRecord | null> {
    const t = this.#apiTokens.get(id);
    return t ? copy(t) : null;
  }
  async listApiTokens(): Promise<ApiTokenRecord[]> {
    return [...this.#apiTokens.values()].sort(byCreatedThenId).map(copy);
  }
  async revokeApiToken(id: string, atMs: number, audit: AuditInput): Promise<boolean> {
    const t = this.#apiTokens.get(id);
    if (!t || t.revokedAtMs !== null) return false;
    t.revokedAtMs = atMs;
    this.#appendAuditRow(audit, atMs);
    return true;
  }
  async touchApiToken(id: string, atMs: number): Promise<void> {
    const t = this.#apiTokens.get(id);
    if (t) t.lastUsedAtMs = atMs;
  }
}

function byCreatedThenId(a: { createdAtMs: number; id: string }, b: { createdAtMs: number; id: string }): number {
  return a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
