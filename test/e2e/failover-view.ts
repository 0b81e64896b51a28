// An agent's failover view (its local /status) as one line, for diagnosing a failed e2e check:
// a sender's choice per group, a candidate's gateway holding, and the echo's peer states with how
// long each has held (a peer "up 12 s" was not up 12 s ago).
import type { FailoverStatusView } from '../../agent/failover/engine.js';
import type { Fleet } from './fleet.js';

/** One line of an agent's failover view (its /status), for a failure's diagnosis. */
export async function failoverLine(fleet: Fleet, name: string): Promise<string> {
  try {
    const f = (await fleet.agentStatus(name))['failover'] as FailoverStatusView | undefined;
    if (!f) return 'no serving groups';
    const groups = f.groups.map((g) =>
      g.role === 'sender' ? `${g.name} -> ${g.active}` : `${g.name} ${g.isHolding ? 'HOLDING' : 'not holding'}`,
    );
    const peers = f.peers.map((p) => `${p.name} ${p.state} ${p.forSeconds ?? '?'} s`);
    return `eligible ${f.isEligible}; ${groups.join(', ')}; echo: ${peers.join(', ')}`;
  } catch (e) {
    return `status unreadable (${(e as Error).message})`;
  }
}
