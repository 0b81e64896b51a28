// Peer echoes: one ICMP echo to every peer of a round, by one fping for all of them or, without
// fping, one ping per peer (a fork of the whole agent per peer and round).
import net from 'node:net';
import type { Logger } from '../../lib/logger.js';
import { FPING_INTERVAL_MS, FPING_MAX_TARGETS, fpingArgv, parseFping } from './fping.js';
import { pingOnce } from './ping.js';
import type { AttemptOutcome, ProbeCommandRunner } from './ports.js';

/** One ICMP echo to each address, all addresses of a round at once. */
export interface PeerEchoes {
  /** How: 'fping' (one process per FPING_MAX_TARGETS addresses) or 'ping' (one process each). */
  readonly method: 'fping' | 'ping';
  /** The outcome of every address given (keyed by the same strings). Never rejects. */
  echoAll(addresses: readonly string[], timeoutSeconds: number): Promise<Map<string, AttemptOutcome>>;
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
      r = await this.deps.runner.run(fpingArgv(targets, timeoutSeconds), {
        allowFailure: true,
        timeoutMs: targets.length * FPING_INTERVAL_MS + timeoutSeconds * 1000 + 5000,
      });
    } catch (e) {
      r = { exitCode: 127, stdout: '', stderr: (e as Error).message };
    }
    const outcomes = parseFping(targets, r, timeoutSeconds);
    // fping failing as a whole (no socket, killed) makes every peer look lost: say so, once.
    const all = [...outcomes.values()];
    const [first] = all;
    if (first !== undefined && all.every((o) => o.kind === 'error')) {
      const detail = first.kind === 'error' ? first.detail : '';
      if (detail !== this.lastWarning)
        this.deps.log?.warn({ detail, targets: targets.length }, 'fping gave no peer probe results');
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
      for (let a = queue.shift(); a !== undefined; a = queue.shift())
        out.set(a, await pingOnce(this.deps.runner, a, { timeoutSeconds }));
    };
    await Promise.all(Array.from({ length: Math.min(this.deps.concurrency ?? 32, queue.length) }, worker));
    return out;
  }
}
