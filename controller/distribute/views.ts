// The compile's unserved subnets and indirect paths as the distribution port shows them.
import { isAwaitingEnrolment, pairPathJson, type PairRoute } from '../policy/index.js';
import type { PairPathView, UnservedView } from './port.js';

export const unservedView = (u: { subnet: string; reason: string }): UnservedView => ({
  subnet: u.subnet,
  reason: u.reason,
  isAwaitingEnrolment: isAwaitingEnrolment(u.reason),
});

export const pathViews = (pairs: readonly PairRoute[]): PairPathView[] =>
  pairs.map((p) => pairPathJson(p.a, p.b, p.path));
