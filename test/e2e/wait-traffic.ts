// Waiting on real traffic: probe a flow again and again until it passes (or until it is refused)
// and say when the first packet got through (or the first one did not). Used by the scenarios that
// time a change and by the benchmark.
import type { NodeRef, Testbed } from '../testbed/testbed.js';

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
    if (Date.now() > deadline) throw new Error(`${String(typeof f.from === 'string' ? f.from : f.from.name)} -> ${f.to} ${f.proto}/${f.port} did not open within ${opts.timeoutMs ?? 30_000} ms`);
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
    if (Date.now() > deadline) throw new Error(`${String(typeof f.from === 'string' ? f.from : f.from.name)} -> ${f.to} ${f.proto}/${f.port} still open after ${opts.timeoutMs ?? 30_000} ms`);
  }
}
