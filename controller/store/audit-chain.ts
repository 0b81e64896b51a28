// The audit log's hash chain: each entry's hash = sha256(prevHash + canonical JSON of the entry).
// Editing, reordering or deleting an entry changes a hash that a later entry (or the head) commits to.
import { createHash } from 'node:crypto';
import type { AuditEntry } from './store.js';

export const GENESIS_HASH = '0'.repeat(64);

/** JSON with object keys sorted at every depth and no whitespace: the same value gives the same bytes. */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return 'null';
  return JSON.stringify(value);
}

/** The hashed content of an entry: everything except the two hashes. */
export function auditEntryHash(prevHash: string, e: Omit<AuditEntry, 'hash' | 'prevHash'>): string {
  const content = canonicalJson({
    id: e.id,
    atMs: e.atMs,
    actor: e.actor,
    action: e.action,
    target: e.target,
    before: e.before,
    after: e.after,
  });
  return createHash('sha256').update(prevHash).update(content).digest('hex');
}

export type AuditChainResult =
  | { isValid: true; count: number; lastHash: string }
  | { isValid: false; count: number; brokenAtId: number; index: number; reason: string };

/**
 * Checks a whole chain, oldest first. Pure. Returns the first entry where it breaks: a wrong hash
 * (edited), a prevHash that is not the previous hash, or an id gap (deleted). Pass `head` (the
 * stored newest id and hash) to also detect entries deleted from the end.
 */
export function verifyAuditChain(
  entries: readonly AuditEntry[],
  head?: { lastId: number; lastHash: string },
): AuditChainResult {
  let prevHash = GENESIS_HASH;
  let prevId = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const broken = (reason: string): AuditChainResult => ({
      isValid: false,
      count: entries.length,
      brokenAtId: e.id,
      index: i,
      reason,
    });
    if (e.id !== prevId + 1)
      return broken(`entry ${e.id} follows entry ${prevId}: entries ${prevId + 1}..${e.id - 1} are missing`);
    if (e.prevHash !== prevHash) return broken(`entry ${e.id} does not point at the hash of entry ${prevId}`);
    if (auditEntryHash(prevHash, e) !== e.hash)
      return broken(`entry ${e.id} was changed after it was written (hash mismatch)`);
    prevHash = e.hash;
    prevId = e.id;
  }
  if (head && (head.lastId !== prevId || head.lastHash !== prevHash)) {
    return {
      isValid: false,
      count: entries.length,
      brokenAtId: prevId + 1,
      index: entries.length,
      reason: `the log ends at entry ${prevId} but the head records entry ${head.lastId}: entries were removed from the end`,
    };
  }
  return { isValid: true, count: entries.length, lastHash: prevHash };
}
