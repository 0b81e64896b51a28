// Polling for the end-to-end tests: wait until a condition holds, or fail naming what was awaited.

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls fn until it returns a value other than undefined/false, or throws with `what` after timeoutMs. */
export async function pollUntil<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${opts.timeoutMs ?? 30_000} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`,
      );
    await sleep(opts.intervalMs ?? 100);
  }
}
