// Rules with a time window (policy `not-before` / `not-after`) in the firewall renderer. PURE: no I/O,
// no clock: nft itself compares the packet's time (`meta time`, the kernel's wall clock) with the
// bounds, so a rule opens and closes on time with the agent idle and the controller unreachable.
//
// How a window is enforced (firewall-render.ts puts these lines in place):
// - New flows: the rule's set lookups are guarded by `meta time >= FROM meta time < UNTIL`, so outside
//   its window the rule matches nothing and the packet falls through to the next rule or the drop.
// - Established flows: the flow's ct mark names its rule; `ct mark M meta time >= UNTIL drop` (and
//   `< FROM`) ahead of the established accept cuts the flows the rule admitted, at the second.
// - Overlaps: the rules without a window are looked up first, then the windows, longest-lasting
//   first. A tuple a permanent rule allows always gets the permanent rule's mark, so it never dies
//   with a temporary rule that also allows it; of two temporary rules the later-ending one wins.
//
// Times are whole seconds since the epoch (nft reads a bare number as UTC seconds; a date string
// would be read in the box's local time zone). A start is rounded up and an end down, so a rule is
// never open longer than it says.
import type { FlowRule } from '../../proto/gen/crosslink/v1/agent_pb.js';

/**
 * A box whose clock differs from the controller's by more than this is "skewed": it says so
 * (status, metrics, log) and enforces windows on the safer side of both clocks (safeWindow()).
 * Within it the box trusts its own clock (NTP keeps boxes well inside 5 s; a heartbeat's
 * transit time makes smaller differences noise).
 */
export const CLOCK_SKEW_BOUND_MS = 5_000;

/** A rule's window on this box's clock, in whole seconds since the epoch: it admits in [fromS, untilS). */
export interface RuleWindow {
  fromS?: number;
  untilS?: number;
}

/**
 * The window of `rule` on this box's clock. `clockSkewMs` is this box's clock minus the
 * controller's (0: trusted). The policy's times are the controller's; a skewed box cannot know
 * which clock is right, so it takes the safer side of both: it closes when either clock says the
 * rule has ended (the earlier of T and T + skew on its own clock) and opens only when both say it
 * has begun (the later of the two). Undefined: the rule has no window.
 */
export function safeWindow(
  rule: Pick<FlowRule, 'notBeforeUnixMs' | 'notAfterUnixMs'>,
  clockSkewMs = 0,
): RuleWindow | undefined {
  const nb = Number(rule.notBeforeUnixMs);
  const na = Number(rule.notAfterUnixMs);
  if (!(nb > 0) && !(na > 0)) return undefined;
  const w: RuleWindow = {};
  if (nb > 0) w.fromS = Math.ceil(Math.max(nb, nb + clockSkewMs) / 1000);
  if (na > 0) w.untilS = Math.floor(Math.min(na, na + clockSkewMs) / 1000);
  return w;
}

/** The rules of one direction that share a window, with the text their set lookups start with. */
export interface TimeGroup {
  /** Indices into the direction's rules. */
  indices: number[];
  window?: RuleWindow;
  /** Set-name suffix: "" for the rules without a window, "_t1", "_t2", ... for the windows. */
  tag: string;
  /** `meta time ...` matches (with a trailing space) or "". */
  guard: string;
}

const INF = Number.POSITIVE_INFINITY;

/**
 * The rules grouped by window: the group without a window first (always, even empty, so a
 * firewall without windows renders as it did before windows existed), then the windows by end
 * (latest first, none = never), then start. Lookups run in this order (see the top).
 */
export function timeGroups(rules: readonly FlowRule[], clockSkewMs = 0): TimeGroup[] {
  const plain: number[] = [];
  const byKey = new Map<string, { window: RuleWindow; indices: number[] }>();
  rules.forEach((r, i) => {
    const w = safeWindow(r, clockSkewMs);
    if (w === undefined) {
      plain.push(i);
      return;
    }
    const key = `${w.fromS ?? ''}-${w.untilS ?? ''}`;
    const g = byKey.get(key);
    if (g) g.indices.push(i);
    else byKey.set(key, { window: w, indices: [i] });
  });
  const windows = [...byKey.values()].sort(
    (a, b) => (b.window.untilS ?? INF) - (a.window.untilS ?? INF) || (a.window.fromS ?? 0) - (b.window.fromS ?? 0),
  );
  return [
    { indices: plain, tag: '', guard: '' },
    ...windows.map((g, k) => ({ indices: g.indices, window: g.window, tag: `_t${k + 1}`, guard: guardOf(g.window) })),
  ];
}

function guardOf(w: RuleWindow): string {
  return `${w.fromS !== undefined ? `meta time >= ${w.fromS} ` : ''}${w.untilS !== undefined ? `meta time < ${w.untilS} ` : ''}`;
}

/**
 * The forward chain's lines that cut a windowed rule's established flows outside its window,
 * counted as the direction's drops. `marks` is (mark text, window, drop counter) per windowed rule.
 */
export function expiryDrops(marks: ReadonlyArray<{ mark: string; window: RuleWindow; counter: string }>): string[] {
  const out: string[] = [];
  for (const m of marks) {
    if (m.window.fromS !== undefined)
      out.push(`\t\tct mark ${m.mark} meta time < ${m.window.fromS} counter name "${m.counter}" drop`);
    if (m.window.untilS !== undefined)
      out.push(`\t\tct mark ${m.mark} meta time >= ${m.window.untilS} counter name "${m.counter}" drop`);
  }
  return out;
}
