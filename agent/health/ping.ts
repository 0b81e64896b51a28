// One ICMP echo with iputils ping: the fallback peer echo without fping, and the path probe's icmp.
import type { AttemptOutcome, ProbeCommandRunner } from './ports.js';

/** Parses iputils ping output: "64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.045 ms". */
export function parsePingRttMs(stdout: string): number | null {
  const m = /time[=<]\s*([\d.]+)\s*ms/.exec(stdout);
  return m ? Number(m[1]) : null;
}

/** One echo with `ping -n -c 1 -W SECONDS [-I SOURCE] TARGET` (iputils). */
export async function pingOnce(
  runner: ProbeCommandRunner,
  target: string,
  o: { sourceAddress?: string; timeoutSeconds: number },
): Promise<AttemptOutcome> {
  const argv = [
    'ping',
    '-n',
    '-c',
    '1',
    '-W',
    String(o.timeoutSeconds),
    ...(o.sourceAddress ? ['-I', o.sourceAddress] : []),
    target,
  ];
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
    const reason = /From \S+ icmp_seq=\d+ (.+)/.exec(r.stdout)?.[1];
    return reason !== undefined
      ? { kind: 'unreachable', detail: reason.trim().toLowerCase() }
      : { kind: 'timeout', detail: `no reply within ${o.timeoutSeconds} s` };
  }
  const why = (r.stderr || r.stdout).trim().split('\n')[0] || `exit ${r.exitCode}`;
  return { kind: 'error', detail: `ping: ${why}` };
}
