// fping, the peer echo of a whole round in one process: its argv, its output, and whether it is
// installed at all.
import type { AttemptOutcome, ProbeCommandRunner } from './ports.js';

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
  return [
    'fping',
    '-C',
    '1',
    '-q',
    '-t',
    String(timeoutSeconds * 1000),
    '-i',
    String(FPING_INTERVAL_MS),
    '-r',
    '0',
    '--',
    ...addresses,
  ];
}

// `ADDR : 0.734` / `ADDR : -` (the name is padded to the longest one). Per-reply lines of a
// non-quiet run (`ADDR : [0], 64 bytes, 0.019 ms (...)`) and duplicates (`ADDR : duplicate for
// [0], ...`, printed even with -q) do not match.
const FPING_SUMMARY = /^(\S+)\s+:((?:\s+(?:-|\d+(?:\.\d+)?))*)\s*$/;
// `ICMP Host Unreachable from 10.0.0.1 for ICMP Echo sent to 10.0.0.3` (without -q only).
const FPING_ICMP = /^(ICMP .+ from \S+) for ICMP Echo sent to (\S+)\s*$/;
// `nosuch.invalid: Name or service not known` (a target fping could not resolve; without -q only).
const FPING_TARGET_ERROR = /^(\S+): (.+)$/;

/** What fping's output says per target: summary tokens, ICMP errors, per-target errors, and the
 *  lines it said about none of them. */
interface FpingLines {
  summaries: Map<string, string[]>;
  icmp: Map<string, string>;
  errors: Map<string, string>;
  other: string[];
}

function sortFpingLines(wanted: ReadonlySet<string>, text: string): FpingLines {
  const out: FpingLines = { summaries: new Map(), icmp: new Map(), errors: new Map(), other: [] };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    // Every group of these patterns always takes part in a match, hence the '' defaults are never used.
    const summary = FPING_SUMMARY.exec(line);
    if (summary) {
      const [, target = '', times = ''] = summary;
      if (wanted.has(target)) {
        const tokens = times.trim().split(/\s+/).filter(Boolean);
        if (tokens.length > 0) out.summaries.set(target, tokens);
        continue;
      }
    }
    const icmp = FPING_ICMP.exec(line);
    if (icmp) {
      const [, what = '', target = ''] = icmp;
      if (wanted.has(target) && !out.icmp.has(target)) out.icmp.set(target, what.toLowerCase());
      continue;
    }
    if (/^\S+\s+: /.test(line)) continue; // per-reply, timed-out and duplicate lines
    const error = FPING_TARGET_ERROR.exec(line);
    const [, target = '', why = ''] = error ?? [];
    if (error && wanted.has(target)) out.errors.set(target, why);
    else out.other.push(line);
  }
  return out;
}

/**
 * fping's result for `targets` as one outcome per target, like pingOnce's: `connected` with the RTT,
 * `unreachable` when an ICMP error came back, `timeout` when nothing did (both `-` in the summary),
 * and `error` when fping said nothing about the target (it could not resolve it, failed as a whole,
 * or was killed). Pure; any exit code, stdout and stderr together.
 */
export function parseFping(
  targets: readonly string[],
  r: { exitCode: number; stdout: string; stderr: string },
  timeoutSeconds: number,
): Map<string, AttemptOutcome> {
  const { summaries, icmp, errors, other } = sortFpingLines(new Set(targets), `${r.stderr}\n${r.stdout}`);
  const why = other[0] ?? '';
  const failed = `fping: ${r.exitCode === -1 ? 'killed (timeout)' : `exit ${r.exitCode}`}${why ? `: ${why}` : ', no result'}`;
  const out = new Map<string, AttemptOutcome>();
  for (const target of targets) {
    const tokens = summaries.get(target);
    const lastRttMs = (tokens ?? [])
      .filter((x) => x !== '-')
      .map(Number)
      .at(-1);
    if (lastRttMs !== undefined) out.set(target, { kind: 'connected', rttMs: lastRttMs });
    else if (tokens !== undefined) {
      const unreachable = icmp.get(target);
      out.set(
        target,
        unreachable !== undefined
          ? { kind: 'unreachable', detail: unreachable }
          : { kind: 'timeout', detail: `no reply within ${timeoutSeconds} s` },
      );
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
