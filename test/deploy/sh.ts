// Running commands for the packaging tests: argv arrays (a shell only where the test says so),
// output captured, a non-zero exit thrown with both streams so a failure explains itself.
import { spawnSync } from 'node:child_process';

export interface ShResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ShOptions {
  /** Default true: throw on a non-zero exit. */
  check?: boolean;
  /** Default 10 minutes; the command is killed with SIGKILL after it. */
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
  input?: string;
}

export function sh(argv: readonly string[], opts: ShOptions = {}): ShResult {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    timeout: opts.timeoutMs ?? 600_000,
    killSignal: 'SIGKILL',
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    input: opts.input ?? '',
  });
  const res: ShResult = {
    code: r.status ?? -1,
    stdout: r.stdout ?? '',
    stderr: (r.stderr ?? '') + (r.error ? `\n${r.error.message}` : ''),
  };
  if ((opts.check ?? true) && res.code !== 0) {
    const tail = (s: string) => s.split('\n').slice(-40).join('\n');
    throw new Error(
      `command failed (exit ${res.code}): ${argv.join(' ')}\n--- stdout\n${tail(res.stdout)}\n--- stderr\n${tail(res.stderr)}`,
    );
  }
  return res;
}

/** True when `name` is an executable on PATH. */
export function have(name: string): boolean {
  return sh(['sh', '-c', `command -v ${name}`], { check: false }).code === 0;
}
