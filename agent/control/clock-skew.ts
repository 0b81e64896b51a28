// This box's clock against the controller's, from the heartbeats' server time. PURE: times are
// passed in. Rule windows (not-before / not-after) are enforced on the box's own clock by nft; a
// box whose clock is off by more than CLOCK_SKEW_BOUND_MS says so and enforces them on the safer
// side of both clocks (agent/host/firewall-time.ts, safeWindow()).
import { CLOCK_SKEW_BOUND_MS } from '../host/firewall-time.js';

/** Below the bound by this much before a skewed box counts as in step again (no flapping at it). */
const HYSTERESIS_MS = 1_000;

export class ClockSkew {
  /** This box's clock minus the controller's at the last heartbeat (ms); null before the first. */
  measuredMs: number | null = null;
  /** The skew rule windows are shifted by: 0 within the bound, else the measured skew in whole seconds. */
  appliedMs = 0;

  /**
   * Takes a heartbeat: `serverMs` its controller time, `receivedAtMs` this box's clock when it
   * arrived (the transit time, well under a second, counts as skew: within the bound it is noise).
   * Returns true when appliedMs changed (the firewall must be rendered again).
   */
  observe(serverMs: number, receivedAtMs: number): boolean {
    if (!(serverMs > 0)) return false; // a controller that sends no time
    const skew = receivedAtMs - serverMs;
    this.measuredMs = skew;
    const abs = Math.abs(skew);
    let next = this.appliedMs;
    if (abs > CLOCK_SKEW_BOUND_MS) {
      // Whole seconds (nft's resolution), and only when it moved by a second or more.
      if (this.appliedMs === 0 || Math.abs(skew - this.appliedMs) >= HYSTERESIS_MS)
        next = Math.round(skew / 1000) * 1000;
    } else if (abs <= CLOCK_SKEW_BOUND_MS - HYSTERESIS_MS || this.appliedMs === 0) {
      next = 0;
    }
    const isChanged = next !== this.appliedMs;
    this.appliedMs = next;
    return isChanged;
  }

  get isSkewed(): boolean {
    return this.appliedMs !== 0;
  }
}
