// What one controller tells the others sharing its PostgreSQL database (NOTIFY on CHANGE_CHANNEL,
// sent inside the writing transaction, so it is delivered on commit and never for a rollback).
// Pure: the shape and its parsing; the store sends, controller/distribute/replica-sync.ts listens.

export const CHANGE_CHANNEL = 'crosslink_change';

export type StoreChange =
  /** A policy version was appended: read the current one. */
  | { kind: 'policy' }
  /** Agents enrolled, revoked, deleted, or whose endpoints/subnets/relay consent changed. */
  | { kind: 'agents'; names: string[] }
  /** The leader's serving health changed (failover): [agent, may serve its subnets]. */
  | { kind: 'serving'; agents: [string, boolean][] }
  /** The leader stored a health evaluation (controller/store/health-store.ts): read it. */
  | { kind: 'health' };

/** The NOTIFY payload: the change and the replica that made it (a replica ignores its own). */
export type ChangeNotice = StoreChange & { origin: string };

/** Parses a payload; null for anything malformed (a newer release's kinds included). */
export function parseChangeNotice(payload: string | undefined): ChangeNotice | null {
  if (!payload) return null;
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.origin !== 'string') return null;
  if (o.kind === 'policy') return { kind: 'policy', origin: o.origin };
  if (o.kind === 'health') return { kind: 'health', origin: o.origin };
  if (o.kind === 'agents' && Array.isArray(o.names) && o.names.every((n) => typeof n === 'string'))
    return { kind: 'agents', names: o.names, origin: o.origin };
  if (
    o.kind === 'serving' &&
    Array.isArray(o.agents) &&
    o.agents.every((e) => Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'boolean')
  )
    return { kind: 'serving', agents: o.agents as [string, boolean][], origin: o.origin };
  return null;
}
