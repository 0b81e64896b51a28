// Real-traffic probes run inside a namespace: TCP connect, UDP request/reply, ICMP ping, and an
// echo server. Small python3 programs passed as argv (no shell, no files to clean up), so a probe
// costs one short process and reports *how* it failed (refused, unreachable, timed out).
import { existsSync } from 'node:fs';
import { run, type SpawnedProcess } from './exec.js';

/** python3 from the system, not a pyenv shim (a shim adds ~100 ms of shell to every probe). */
export function pythonPath(): string {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

/**
 * - open: the three-way handshake completed.
 * - refused: a TCP RST came back (no listener, or an nft `reject with tcp reset`).
 * - unreachable: an ICMP unreachable came back, or there is no route.
 * - timeout: nothing came back (dropped).
 */
export type TcpProbeResult = 'open' | 'refused' | 'unreachable' | 'timeout';

/** reply: the echo came back intact; the rest as for TCP (refused = ICMP port unreachable). */
export type UdpProbeResult = 'reply' | 'refused' | 'unreachable' | 'timeout';

export interface ProbeOptions {
  /** Give up after this long. Default 2000. */
  timeoutMs?: number;
  /** Bind the probe's socket to this local address (e.g. to send from a spoofed source). */
  bindAddress?: string;
}

const TCP_PROBE = `
import errno, socket, sys
host, port, timeout, bind = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(timeout)
try:
    if bind:
        s.bind((bind, 0))
    s.connect((host, port))
    print('open')
except ConnectionRefusedError:
    print('refused')
except socket.timeout:
    print('timeout')
except OSError as e:
    print('unreachable' if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM) else 'error %s' % e)
finally:
    s.close()
`;

const UDP_PROBE = `
import errno, socket, sys, time
host, port, timeout, bind, payload, resend = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5].encode(), float(sys.argv[6])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_DGRAM)
deadline = time.monotonic() + timeout
result = 'timeout'
try:
    if bind:
        s.bind((bind, 0))
    s.connect((host, port))
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.send(payload)
        s.settimeout(min(resend, left))
        try:
            data = s.recv(65535)
            if data == payload:
                result = 'reply'
                break
        except socket.timeout:
            pass
except ConnectionRefusedError:
    result = 'refused'
except OSError as e:
    result = 'unreachable' if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM) else 'error %s' % e
print(result)
`;

/** Echo server: prints "ready" once bound, then "from <address>" for each connection or datagram. */
export const ECHO_SERVER = `
import socket, sys, threading
proto, port, bind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kind = socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM
if bind and ':' not in bind:
    s = socket.socket(socket.AF_INET, kind)
    addr = bind
else:
    s = socket.socket(socket.AF_INET6, kind)
    addr = bind or '::'
    if not bind:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
def source(a):
    h = a[0]
    return h[7:] if h.startswith('::ffff:') else h
def serve(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
print('ready', flush=True)
if proto == 'tcp':
    s.listen(128)
    while True:
        c, a = s.accept()
        print('from', source(a), flush=True)
        threading.Thread(target=serve, args=(c,), daemon=True).start()
else:
    while True:
        d, a = s.recvfrom(65536)
        print('from', source(a), flush=True)
        s.sendto(d, a)
`;

function parseResult<T extends string>(stdout: string, allowed: readonly T[], argv: readonly string[]): T {
  const word = stdout.trim().split('\n').pop() ?? '';
  if ((allowed as readonly string[]).includes(word)) return word as T;
  throw new Error(`probe ${argv.join(' ')} gave an unexpected answer: ${stdout.trim()}`);
}

export async function tcpProbe(
  netns: string,
  toAddr: string,
  port: number,
  opts: ProbeOptions = {},
): Promise<TcpProbeResult> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const argv = [pythonPath(), '-c', TCP_PROBE, toAddr, String(port), String(timeoutMs / 1000), opts.bindAddress ?? ''];
  const r = await run(argv, { netns, timeoutMs: timeoutMs + 10_000 });
  return parseResult(r.stdout, ['open', 'refused', 'unreachable', 'timeout'] as const, argv);
}

export interface UdpProbeOptions extends ProbeOptions {
  /** The datagram sent; the echo must equal it. Default a fixed marker. */
  payload?: string;
  /** Send again after this long without a reply (the first datagram may start a handshake). Default 250. */
  resendMs?: number;
}

export async function udpProbe(
  netns: string,
  toAddr: string,
  port: number,
  opts: UdpProbeOptions = {},
): Promise<UdpProbeResult> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const argv = [
    pythonPath(),
    '-c',
    UDP_PROBE,
    toAddr,
    String(port),
    String(timeoutMs / 1000),
    opts.bindAddress ?? '',
    opts.payload ?? 'crosslink-testbed-probe',
    String((opts.resendMs ?? 250) / 1000),
  ];
  const r = await run(argv, { netns, timeoutMs: timeoutMs + 10_000 });
  return parseResult(r.stdout, ['reply', 'refused', 'unreachable', 'timeout'] as const, argv);
}

export interface PingOptions {
  /** Echo requests to send. Default 3. */
  count?: number;
  /** Between requests. Default 200 (below 200 needs root, which the testbed has). */
  intervalMs?: number;
  /** Wait this long for each reply (the last one bounds the run: about count × intervalMs + timeoutMs). Default 1000. */
  timeoutMs?: number;
  /** Source address (`ping -I`). */
  bindAddress?: string;
}

export interface PingResult {
  sent: number;
  received: number;
}

export async function ping(netns: string, addr: string, opts: PingOptions = {}): Promise<PingResult> {
  const count = opts.count ?? 3;
  const intervalMs = opts.intervalMs ?? 200;
  const timeoutMs = opts.timeoutMs ?? 1000;
  // No -w: with a deadline ping keeps sending past `count` until it has `count` replies.
  const argv = [
    'ping',
    '-n',
    '-q',
    '-c',
    String(count),
    '-i',
    String(intervalMs / 1000),
    '-W',
    String(timeoutMs / 1000),
    ...(opts.bindAddress ? ['-I', opts.bindAddress] : []),
    addr,
  ];
  const r = await run(argv, { netns, check: false, timeoutMs: count * intervalMs + timeoutMs + 10_000 });
  const m = r.stdout.match(/(\d+) packets transmitted, (\d+) (?:packets )?received/);
  if (m) return { sent: Number(m[1]), received: Number(m[2]) };
  // "connect: Network is unreachable" and the like: nothing left the host.
  if (/unreachable|no route|not permitted/i.test(r.stderr + r.stdout)) return { sent: 0, received: 0 };
  throw new Error(`ping ${addr} in ${netns}: exit ${r.code}: ${r.stderr.trim()}`);
}

/** What Testbed.listen() gives back: the echo server process and what it has seen. */
export interface Listener {
  pid: number;
  proto: 'tcp' | 'udp';
  port: number;
  process: SpawnedProcess;
  /** Distinct source addresses of connections (TCP) or datagrams (UDP) seen so far, in order of first sight. */
  sources(): string[];
  /**
   * Waits until a connection or datagram from `address` has been seen. The echo server logs it a
   * moment after the client already has its answer, so check sources() only after this.
   */
  waitForSource(address: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Waits for a spawned ECHO_SERVER to be ready and wraps it as a Listener (stopped with graceMs). */
export async function listenerFor(
  proc: SpawnedProcess,
  proto: 'tcp' | 'udp',
  port: number,
  graceMs: number,
): Promise<Listener> {
  await proc.waitForOutput(/^ready$/m, 10_000);
  return {
    pid: proc.pid,
    proto,
    port,
    process: proc,
    sources: () => [...new Set([...proc.output().matchAll(/^from (\S+)$/gm)].map((m) => m[1]!))],
    waitForSource: async (address, timeoutMs = 5000) => {
      await proc.waitForOutput(new RegExp(`^from ${address.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), timeoutMs);
    },
    close: async () => {
      await proc.stop({ graceMs });
    },
  };
}
