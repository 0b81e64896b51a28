// The rules of the current policy that carry a window (not-before / not-after), as the controller
// shows them: in `crosslink status` (upcoming and past expiries), GET /v1/health and its metrics.
// The boxes enforce the windows themselves (docs/policy.md); this is the fleet-wide view of when.
// PURE: now is passed in.
import type { Policy } from './types.js';

export interface PolicyRuleWindow {
  rule: string;
  /** ISO 8601 (UTC); null: no such bound. */
  notBefore: string | null;
  notAfter: string | null;
  state: 'pending' | 'open' | 'expired';
  /** Seconds until it closes on the controller's clock (negative once expired); null: never. */
  secondsToExpiry: number | null;
}

/** Every rule with a window, soonest end first (no end last), then by name. */
export function policyRuleWindows(policy: Policy | null | undefined, nowMs: number): PolicyRuleWindow[] {
  const out: PolicyRuleWindow[] = [];
  for (const r of policy?.rules ?? []) {
    const from = r.notBeforeMs ?? null;
    const until = r.notAfterMs ?? null;
    if (from === null && until === null) continue;
    out.push({
      rule: r.name,
      notBefore: from === null ? null : new Date(from).toISOString(),
      notAfter: until === null ? null : new Date(until).toISOString(),
      state: until !== null && nowMs >= until ? 'expired' : from !== null && nowMs < from ? 'pending' : 'open',
      secondsToExpiry: until === null ? null : Math.floor((until - nowMs) / 1000),
    });
  }
  const end = (w: PolicyRuleWindow) => w.secondsToExpiry ?? Number.POSITIVE_INFINITY;
  return out.sort((a, b) => end(a) - end(b) || (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0));
}
