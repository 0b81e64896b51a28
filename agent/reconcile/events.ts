// Host events: a change to our interface or to a route with our protocol number kicks the
// reconciler (debounced), so drift is put right in well under the resync interval.
//
// The changes come from the host's own netlink monitor (host/linux/monitor.ts, the agent's only
// `ip monitor`), which already leaves out the route events of our own route batches: a peer joining
// does not kick a second reconcile. Its other lines (link, address and route events of anything,
// its stderr, its end) are filtered here; a stderr line (events lost) kicks too. If the monitor ends, the next read restarts it (the
// periodic resync reads) and this watcher stays subscribed; events missed meanwhile are only a
// delay, as the resync stays the guarantee.
import type { Logger } from 'pino';
import { CROSSLINK_RT_PROTO } from '../host/ports.js';

/** Changes in the host's network namespace that are not the agent's own, one line each. */
export interface HostEventFeed {
  /** Returns the unsubscribe function. */
  onChange(listener: (line: string) => void): () => void;
}

export interface HostEventsOptions {
  feed: HostEventFeed;
  interfaceName: string;
  kick: () => void;
  log: Logger;
  /** Quiet time before kicking: one burst of netlink messages becomes one reconcile. Default 300 ms. */
  debounceMs?: number;
}

const PROTO_TEXT = `proto ${CROSSLINK_RT_PROTO}`;
const PROTO_RE = new RegExp(`\\bproto ${CROSSLINK_RT_PROTO}\\b`);

/** A test for "does this monitor line concern something the agent owns", compiled once for
 *  `interfaceName`. Most lines fail the substring checks and never reach a RegExp. */
export function relevantEventFilter(interfaceName: string): (line: string) => boolean {
  const esc = interfaceName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const ifRe = new RegExp(`(^|[\\s:])${esc}([\\s:@]|$)`);
  return (line) =>
    (line.includes(interfaceName) && ifRe.test(line)) || (line.includes(PROTO_TEXT) && PROTO_RE.test(line));
}

let lastFilter: { interfaceName: string; test: (line: string) => boolean } | null = null;

/** True when a monitor line concerns something the agent owns. */
export function isRelevantEvent(line: string, interfaceName: string): boolean {
  if (lastFilter?.interfaceName !== interfaceName)
    lastFilter = { interfaceName, test: relevantEventFilter(interfaceName) };
  return lastFilter.test(line);
}

/** Kicks once `debounceMs` after the last relevant line of a burst. One timer per burst: a line
 *  only records its time, and the timer, when it fires early, waits out the rest. */
export function watchHostEvents(opts: HostEventsOptions): { stop(): void } {
  const debounceMs = opts.debounceMs ?? 300;
  const isRelevant = relevantEventFilter(opts.interfaceName);
  let lastAtMs = 0;
  let timer: NodeJS.Timeout | null = null;
  let isStopped = false;

  const arm = (delayMs: number) => {
    timer = setTimeout(fire, delayMs);
    timer.unref();
  };
  const fire = () => {
    timer = null;
    if (isStopped) return;
    const waitMs = lastAtMs + debounceMs - performance.now();
    if (waitMs > 0) return arm(waitMs);
    opts.kick();
  };

  const unsubscribe = opts.feed.onChange((line) => {
    if (isStopped) return;
    if (line.startsWith('# ended:')) {
      opts.log.warn(
        { why: line.slice(2) },
        'host event monitor ended; the next read restarts it (the resync still runs)',
      );
      return;
    }
    // "# stderr: …": the monitor lost events (ENOBUFS when a burst overflows its socket): one of
    // them may have been ours to put right, so look now rather than at the next resync.
    if (!line.startsWith('# stderr:') && !isRelevant(line)) return;
    lastAtMs = performance.now();
    if (!timer) arm(debounceMs);
  });

  return {
    stop() {
      isStopped = true;
      unsubscribe();
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
