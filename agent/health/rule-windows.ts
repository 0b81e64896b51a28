// The rule windows of the enforced config as status and metrics show them: when each rule opens
// and closes on this box's clock (after the safer-side shift of a skewed clock), and how long until
// then. PURE: now is passed in.
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { FIREWALL_DIRECTIONS } from '../host/firewall-names.js';
import { safeWindow } from '../host/firewall-time.js';

export interface RuleWindowView {
  rule: string;
  direction: string;
  /** When the rule opens / closes on this box's clock (ISO 8601); null: no such bound. */
  notBefore: string | null;
  notAfter: string | null;
  state: 'pending' | 'open' | 'expired';
  /** Seconds until it opens (0 once open), and until it closes (negative once expired; null: never). */
  secondsToStart: number;
  secondsToExpiry: number | null;
}

/** One entry per (rule, direction) with a window, soonest end first. */
export function ruleWindowsOf(config: AgentConfig | null, clockSkewMs: number, nowMs: number): RuleWindowView[] {
  const out: RuleWindowView[] = [];
  const seen = new Set<string>();
  for (const dir of FIREWALL_DIRECTIONS) {
    for (const r of config?.firewall?.[dir.key] ?? []) {
      const w = safeWindow(r, clockSkewMs);
      const key = `${dir.key}/${r.rule}`;
      if (w === undefined || seen.has(key)) continue;
      seen.add(key);
      const fromMs = w.fromS !== undefined ? w.fromS * 1000 : null;
      const untilMs = w.untilS !== undefined ? w.untilS * 1000 : null;
      out.push({
        rule: r.rule,
        direction: dir.key,
        notBefore: fromMs !== null ? new Date(fromMs).toISOString() : null,
        notAfter: untilMs !== null ? new Date(untilMs).toISOString() : null,
        state:
          untilMs !== null && nowMs >= untilMs ? 'expired' : fromMs !== null && nowMs < fromMs ? 'pending' : 'open',
        secondsToStart: fromMs !== null ? Math.max(0, Math.ceil((fromMs - nowMs) / 1000)) : 0,
        secondsToExpiry: untilMs !== null ? Math.floor((untilMs - nowMs) / 1000) : null,
      });
    }
  }
  return out.sort(
    (a, b) =>
      (a.secondsToExpiry ?? Infinity) - (b.secondsToExpiry ?? Infinity) ||
      (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0) ||
      (a.direction < b.direction ? -1 : 1),
  );
}
