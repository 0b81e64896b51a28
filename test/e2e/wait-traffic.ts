// Waiting on real traffic: probe a flow again and again until it passes (or until it is refused)
// and say when the first packet got through (or the first one did not). Used by the scenarios that
// time a change and by the benchmark (watchFlow, for figures accurate to a few tens of ms).
import type { NodeRef, Testbed } from '../testbed/testbed.js';
import { pythonPath } from '../testbed/traffic.js';

export interface FlowRef {
  from: NodeRef;
  to: string;
  proto: 'tcp' | 'udp';
  port: number;
}

export interface WaitOptions {
  /** Give up after this long. Default 30 000. */
  timeoutMs?: number;
  /** Each probe's own timeout: how long a dropped packet is waited for. Default 500. */
  probeTimeoutMs?: number;
}

async function passes(bed: Testbed, f: FlowRef, timeoutMs: number): Promise<boolean> {
  return f.proto === 'tcp'
    ? (await bed.tcpProbe(f.from, f.to, f.port, { timeoutMs })) === 'open'
    : (await bed.udpProbe(f.from, f.to, f.port, { timeoutMs, resendMs: Math.min(100, timeoutMs) })) === 'reply';
}

/**
 * Probes until a connection succeeds; resolves with the time (Date.now()) the answer came back.
 * A probe sends at once, so the first success is at most one probe's timeout after the flow opened.
 */
export async function waitForFlowOpen(bed: Testbed, f: FlowRef, opts: WaitOptions = {}): Promise<number> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    if (await passes(bed, f, opts.probeTimeoutMs ?? 500)) return Date.now();
    if (Date.now() > deadline)
      throw new Error(
        `${String(typeof f.from === 'string' ? f.from : f.from.name)} -> ${f.to} ${f.proto}/${f.port} did not open within ${opts.timeoutMs ?? 30_000} ms`,
      );
  }
}

/**
 * Probes until a new connection fails; resolves with the time the failing probe *sent* its first
 * packet (the packet that was refused), not when it gave up waiting.
 */
export async function waitForFlowBlocked(bed: Testbed, f: FlowRef, opts: WaitOptions = {}): Promise<number> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const sentAtMs = Date.now();
    if (!(await passes(bed, f, opts.probeTimeoutMs ?? 500))) return sentAtMs;
    if (Date.now() > deadline)
      throw new Error(
        `${String(typeof f.from === 'string' ? f.from : f.from.name)} -> ${f.to} ${f.proto}/${f.port} still open after ${opts.timeoutMs ?? 30_000} ms`,
      );
  }
}

// One long-running python3 process per wait, so neither the probe's start-up nor its timeout blurs
// the figure. "open": a new non-blocking connect every 10 ms, each given 1 s, until one succeeds;
// prints the epoch ms it succeeded (a dropped SYN is not resent for a second, so attempts overlap
// rather than wait for each other). "blocked": one connect at a time, 20 ms apart, until one fails
// (no answer within 1 s, refused or unreachable); prints the epoch ms that attempt sent its SYN.
const FLOW_WATCHER = `
import errno, selectors, socket, sys, time
host, port, mode, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
family = socket.AF_INET6 if ':' in host else socket.AF_INET
print('ready', flush=True)
deadline = time.time() + limit
if mode == 'open':
    sel = selectors.DefaultSelector()
    live = []
    next_at = 0.0
    while time.time() < deadline:
        now = time.time()
        if now >= next_at:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((host, port))
            if err in (0, errno.EINPROGRESS):
                sel.register(s, selectors.EVENT_WRITE, now)
                live.append((now, s))
            else:
                s.close()
            next_at = now + 0.01
        for key, _ in sel.select(timeout=0.002):
            s = key.fileobj
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                print('at %.3f' % (time.time() * 1000), flush=True)
                sys.exit(0)
            sel.unregister(s)
            s.close()
            live = [x for x in live if x[1] is not s]
        while live and time.time() - live[0][0] > 1.0:
            old = live.pop(0)[1]
            sel.unregister(old)
            old.close()
else:
    while time.time() < deadline:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(1.0)
        sent = time.time()
        try:
            s.connect((host, port))
        except OSError:
            print('at %.3f' % (sent * 1000), flush=True)
            sys.exit(0)
        finally:
            s.close()
        time.sleep(0.02)
print('gave up', flush=True)
`;

export interface FlowWatcher {
  /** Resolves with the epoch ms the flow opened (or the refused SYN was sent); rejects after the limit. */
  result(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts watching a TCP flow for a change (open or blocked) before the change is made; `result()`
 * gives the moment it happened. Start it, make the change, then await result().
 */
export async function watchFlow(
  bed: Testbed,
  from: NodeRef,
  to: string,
  port: number,
  mode: 'open' | 'blocked',
  opts: { timeoutMs?: number } = {},
): Promise<FlowWatcher> {
  const limitMs = opts.timeoutMs ?? 30_000;
  const proc = bed.spawn(from, [
    pythonPath(),
    '-u',
    '-c',
    FLOW_WATCHER,
    to,
    String(port),
    mode,
    String(limitMs / 1000),
  ]);
  await proc.waitForOutput(/^ready$/m, 10_000);
  return {
    result: async () => {
      const m = await proc.waitForOutput(/^at ([\d.]+)$|^gave up$/m, limitMs + 10_000);
      if (!m[1]) throw new Error(`${to}:${port} was not ${mode} within ${limitMs} ms`);
      return Number(m[1]);
    },
    stop: async () => {
      await proc.stop();
    },
  };
}
