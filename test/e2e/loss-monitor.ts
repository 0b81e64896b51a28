// The loss monitor of the failover scenario and bench:failover: one small python3 process in the
// client's namespace sends a numbered UDP request every 20 ms to a quiet echo server and prints, per
// request, whether its echo came back within the reply timeout; one process for the whole run
// (not one per probe), so 50 requests a second cost little CPU on a 2-core machine and the send
// times are the prober's own. The replies take the server's return path: through the LAN's virtual
// gateway, wherever it is.
import { pythonPath } from '../testbed/traffic.js';
import type { SpawnedProcess } from '../testbed/exec.js';
import type { NodeRef, Testbed } from '../testbed/testbed.js';
import { longestLossWindow, lossWindows, type LossWindow, type RequestSample } from './loss-window.js';

/** Echo server that prints only "ready": 50 datagrams a second would otherwise fill the log. */
const QUIET_UDP_ECHO = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1])))
print('ready', flush=True)
while True:
    d, a = s.recvfrom(2048)
    s.sendto(d, a)
`;

// Prints "o SEQ SENT_MS" for an answered request and "x SEQ SENT_MS" for one unanswered after the
// reply timeout; SENT_MS is wall-clock time (Date.now() on the test's side). A send error (no route
// while a box moves its routes) is a failed request, not the end of the prober.
const PROBER = `
import os, select, socket, struct, sys, time
host, port, every, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000, float(sys.argv[4]) / 1000
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
pending = {}
seq = 0
nxt = time.monotonic()
out = sys.stdout
print('ready', flush=True)
while True:
    now = time.monotonic()
    if now >= nxt:
        wall = int(time.time() * 1000)
        try:
            s.sendto(struct.pack('!QQ', seq, wall) + b'x' * 16, (host, port))
            pending[seq] = (now, wall)
        except OSError:
            out.write('x %d %d\\n' % (seq, wall))
        seq += 1
        nxt += every
        if nxt < now - every:
            nxt = now + every
    r, _, _ = select.select([s], [], [], max(0.0, nxt - time.monotonic()))
    if r:
        while True:
            try:
                d = s.recv(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if len(d) >= 16:
                q, w = struct.unpack('!QQ', d[:16])
                if q in pending and time.monotonic() - pending[q][0] <= timeout:
                    del pending[q]
                    out.write('o %d %d\\n' % (q, w))
    now = time.monotonic()
    for q in [q for q, (t, _) in pending.items() if now - t > timeout]:
        out.write('x %d %d\\n' % (q, pending.pop(q)[1]))
    out.flush()
`;

export interface LossMonitorOptions {
  /** Request period. Default 20. */
  everyMs?: number;
  /** A request whose echo takes longer counts as lost. Default 1000. */
  replyTimeoutMs?: number;
}

/** A running prober; samples accumulate until stop(). */
export class LossMonitor {
  private readonly samples: RequestSample[] = [];
  private rest = '';

  private constructor(
    private readonly bed: Testbed,
    private readonly proc: SpawnedProcess,
    readonly replyTimeoutMs: number,
  ) {
    proc.child.stdout?.on('data', (b: Buffer) => this.take(b.toString('utf8')));
  }

  /** Starts the prober in `from`, sending to toAddr:port (an echo server: startQuietUdpEcho). */
  static async start(
    bed: Testbed,
    from: NodeRef,
    toAddr: string,
    port: number,
    opts: LossMonitorOptions = {},
  ): Promise<LossMonitor> {
    const replyTimeoutMs = opts.replyTimeoutMs ?? 1000;
    const proc = bed.spawn(from, [
      pythonPath(),
      '-u',
      '-c',
      PROBER,
      toAddr,
      String(port),
      String(opts.everyMs ?? 20),
      String(replyTimeoutMs),
    ]);
    await proc.waitForOutput(/ready/, 10_000);
    return new LossMonitor(bed, proc, replyTimeoutMs);
  }

  private take(text: string): void {
    const lines = (this.rest + text).split('\n');
    this.rest = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^([ox]) \d+ (\d+)$/.exec(line);
      if (m) this.samples.push({ sentMs: Number(m[2]), isOk: m[1] === 'o' });
    }
  }

  /** Samples sent at or after sinceMs (and before untilMs), by send time. */
  since(sinceMs = 0, untilMs = Infinity): RequestSample[] {
    return this.samples.filter((s) => s.sentMs >= sinceMs && s.sentMs < untilMs).sort((a, b) => a.sentMs - b.sentMs);
  }

  windows(sinceMs = 0, untilMs = Infinity): LossWindow[] {
    return lossWindows(this.since(sinceMs, untilMs));
  }

  longest(sinceMs = 0, untilMs = Infinity): LossWindow | null {
    return longestLossWindow(this.since(sinceMs, untilMs));
  }

  /** The newest answered request was sent after `sinceMs` and none sent after it failed so far. */
  isOkSince(sinceMs: number): boolean {
    const recent = this.since(sinceMs);
    const lastFail = recent.findLast((s) => !s.isOk);
    return recent.some((s) => s.isOk && (!lastFail || s.sentMs > lastFail.sentMs));
  }

  /**
   * Waits until a request sent after sinceMs was answered with none failed after it, for `settleMs`
   * of requests; false after timeoutMs (results arrive up to the reply timeout late).
   */
  async waitOk(sinceMs: number, timeoutMs: number, settleMs = 200): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const recent = this.since(sinceMs);
      const lastFail = recent.findLast((s) => !s.isOk);
      const okAfter = recent.filter((s) => s.isOk && (!lastFail || s.sentMs > lastFail.sentMs));
      if (okAfter.length > 0 && okAfter.at(-1)!.sentMs - okAfter[0]!.sentMs >= settleMs) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  }

  /** Stops the prober by PID; the samples stay. Waits out the reply timeout first when asked, so the last requests are judged. */
  async stop(opts: { isDrained?: boolean } = {}): Promise<void> {
    if (opts.isDrained) await new Promise((r) => setTimeout(r, this.replyTimeoutMs + 100));
    await this.bed.kill(this.proc.pid, { signal: 'SIGKILL' });
  }
}

/** Starts the quiet UDP echo server the monitor sends to. */
export async function startQuietUdpEcho(bed: Testbed, on: NodeRef, port: number): Promise<SpawnedProcess> {
  const proc = bed.spawn(on, [pythonPath(), '-u', '-c', QUIET_UDP_ECHO, String(port)]);
  await proc.waitForOutput(/ready/, 10_000);
  return proc;
}
