// Host events: `ip monitor link route` in the agent's own network namespace. A change to our
// interface or to a route with our protocol number kicks the reconciler (debounced), so drift is
// put right in well under the resync interval. The resync stays the guarantee: if the monitor dies
// it is restarted with backoff, and a missed event is only a delay.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { Backoff } from '../../lib/backoff.js';
import { CROSSLINK_RT_PROTO } from '../host/ports.js';

export interface HostEventsOptions {
  interfaceName: string;
  kick: () => void;
  log: Logger;
  /** Quiet time before kicking: one burst of netlink messages becomes one reconcile. Default 300 ms. */
  debounceMs?: number;
  /** The monitor command (tests replace it). */
  argv?: string[];
}

/** True when a monitor line concerns something the agent owns. */
export function isRelevantEvent(line: string, interfaceName: string): boolean {
  const esc = interfaceName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[\\s:])${esc}([\\s:@]|$)`).test(line) || new RegExp(`\\bproto ${CROSSLINK_RT_PROTO}\\b`).test(line);
}

export function watchHostEvents(opts: HostEventsOptions): { stop(): void } {
  const argv = opts.argv ?? ['ip', 'monitor', 'link', 'route'];
  const debounceMs = opts.debounceMs ?? 300;
  const backoff = new Backoff({ initialMs: 1_000, maxMs: 30_000, jitter: 0.5 });
  let child: ChildProcess | null = null;
  let debounce: NodeJS.Timeout | null = null;
  let restart: NodeJS.Timeout | null = null;
  let isStopped = false;

  const onLine = (line: string) => {
    if (!isRelevantEvent(line, opts.interfaceName)) return;
    if (debounce) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = null;
      opts.kick();
    }, debounceMs);
    debounce.unref();
  };

  const start = () => {
    if (isStopped) return;
    const startedAtMs = Date.now();
    const c = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
    child = c;
    createInterface({ input: c.stdout! }).on('line', onLine);
    const onEnd = (why: string) => {
      if (child !== c) return;
      child = null;
      if (isStopped) return;
      if (Date.now() - startedAtMs > 60_000) backoff.reset();
      const delayMs = backoff.next();
      opts.log.warn({ argv, why, retryInMs: delayMs }, 'host event monitor ended; restarting (the resync still runs)');
      restart = setTimeout(start, delayMs);
      restart.unref();
    };
    c.on('error', (e) => onEnd(e.message));
    c.on('exit', (code, signal) => onEnd(`exit ${code ?? signal}`));
  };
  start();

  return {
    stop() {
      isStopped = true;
      if (debounce) clearTimeout(debounce);
      if (restart) clearTimeout(restart);
      // By its PID: only the monitor this watcher started.
      if (child?.pid) child.kill('SIGTERM');
      child = null;
    },
  };
}
