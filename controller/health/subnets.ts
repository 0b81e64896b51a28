// Subnets as health subjects: the distributor's unserved and unconfirmed subnets, with the state
// and reason that the overall state, `crosslink status` and `crosslink check` all give them. PURE.
import type { SubnetIssue } from './types.js';

export interface UnservedInput {
  subnet: string;
  reason: string;
  isAwaitingEnrolment?: boolean;
}
export interface UnconfirmedInput {
  subnet: string;
  candidates: readonly string[];
  reason: string;
}

/**
 * Unserved: down when an enrolled box is at fault (unhealthy, not advertising a prefix); unknown
 * when its boxes have not enrolled yet, and then left out unless `withAwaiting` (a staged roll-out
 * is not an outage). Unconfirmed (its boxes still decide among themselves, none healthy to the
 * controller): degraded; the boxes' own states carry their faults.
 */
export function subnetIssues(
  unserved: readonly UnservedInput[],
  unconfirmed: readonly UnconfirmedInput[],
  o: { withAwaiting: boolean } = { withAwaiting: false },
): SubnetIssue[] {
  return [
    ...unserved
      .filter((u) => o.withAwaiting || u.isAwaitingEnrolment !== true)
      .map((u): SubnetIssue =>
        u.isAwaitingEnrolment === true
          ? { subnet: u.subnet, state: 'unknown', reason: `unserved until its box enrols: ${u.reason}` }
          : { subnet: u.subnet, state: 'down', reason: `unserved: ${u.reason}` },
      ),
    ...unconfirmed.map((u): SubnetIssue => ({
      subnet: u.subnet,
      state: 'degraded',
      reason: `served by its boxes' own choice among ${u.candidates.join(', ')}, none healthy to the controller: ${u.reason}`,
    })),
  ];
}
