export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor?: number;
  /** 0..1: the share of each delay that is random ("full jitter" when 1). */
  jitter?: number;
}

/** Exponential backoff with jitter, capped. `random` is injectable for tests. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly opts: BackoffOptions,
    private readonly random: () => number = Math.random,
  ) {}
  next(): number {
    const { initialMs, maxMs, factor = 2, jitter = 0.5 } = this.opts;
    const base = Math.min(maxMs, initialMs * factor ** this.attempt);
    this.attempt++;
    return Math.round(base * (1 - jitter) + base * jitter * this.random());
  }
  reset(): void {
    this.attempt = 0;
  }
  get attempts(): number {
    return this.attempt;
  }
}
