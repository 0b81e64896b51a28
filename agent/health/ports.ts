// What the probers need from the host, each injected so tests run them on fakes; the real
// implementations are sockets.ts (tcp, udp, local addresses) and the agent's CommandRunner.

/** Runs a command (argv, no shell) and returns its exit code, never throwing on a non-zero one.
 *  The agent's Linux CommandRunner (agent/host/linux/run.ts) fits as it is. */
export interface ProbeCommandRunner {
  run(
    argv: readonly string[],
    opts: { allowFailure: true; timeoutMs: number },
  ): Promise<{ exitCode: number; stdout: string; stderr: string }>;
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
  /** Source port to bind (a live trace's test flow); absent: the kernel chooses. */
  localPort?: number;
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
