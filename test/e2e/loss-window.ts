// PURE: what the failover scenario and bench:failover compute from their samples. A loss window
// runs from the first failed request to the first successful one after it (both by send time);
// gateway holders are a timeline of "who has the virtual gateway" per box, from which the time to
// exactly one holder and the longest overlap of two follow. No I/O and no clock here.

/** One request of the loss monitor: when it was sent and whether its reply came back in time. */
export interface RequestSample {
  sentMs: number;
  isOk: boolean;
}

export interface LossWindow {
  /** Send time of the first failed request. */
  fromMs: number;
  /** Send time of the first successful request after it; for an open window, of the last request seen. */
  toMs: number;
  ms: number;
  /** Failed requests in the window. */
  failed: number;
  /** No request succeeded after it (still losing when the samples end). */
  isOpen: boolean;
}

/** Every loss window among the samples (sorted by send time first), oldest first. */
export function lossWindows(samples: readonly RequestSample[]): LossWindow[] {
  const sorted = [...samples].sort((a, b) => a.sentMs - b.sentMs);
  const out: LossWindow[] = [];
  let open: { fromMs: number; failed: number } | null = null;
  for (const s of sorted) {
    if (!s.isOk) {
      if (open) open.failed += 1;
      else open = { fromMs: s.sentMs, failed: 1 };
    } else if (open) {
      out.push({ fromMs: open.fromMs, toMs: s.sentMs, ms: s.sentMs - open.fromMs, failed: open.failed, isOpen: false });
      open = null;
    }
  }
  const last = sorted.at(-1);
  if (open && last)
    out.push({
      fromMs: open.fromMs,
      toMs: last.sentMs,
      ms: last.sentMs - open.fromMs,
      failed: open.failed,
      isOpen: true,
    });
  return out;
}

/** The longest loss window (an open one counts with its length so far), or null when nothing was lost. */
export function longestLossWindow(samples: readonly RequestSample[]): LossWindow | null {
  let worst: LossWindow | null = null;
  for (const w of lossWindows(samples)) if (!worst || w.ms > worst.ms) worst = w;
  return worst;
}

/**
 * When traffic came back for good after the first loss: the send time of the first answered request
 * after a failure that is followed by `settleMs` of answered requests with no failure among them;
 * null when nothing was lost, or it never settled. Losses from then on are after the recovery.
 */
export function recoveredAtMs(samples: readonly RequestSample[], settleMs: number): number | null {
  const sorted = [...samples].sort((a, b) => a.sentMs - b.sentMs);
  let isLost = false;
  let okFromMs: number | null = null;
  for (const s of sorted) {
    if (!s.isOk) {
      isLost = true;
      okFromMs = null;
    } else if (isLost) {
      okFromMs ??= s.sentMs;
      if (s.sentMs - okFromMs >= settleMs) return okFromMs;
    }
  }
  return null;
}

/**
 * A failover's loss and what came after it: `window`, the longest loss window until traffic was
 * back for good (recoveredAtMs; all of them when it never was), and `later`, every loss window
 * after that.
 */
export function failoverLoss(
  samples: readonly RequestSample[],
  settleMs: number,
): { window: LossWindow | null; later: LossWindow[] } {
  const backAtMs = recoveredAtMs(samples, settleMs);
  if (backAtMs === null) return { window: longestLossWindow(samples), later: [] };
  return {
    window: longestLossWindow(samples.filter((s) => s.sentMs <= backAtMs)),
    later: lossWindows(samples.filter((s) => s.sentMs >= backAtMs)),
  };
}

/** One observed state change: at `atMs`, `box` holds the gateway (or no longer does). */
export interface HolderEvent {
  atMs: number;
  box: string;
  isHolder: boolean;
}

export interface HolderSummary {
  /** Holders at the end of the observation, sorted. */
  holdersAtEnd: string[];
  /** Longest time two or more boxes held the gateway at once. */
  longestOverlapMs: number;
  /** Total time with two or more holders. */
  overlapTotalMs: number;
  /** Total time with no holder. */
  noHolderTotalMs: number;
  /** Earliest time from which exactly one box held it until endMs; null when that never settled. */
  settledAtMs: number | null;
  /** Boxes that became holder (from not holding) in the window, in order: a move back and forth shows twice. */
  takeovers: Array<{ atMs: number; box: string }>;
}

/**
 * Summarises holder events between startMs and endMs. `initial` is who held the gateway at startMs;
 * events before startMs are folded into it, events after endMs are ignored.
 */
export function summariseHolders(
  initial: readonly string[],
  events: readonly HolderEvent[],
  startMs: number,
  endMs: number,
): HolderSummary {
  const holders = new Set(initial);
  const sorted = [...events].sort((a, b) => a.atMs - b.atMs).filter((e) => e.atMs <= endMs);
  for (const e of sorted.filter((x) => x.atMs < startMs)) {
    if (e.isHolder) holders.add(e.box);
    else holders.delete(e.box);
  }
  let t = startMs;
  let overlapStart: number | null = holders.size >= 2 ? startMs : null;
  let longestOverlapMs = 0;
  let overlapTotalMs = 0;
  let noHolderTotalMs = 0;
  let settledAtMs: number | null = holders.size === 1 ? startMs : null;
  const takeovers: Array<{ atMs: number; box: string }> = [];
  const advance = (to: number): void => {
    if (holders.size >= 2) overlapTotalMs += to - t;
    if (holders.size === 0) noHolderTotalMs += to - t;
    t = to;
  };
  for (const e of sorted.filter((x) => x.atMs >= startMs)) {
    advance(e.atMs);
    const had = holders.has(e.box);
    if (e.isHolder) holders.add(e.box);
    else holders.delete(e.box);
    if (e.isHolder && !had) takeovers.push({ atMs: e.atMs, box: e.box });
    if (holders.size >= 2 && overlapStart === null) overlapStart = e.atMs;
    if (holders.size < 2 && overlapStart !== null) {
      longestOverlapMs = Math.max(longestOverlapMs, e.atMs - overlapStart);
      overlapStart = null;
    }
    if (holders.size === 1) settledAtMs ??= e.atMs;
    else settledAtMs = null;
  }
  advance(endMs);
  if (overlapStart !== null) longestOverlapMs = Math.max(longestOverlapMs, endMs - overlapStart);
  return {
    holdersAtEnd: [...holders].sort(),
    longestOverlapMs,
    overlapTotalMs,
    noHolderTotalMs,
    settledAtMs,
    takeovers,
  };
}

/** The median (the mean of the two middle values for an even count); NaN for an empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  // mid and mid - 1 are inside a non-empty list.
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The q-quantile (0..1) of xs by the nearest-rank method; NaN for an empty list. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil(q * s.length)));
  return s[rank - 1]!;
}
