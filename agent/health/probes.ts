// The agent's prober. Two kinds of evidence that forwarding works:
//
// - Peer probes: an ICMP echo to each peer's overlay address every few seconds. It goes through
//   WireGuard (the route to the overlay is the tunnel), so an answer proves the tunnel carries
//   packets both ways, which a fresh handshake alone does not. Node has no raw ICMP, so one
//   `fping -C 1 -q` per round echoes every peer (up to FPING_MAX_TARGETS per process), in the
//   agent's own namespace; the source is the overlay address the kernel picks for that route.
//   Without fping (checked once with `fping -v`) it falls back to one iputils `ping -n -c 1 -W 1`
//   per peer — a fork of the whole agent per peer and round. Reachability, RTT and loss over the
//   last 10 go into PeerStatus, the same for both.
// - Path probes (`Probe` in the config): from the agent's own address inside the probe's source
//   subnet to a real target (tcp connect, udp request/reply, or ping -I), so the packets cross both
//   boxes' firewalls like user traffic. `expect_deny` inverts success. Results become ProbeResult.
//
// Everything that touches the host is injected (command runner, tcp connect, udp exchange, local
// addresses, clock, timers); the real implementations are exported next to the ports.
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import { create } from '@bufbuild/protobuf';
import ipaddr from 'ipaddr.js';
import { ProbeResultSchema, type AgentConfig, type Probe, type ProbeResult } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';

// ---- ports --------------------------------------------------------------------------------------

/** Runs a command (argv, no shell) and returns its exit code, never throwing on a non-zero one.
 *  The agent's Linux CommandRunner (agent/host/linux/run.ts) fits as it is. */
export interface ProbeCommandRunner {
  run(argv: readonly string[], opts: { allowFailure: true; timeoutMs: number }): Promise<{ exitCode: number; stdout: string; stderr: string }>;
}

/**
 * How an attempt ended. connected: an answer (TCP handshake, UDP reply, echo reply). refused: the
 * target said no (RST, ICMP port unreachable). unreachable: the network said no (ICMP host or
 * admin unreachable, no route). timeout: silence. error: we could not even try (e.g. the source
 * address is not ours) — never counts as success, not even for a deny probe.
 */
export type AttemptOutcome =
  | { kind: 'connected'; rttMs: number }
  | { kind: 'refused'; detail: string }
  | { kind: 'unreachable'; detail: string }
  | { kind: 'timeout'; detail: string }
  | { kind: 'error'; detail: string };

export interface AttemptOptions {
  host: string;
  port: number;
  /** Source address to bind; absent: the kernel chooses. */
  localAddress?: string;
  timeoutMs: number;
}

export type TcpConnect = (o: AttemptOptions) => Promise<AttemptOutcome>;
export type UdpExchange = (o: AttemptOptions & { payload: Buffer }) => Promise<AttemptOutcome>;
/** The box's own addresses (no prefix length), every interface. */
export type LocalAddressLookup = () => readonly string[] | Promise<readonly string[]>;

export interface ProbeTimers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

// ---- real implementations -----------------------------------------------------------------------

function classifySocketError(e: NodeJS.ErrnoException, timeoutMs: number): AttemptOutcome {
  switch (e.code) {
    case 'ECONNREFUSED': return { kind: 'refused', detail: 'connection refused' };
    case 'EHOSTUNREACH': return { kind: 'unreachable', detail: 'no route to host' };
    case 'ENETUNREACH': return { kind: 'unreachable', detail: 'network unreachable' };
    // A local firewall rejecting the packet on output.
    case 'EPERM': case 'EACCES': return { kind: 'unreachable', detail: 'blocked by a local firewall' };
    case 'ETIMEDOUT': return { kind: 'timeout', detail: `timeout after ${timeoutMs} ms` };
    default: return { kind: 'error', detail: `${e.code ?? 'error'}: ${e.message}` };
  }
}

/** TCP connect with node:net; resolves (never rejects) once connected, refused or timed out. */
export const connectTcp: TcpConnect = (o) => new Promise((resolve) => {
  const startedMs = performance.now();
  let isDone = false;
  const socket = net.connect({ host: o.host, port: o.port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
  const finish = (outcome: AttemptOutcome): void => {
    if (isDone) return;
    isDone = true;
    clearTimeout(timer);
    socket.destroy();
    resolve(outcome);
  };
  const timer = setTimeout(() => finish({ kind: 'timeout', detail: `timeout after ${o.timeoutMs} ms` }), o.timeoutMs);
  socket.once('connect', () => finish({ kind: 'connected', rttMs: performance.now() - startedMs }));
  socket.once('error', (e: NodeJS.ErrnoException) => finish(classifySocketError(e, o.timeoutMs)));
});

/** One UDP datagram to host:port from a connected socket; an answer of any content is success,
 *  an ICMP port unreachable arrives as ECONNREFUSED. */
export const udpExchange: UdpExchange = (o) => new Promise((resolve) => {
  const socket = dgram.createSocket(net.isIPv6(o.host) ? 'udp6' : 'udp4');
  let startedMs = performance.now();
  let isDone = false;
  const finish = (outcome: AttemptOutcome): void => {
    if (isDone) return;
    isDone = true;
    clearTimeout(timer);
    try { socket.close(); } catch { /* already closed */ }
    resolve(outcome);
  };
  const timer = setTimeout(() => finish({ kind: 'timeout', detail: `no reply within ${o.timeoutMs} ms` }), o.timeoutMs);
  socket.on('error', (e: NodeJS.ErrnoException) => finish(classifySocketError(e, o.timeoutMs)));
  socket.on('message', () => finish({ kind: 'connected', rttMs: performance.now() - startedMs }));
  socket.bind({ port: 0, ...(o.localAddress ? { address: o.localAddress } : {}) }, () => {
    socket.connect(o.port, o.host, () => {
      startedMs = performance.now();
      socket.send(o.payload, (err) => { if (err) finish(classifySocketError(err as NodeJS.ErrnoException, o.timeoutMs)); });
    });
  });
});

/** Every address on the box's interfaces (node:os), without zone suffixes. */
export const osLocalAddresses: LocalAddressLookup = () =>
  Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.split('%')[0]));

// ---- pure helpers -------------------------------------------------------------------------------

/** The first of `addresses` inside `prefix` (sorted, so the choice is stable), or null. */
export function sourceAddressFor(prefix: string, addresses: readonly string[]): string | null {
  let range: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    range = ipaddr.parseCIDR(prefix);
  } catch {
    return null;
  }
  const inside = addresses.filter((a) => {
    if (!ipaddr.isValid(a)) return false;
    const addr = ipaddr.parse(a);
    return addr.kind() === range[0].kind() && addr.match(range);
  });
  return inside.length > 0 ? [...inside].sort()[0] : null;
}

/** Parses iputils ping output: "64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.045 ms". */
export function parsePingRttMs(stdout: string): number | null {
  const m = /time[=<]\s*([\d.]+)\s*ms/.exec(stdout);
  return m ? Number(m[1]) : null;
}

/** One echo with `ping -n -c 1 -W SECONDS [-I SOURCE] TARGET` (iputils). */
export async function pingOnce(runner: ProbeCommandRunner, target: string, o: { sourceAddress?: string; timeoutSeconds: number }): Promise<AttemptOutcome> {
  const argv = ['ping', '-n', '-c', '1', '-W', String(o.timeoutSeconds), ...(o.sourceAddress ? ['-I', o.sourceAddress] : []), target];
  let r: { exitCode: number; stdout: string; stderr: string };
  try {
    // ping exits after -W seconds; the extra second only guards against a hung process.
    r = await runner.run(argv, { allowFailure: true, timeoutMs: (o.timeoutSeconds + 1) * 1000 });
  } catch (e) {
    return { kind: 'error', detail: `ping: ${(e as Error).message}` };
  }
  if (r.exitCode === 0) return { kind: 'connected', rttMs: parsePingRttMs(r.stdout) ?? 0 };
  if (r.exitCode === 1) {
    // "From 10.0.0.1 icmp_seq=1 Destination Host Unreachable" / "Packet filtered" etc.
    const from = /From \S+ icmp_seq=\d+ (.+)/.exec(r.stdout);
    return from ? { kind: 'unreachable', detail: from[1].trim().toLowerCase() } : { kind: 'timeout', detail: `no reply within ${o.timeoutSeconds} s` };
  }
  const why = (r.stderr || r.stdout).trim().split('\n')[0] || `exit ${r.exitCode}`;
  return { kind: 'error', detail: `ping: ${why}` };
}

/** Turns an attempt into the probe's verdict: allow probes want `connected`, deny probes want the
 *  target refused, unreachable or silent. */
export function judgeProbe(probe: Pick<Probe, 'expectDeny'>, outcome: AttemptOutcome): { isOk: boolean; detail: string; rttMs: number } {
  if (outcome.kind === 'connected') {
    const rtt = `${outcome.rttMs.toFixed(1)} ms`;
    return probe.expectDeny
      ? { isOk: false, detail: `connected in ${rtt}, but the path should be denied`, rttMs: outcome.rttMs }
      : { isOk: true, detail: `connected in ${rtt}`, rttMs: outcome.rttMs };
  }
  if (outcome.kind === 'error') return { isOk: false, detail: outcome.detail, rttMs: 0 };
  return { isOk: probe.expectDeny, detail: probe.expectDeny ? `denied: ${outcome.detail}` : outcome.detail, rttMs: 0 };
}

// ---- peer echoes: one fping for all peers, or one ping per peer ---------------------------------

/** One ICMP echo to each address, all addresses of a round at once. */
export interface PeerEchoes {
  /** How: 'fping' (one process per FPING_MAX_TARGETS addresses) or 'ping' (one process each). */
  readonly method: 'fping' | 'ping';
  /** The outcome of every address given (keyed by the same strings). Never rejects. */
  echoAll(addresses: readonly string[], timeoutSeconds: number): Promise<Map<string, AttemptOutcome>>;
}

/** fping's pause between two echoes of one process (`-i`, ms; its default is 10, which would make
 *  1,000 peers take 10 s). At 1 ms, 1,000 peers are sent in ~1 s and a round ends ~1 s + the timeout
 *  after it started (2.1 s measured), well inside the default 5 s interval. Not 0, though 0 measured
 *  lossless on a veth (1,000 in 17 ms): 1 is the least an fping built with safe limits allows a
 *  non-root user (the agent runs as `crosslink` with capabilities), and it spares the tunnel and
 *  the receiving socket a burst of 1,000 echoes and replies. */
export const FPING_INTERVAL_MS = 1;
/** Addresses per fping process. More peers run in several processes side by side, so a round never
 *  takes longer than ~FPING_MAX_TARGETS x FPING_INTERVAL_MS + the timeout (and argv stays ~40 KB). */
export const FPING_MAX_TARGETS = 1000;

/** `fping -C 1 -q -t MS -i 1 -r 0 -- ADDR...`: one echo each; with -C and -q the only output is one
 *  line per target on stderr, `ADDR : RTT` or `ADDR : -` (lost). `--` so nothing is read as an option. */
export function fpingArgv(addresses: readonly string[], timeoutSeconds: number): string[] {
  return ['fping', '-C', '1', '-q', '-t', String(timeoutSeconds * 1000), '-i', String(FPING_INTERVAL_MS), '-r', '0', '--', ...addresses];
}

// `ADDR : 0.734` / `ADDR : -` (the name is padded to the longest one). Per-reply lines of a
// non-quiet run (`ADDR : [0], 64 bytes, 0.019 ms (...)`) and duplicates (`ADDR : duplicate for
// [0], ...`, printed even with -q) do not match.
const FPING_SUMMARY = /^(\S+)\s+:((?:\s+(?:-|\d+(?:\.\d+)?))*)\s*$/;
// `ICMP Host Unreachable from 10.0.0.1 for ICMP Echo sent to 10.0.0.3` (without -q only).
const FPING_ICMP = /^(ICMP .+ from \S+) for ICMP Echo sent to (\S+)\s*$/;
// `nosuch.invalid: Name or service not known` (a target fping could not resolve; without -q only).
const FPING_TARGET_ERROR = /^(\S+): (.+)$/;

/**
 * fping's result for `targets` as one outcome per target, like pingOnce's: `connected` with the RTT,
 * `unreachable` when an ICMP error came back, `timeout` when nothing did (both `-` in the summary),
 * and `error` when fping said nothing about the target (it could not resolve it, failed as a whole,
 * or was killed). Pure; any exit code, stdout and stderr together.
 */
export function parseFping(targets: readonly string[], r: { exitCode: number; stdout: string; stderr: string }, timeoutSeconds: number): Map<string, AttemptOutcome> {
  const wanted = new Set(targets);
  const summaries = new Map<string, string[]>();
  const icmp = new Map<string, string>();
  const errors = new Map<string, string>();
  const other: string[] = [];
  for (const raw of `${r.stderr}\n${r.stdout}`.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    let m = FPING_SUMMARY.exec(line);
    if (m && wanted.has(m[1])) {
      const tokens = m[2].trim().split(/\s+/).filter(Boolean);
      if (tokens.length > 0) summaries.set(m[1], tokens);
      continue;
    }
    m = FPING_ICMP.exec(line);
    if (m) {
      if (wanted.has(m[2]) && !icmp.has(m[2])) icmp.set(m[2], m[1].toLowerCase());
      continue;
    }
    if (/^\S+\s+: /.test(line)) continue; // per-reply, timed-out and duplicate lines
    m = FPING_TARGET_ERROR.exec(line);
    if (m && wanted.has(m[1])) errors.set(m[1], m[2]);
    else other.push(line);
  }
  const why = other[0] ?? '';
  const failed = `fping: ${r.exitCode === -1 ? 'killed (timeout)' : `exit ${r.exitCode}`}${why ? `: ${why}` : ', no result'}`;
  const out = new Map<string, AttemptOutcome>();
  for (const target of targets) {
    const tokens = summaries.get(target);
    const rtts = (tokens ?? []).filter((x) => x !== '-').map(Number);
    if (rtts.length > 0) out.set(target, { kind: 'connected', rttMs: rtts[rtts.length - 1] });
    else if (tokens !== undefined) {
      const unreachable = icmp.get(target);
      out.set(target, unreachable !== undefined ? { kind: 'unreachable', detail: unreachable } : { kind: 'timeout', detail: `no reply within ${timeoutSeconds} s` });
    } else {
      const e = errors.get(target);
      out.set(target, { kind: 'error', detail: e !== undefined ? `fping: ${target}: ${e}` : failed });
    }
  }
  return out;
}

/** The installed fping's version ("5.1") from `fping -v`, or null when there is none (or it is
 *  older than 4.0, which had no IPv6 in the same binary). */
export async function detectFping(runner: ProbeCommandRunner): Promise<string | null> {
  try {
    const r = await runner.run(['fping', '-v'], { allowFailure: true, timeoutMs: 5000 });
    const m = /fping: Version (\d+)\.(\S+)/.exec(r.stdout + r.stderr);
    return r.exitCode === 0 && m !== null && Number(m[1]) >= 4 ? `${m[1]}.${m[2]}` : null;
  } catch {
    return null; // not installed: the spawn itself failed
  }
}

/** All addresses of a round in one fping process (or one per FPING_MAX_TARGETS, side by side). */
export class FpingEchoes implements PeerEchoes {
  readonly method = 'fping';
  private lastWarning: string | null = null;

  constructor(private readonly deps: { runner: ProbeCommandRunner; log?: Logger }) {}

  async echoAll(addresses: readonly string[], timeoutSeconds: number): Promise<Map<string, AttemptOutcome>> {
    const out = new Map<string, AttemptOutcome>();
    const targets: string[] = [];
    for (const a of new Set(addresses)) {
      // Only literal addresses: fping would resolve a name (and its DNS wait would hold up everyone).
      if (net.isIP(a) !== 0) targets.push(a);
      else out.set(a, { kind: 'error', detail: `not an IP address: "${a}"` });
    }
    const chunks: string[][] = [];
    for (let i = 0; i < targets.length; i += FPING_MAX_TARGETS) chunks.push(targets.slice(i, i + FPING_MAX_TARGETS));
    const results = await Promise.all(chunks.map((chunk) => this.run(chunk, timeoutSeconds)));
    for (const r of results) for (const [a, o] of r) out.set(a, o);
    return out;
  }

  private async run(targets: readonly string[], timeoutSeconds: number): Promise<Map<string, AttemptOutcome>> {
    let r: { exitCode: number; stdout: string; stderr: string };
    try {
      // fping ends ~targets x interval + the timeout after it started; the rest guards against a hang.
      r = await this.deps.runner.run(fpingArgv(targets, timeoutSeconds), { allowFailure: true, timeoutMs: targets.length * FPING_INTERVAL_MS + timeoutSeconds * 1000 + 5000 });
    } catch (e) {
      r = { exitCode: 127, stdout: '', stderr: (e as Error).message };
    }
    const outcomes = parseFping(targets, r, timeoutSeconds);
    // fping failing as a whole (no socket, killed) makes every peer look lost: say so, once.
    const all = [...outcomes.values()];
    if (all.length > 0 && all.every((o) => o.kind === 'error')) {
      const detail = all[0].kind === 'error' ? all[0].detail : '';
      if (detail !== this.lastWarning) this.deps.log?.warn({ detail, targets: targets.length }, 'fping gave no peer probe results');
      this.lastWarning = detail;
    } else {
      this.lastWarning = null;
    }
    return outcomes;
  }
}

/** The fallback without fping: one `ping` per address, `concurrency` at a time. */
export class PingEachEchoes implements PeerEchoes {
  readonly method = 'ping';

  constructor(private readonly deps: { runner: ProbeCommandRunner; concurrency?: number }) {}

  async echoAll(addresses: readonly string[], timeoutSeconds: number): Promise<Map<string, AttemptOutcome>> {
    const out = new Map<string, AttemptOutcome>();
    const queue = [...new Set(addresses)];
    const worker = async (): Promise<void> => {
      for (let a = queue.shift(); a !== undefined; a = queue.shift()) out.set(a, await pingOnce(this.deps.runner, a, { timeoutSeconds }));
    };
    await Promise.all(Array.from({ length: Math.min(this.deps.concurrency ?? 32, queue.length) }, worker));
    return out;
  }
}

// ---- peer probes --------------------------------------------------------------------------------

/** The PeerStatus fields the prober fills in. */
export interface PeerProbeFields {
  isProbed: boolean;
  isReachable: boolean;
  /** Of the last successful probe; 0 if none. */
  rttMs: number;
  /** Over the last `windowSize` probes, 0..1. */
  lossRatio: number;
}

export const NOT_PROBED: PeerProbeFields = Object.freeze({ isProbed: false, isReachable: false, rttMs: 0, lossRatio: 0 });

interface PeerWindow { results: boolean[]; lastRttMs: number }

export interface PeerTarget { name: string; overlayIp: string }

/** Probes a new peer must have lost (with none answered) before it counts as unreachable. */
export const MIN_PROBES_FOR_LOSS = 3;

export interface PeerProberDeps {
  runner: ProbeCommandRunner;
  log?: Logger;
  windowSize?: number;
  timeoutSeconds?: number;
  /** Pings at a time on the fallback path. */
  concurrency?: number;
  /** How to echo; absent: fping if `fping -v` works (checked once, at the first round), else ping. */
  echoes?: PeerEchoes;
}

export class PeerProber {
  private readonly windows = new Map<string, PeerWindow>();
  private readonly windowSize: number;
  private readonly timeoutSeconds: number;
  private echoes: Promise<PeerEchoes> | null;

  constructor(private readonly deps: PeerProberDeps) {
    this.windowSize = deps.windowSize ?? 10;
    this.timeoutSeconds = deps.timeoutSeconds ?? 1;
    this.echoes = deps.echoes ? Promise.resolve(deps.echoes) : null;
  }

  /** fping when it is installed, else one ping per peer; decided once, at the first round. */
  private chooseEchoes(): Promise<PeerEchoes> {
    this.echoes ??= detectFping(this.deps.runner).then((version) => {
      if (version !== null) {
        this.deps.log?.info({ version }, 'peer probes: one fping per round');
        return new FpingEchoes({ runner: this.deps.runner, log: this.deps.log });
      }
      this.deps.log?.warn('fping is not installed: peer probes run one ping per peer (install the fping package)');
      return new PingEachEchoes({ runner: this.deps.runner, concurrency: this.deps.concurrency });
    });
    return this.echoes;
  }

  /** Probes every peer once (all at once) and forgets peers no longer listed. */
  async probeAll(peers: readonly PeerTarget[]): Promise<void> {
    const names = new Set(peers.map((p) => p.name));
    for (const name of [...this.windows.keys()]) if (!names.has(name)) this.windows.delete(name);
    const probed = peers.filter((p) => p.overlayIp !== '');
    if (probed.length === 0) return;
    const echoes = await this.chooseEchoes();
    const outcomes = await echoes.echoAll(probed.map((p) => p.overlayIp), this.timeoutSeconds);
    for (const p of probed) this.record(p.name, outcomes.get(p.overlayIp) ?? { kind: 'error', detail: 'no result' });
  }

  private record(name: string, outcome: AttemptOutcome): void {
    const w = this.windows.get(name) ?? { results: [], lastRttMs: 0 };
    const isReachable = outcome.kind === 'connected';
    w.results.push(isReachable);
    if (w.results.length > this.windowSize) w.results.shift();
    if (outcome.kind === 'connected') w.lastRttMs = outcome.rttMs;
    this.windows.set(name, w);
  }

  fields(name: string): PeerProbeFields {
    const w = this.windows.get(name);
    if (w === undefined || w.results.length === 0) return NOT_PROBED;
    const lost = w.results.filter((r) => !r).length;
    // A peer just configured loses its first echoes while the other box is still applying its side
    // (it ignores our handshake until then). Losses alone in a window that young are no verdict
    // yet: reported as lost, they made the controller fail a healthy box over (or withdraw its
    // subnets when it had no standby) and hold it down for the hold-down period.
    if (lost === w.results.length && w.results.length < MIN_PROBES_FOR_LOSS) return NOT_PROBED;
    return { isProbed: true, isReachable: w.results[w.results.length - 1], rttMs: w.lastRttMs, lossRatio: lost / w.results.length };
  }
}

// ---- path probes --------------------------------------------------------------------------------

/** What the UDP probe sends; a UDP echo service answers with the same bytes. */
export const UDP_PROBE_PAYLOAD = Buffer.from('crosslink-probe\n');

export interface PathProberDeps {
  runner: ProbeCommandRunner;
  clock: Clock;
  localAddresses: LocalAddressLookup;
  connectTcp?: TcpConnect;
  udpExchange?: UdpExchange;
  /** Per attempt. Default 2000 ms (ICMP rounds up to whole seconds). */
  timeoutMs?: number;
}

export class PathProber {
  private readonly connect: TcpConnect;
  private readonly udp: UdpExchange;
  private readonly timeoutMs: number;

  constructor(private readonly deps: PathProberDeps) {
    this.connect = deps.connectTcp ?? connectTcp;
    this.udp = deps.udpExchange ?? udpExchange;
    this.timeoutMs = deps.timeoutMs ?? 2000;
  }

  async attempt(probe: Probe, sourceAddress: string): Promise<AttemptOutcome> {
    const o = { host: probe.target, port: probe.port, localAddress: sourceAddress, timeoutMs: this.timeoutMs };
    switch (probe.protocol) {
      case 'tcp': return this.connect(o);
      case 'udp': return this.udp({ ...o, payload: UDP_PROBE_PAYLOAD });
      case 'icmp': return pingOnce(this.deps.runner, probe.target, { sourceAddress, timeoutSeconds: Math.max(1, Math.ceil(this.timeoutMs / 1000)) });
      default: return { kind: 'error', detail: `unknown protocol "${probe.protocol}"` };
    }
  }

  /** Runs one probe from the agent's address in its source prefix. Never throws. */
  async run(probe: Probe, addresses?: readonly string[]): Promise<ProbeResult> {
    const own = addresses ?? await this.deps.localAddresses();
    const source = sourceAddressFor(probe.sourcePrefix, own);
    let verdict: { isOk: boolean; detail: string; rttMs: number };
    if (source === null) {
      verdict = { isOk: false, detail: `no local address in ${probe.sourcePrefix || '(no source prefix)'}`, rttMs: 0 };
    } else {
      let outcome: AttemptOutcome;
      try {
        outcome = await this.attempt(probe, source);
      } catch (e) {
        outcome = { kind: 'error', detail: (e as Error).message };
      }
      verdict = judgeProbe(probe, outcome);
    }
    return create(ProbeResultSchema, { name: probe.name, isOk: verdict.isOk, detail: verdict.detail, rttMs: verdict.rttMs, checkedAtUnixMs: BigInt(this.deps.clock.nowMs()) });
  }

  async runAll(probes: readonly Probe[]): Promise<ProbeResult[]> {
    if (probes.length === 0) return [];
    const addresses = await this.deps.localAddresses();
    return Promise.all(probes.map((p) => this.run(p, addresses)));
  }
}

// ---- the loop -----------------------------------------------------------------------------------

export const DEFAULT_PROBE_INTERVAL_SECONDS = 5;

export interface ProberDeps extends PathProberDeps {
  log: Logger;
  timers?: ProbeTimers;
  /**
   * Called after every round (e.g. to send a report when a result changed), and also as soon as the
   * peer probes of a round are done when a peer's reachability changed: the controller fails a dead
   * box over on its peers' failing probes, so that news must not wait for slow path probes (a
   * path probe through the dead box waits for its whole timeout).
   */
  onRound?: () => void;
}

const defaultTimers: ProbeTimers = {
  setInterval: (fn, ms) => { const h = setInterval(fn, ms); h.unref(); return h; },
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

/**
 * Runs peer and path probes every `probe_interval_seconds` of the current config (default 5 s).
 * Wire it as: `prober.setConfig(config)` on every applied config; in reports, spread
 * `prober.peerFields(name)` into each PeerStatus and send `prober.probeResults()`.
 */
export class Prober {
  private readonly peers: PeerProber;
  private readonly paths: PathProber;
  private readonly timers: ProbeTimers;
  private config: AgentConfig | null = null;
  private results = new Map<string, ProbeResult>();
  private timer: unknown = null;
  private intervalMs = DEFAULT_PROBE_INTERVAL_SECONDS * 1000;
  private round: Promise<void> | null = null;

  constructor(private readonly deps: ProberDeps) {
    this.peers = new PeerProber({ runner: deps.runner, log: deps.log });
    this.paths = new PathProber(deps);
    this.timers = deps.timers ?? defaultTimers;
  }

  /** The config to probe for; restarts the timer when the interval changed. */
  setConfig(config: AgentConfig): void {
    this.config = config;
    const names = new Set(config.probes.map((p) => p.name));
    for (const name of [...this.results.keys()]) if (!names.has(name)) this.results.delete(name);
    const intervalMs = (config.probeIntervalSeconds || DEFAULT_PROBE_INTERVAL_SECONDS) * 1000;
    if (intervalMs !== this.intervalMs) {
      this.intervalMs = intervalMs;
      if (this.timer !== null) { this.stop(); this.start(); }
    }
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = this.timers.setInterval(() => { void this.runOnce(); }, this.intervalMs);
    void this.runOnce();
  }

  stop(): void {
    if (this.timer !== null) this.timers.clearInterval(this.timer);
    this.timer = null;
  }

  /** One round of every probe. A round still running is not started twice. */
  runOnce(): Promise<void> {
    if (this.round !== null) return this.round;
    this.round = this.doRound().finally(() => { this.round = null; });
    return this.round;
  }

  private async doRound(): Promise<void> {
    const config = this.config;
    if (config === null) return;
    try {
      const targets = config.peers.map((p) => ({ name: p.name, overlayIp: p.overlayIp }));
      const reachableBefore = targets.map((p) => this.peers.fields(p.name).isReachable);
      const peersDone = this.peers.probeAll(targets).then(() => {
        if (targets.some((p, i) => this.peers.fields(p.name).isReachable !== reachableBefore[i])) this.notifyRound();
      });
      const [, results] = await Promise.all([peersDone, this.paths.runAll(config.probes)]);
      // Keep only results of probes still configured (the config may have changed meanwhile).
      const current = new Set((this.config?.probes ?? []).map((p) => p.name));
      for (const r of results) if (current.has(r.name)) this.results.set(r.name, r);
    } catch (err) {
      this.deps.log.warn({ err }, 'probe round failed');
    }
    this.notifyRound();
  }

  private notifyRound(): void {
    try {
      this.deps.onRound?.();
    } catch (err) {
      this.deps.log.warn({ err }, 'probe round listener failed');
    }
  }

  peerFields(name: string): PeerProbeFields {
    return this.peers.fields(name);
  }

  /** Latest result of every configured path probe, sorted by name. */
  probeResults(): ProbeResult[] {
    return [...this.results.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}
