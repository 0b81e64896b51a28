// Running commands for the testbed: argv arrays only (never a shell), optionally inside a network
// namespace through `ip netns exec`, and long-running processes tracked by PID so teardown can
// end exactly what it started and nothing else.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { HostCommandError } from '../../lib/errors.js';

export interface RunOptions {
  /** Run inside this network namespace (`ip netns exec NS ...`). Absent: the current namespace. */
  netns?: string;
  /** Written to the command's stdin, then stdin is closed. Absent: stdin is empty. */
  input?: string;
  /** Killed with SIGKILL after this long and reported as exit code -1. Default 30 000. */
  timeoutMs?: number;
  /** When false, a non-zero exit is returned instead of thrown. Default true. */
  check?: boolean;
  /** Extra environment variables, added to this process's environment. */
  env?: Record<string, string>;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code; -1 when killed by the timeout or by a signal. */
  code: number;
}

/** The argv actually executed: wrapped in `ip netns exec` when a namespace is given. */
export function inNetns(netns: string | undefined, argv: readonly string[]): string[] {
  return netns ? ['ip', 'netns', 'exec', netns, ...argv] : [...argv];
}

/** The program and its arguments; an empty argv fails like a program that cannot start. */
function programOf(full: readonly string[]): [string, string[]] {
  const [program, ...args] = full;
  if (program === undefined) throw new HostCommandError(full, 127, 'empty command');
  return [program, args];
}

/** Runs argv to completion. Throws HostCommandError on a non-zero exit unless `check: false`. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = inNetns(opts.netns, argv);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(...programOf(full), {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
      });
    } catch (cause) {
      reject(new HostCommandError(full, -1, String(cause), { cause }));
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let isTimedOut = false;
    const timer = setTimeout(() => {
      isTimedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.stdin?.on('error', () => {
      /* the command may exit before reading its input */
    });
    child.stdin?.end(opts.input ?? '');
    child.on('error', (cause) => {
      clearTimeout(timer);
      reject(new HostCommandError(full, -1, `${cause.message}`, { cause }));
    });
    child.on('close', (exitCode) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      let stderr = Buffer.concat(err).toString('utf8');
      if (isTimedOut) stderr = `timed out after ${timeoutMs} ms\n${stderr}`;
      const code = isTimedOut || exitCode === null ? -1 : exitCode;
      if (code !== 0 && opts.check !== false) reject(new HostCommandError(full, code, stderr));
      else resolve({ stdout, stderr, code });
    });
  });
}

/** Synchronous variant for exit handlers, where nothing asynchronous runs any more. Never throws. */
export function runSync(argv: readonly string[], opts: { netns?: string; timeoutMs?: number } = {}): RunResult {
  const full = inNetns(opts.netns, argv);
  const [program, ...args] = full;
  if (program === undefined) return { stdout: '', stderr: 'empty command', code: 127 };
  const r = spawnSync(program, args, {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 10_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? ''), code: r.status ?? -1 };
}

export interface SpawnOptions {
  /** Extra environment variables, added to this process's environment. */
  env?: Record<string, string>;
  /** Append stdout and stderr to this file. Absent: both are kept in memory (last 64 KiB), see output(). */
  logFile?: string;
  /**
   * Start it in a session of its own, so a Ctrl-C at the terminal or this process's exit does not
   * reach it (the demo, with Testbed.release()). Default false: it ends with the test run.
   */
  isDetached?: boolean;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const OUTPUT_LIMIT_BYTES = 64 * 1024;

/** A long-running process started by spawnIn; `ip netns exec` execs into the command, so pid is the command's. */
export class SpawnedProcess {
  readonly pid: number;
  readonly argv: readonly string[];
  readonly netns: string | undefined;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitStatus>;
  private status: ExitStatus | undefined;
  private buffered = '';
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly child: ChildProcess,
    argv: readonly string[],
    netns: string | undefined,
  ) {
    if (child.pid === undefined) throw new Error('spawned process has no pid');
    this.pid = child.pid;
    this.argv = argv;
    this.netns = netns;
    const onData = (b: Buffer): void => {
      this.buffered += b.toString('utf8');
      if (this.buffered.length > OUTPUT_LIMIT_BYTES) this.buffered = this.buffered.slice(-OUTPUT_LIMIT_BYTES);
      for (const w of this.waiters) w();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.status = { code, signal };
        for (const w of this.waiters) w();
        resolve(this.status);
      });
    });
  }

  get isRunning(): boolean {
    return this.status === undefined;
  }

  get exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  /** stdout and stderr so far (interleaved, last 64 KiB) when no logFile was given. */
  output(): string {
    return this.buffered;
  }

  /** Waits until the output matches `pattern`; rejects on exit or timeout with the output so far. */
  waitForOutput(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = this.buffered.match(pattern);
        if (m) return done(() => resolve(m));
        if (this.status) {
          const s = this.status;
          return done(() =>
            reject(
              new Error(
                `${this.argv.join(' ')} exited (code ${s.code}, signal ${s.signal}) before printing ${pattern}: ${this.buffered.slice(-2000)}`,
              ),
            ),
          );
        }
      };
      const timer = setTimeout(
        () =>
          done(() =>
            reject(
              new Error(
                `${this.argv.join(' ')} did not print ${pattern} within ${timeoutMs} ms: ${this.buffered.slice(-2000)}`,
              ),
            ),
          ),
        timeoutMs,
      );
      const done = (f: () => void): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        f();
      };
      this.waiters.add(check);
      check();
    });
  }

  /**
   * Resolves once the process has exited. The child is unref'd so a forgotten one cannot keep the test
   * process alive; while someone waits here it is ref'd again, or the event loop could empty (nothing
   * else pending after a SIGKILL) and end the test file before the exit is seen ("test unfinished").
   */
  async wait(): Promise<ExitStatus> {
    if (this.status) return this.status;
    this.child.ref();
    try {
      return await this.exited;
    } finally {
      this.child.unref();
    }
  }

  /** Sends `signal` (default SIGTERM), then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(opts: { signal?: NodeJS.Signals; graceMs?: number } = {}): Promise<ExitStatus> {
    if (this.status) return this.status;
    signalPid(this.pid, opts.signal ?? 'SIGTERM');
    const timer = setTimeout(() => signalPid(this.pid, 'SIGKILL'), opts.graceMs ?? 3000);
    const status = await this.wait();
    clearTimeout(timer);
    return status;
  }
}

/** Sends a signal to one PID; a process that is already gone is not an error. */
export function signalPid(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw e;
  }
}

/** True while a process with this PID exists and is not a zombie (a zombie has already ended). */
export function isPidAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // Field 3 (after the parenthesised command name, which may itself contain spaces) is the state.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/**
 * Starts a long-running process inside `netns` (or the current namespace when undefined).
 * The caller (normally the Testbed) keeps the returned handle to stop it by PID later.
 */
export function spawnIn(netns: string | undefined, argv: readonly string[], opts: SpawnOptions = {}): SpawnedProcess {
  const full = inNetns(netns, argv);
  let fd: number | undefined;
  if (opts.logFile) fd = openSync(opts.logFile, 'a', 0o600);
  try {
    const child = spawn(...programOf(full), {
      stdio: ['ignore', fd ?? 'pipe', fd ?? 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      detached: opts.isDetached ?? false,
    });
    if (child.pid === undefined) {
      // spawn reports ENOENT asynchronously; swallow the event, the throw below says it.
      child.on('error', () => {});
      throw new HostCommandError(full, -1, `could not start ${full[0]}`);
    }
    child.on('error', () => {
      /* reported through exited */
    });
    // Don't let a forgotten child keep the test process alive; teardown ends it by PID.
    child.unref();
    (child.stdout as { unref?: () => void } | null)?.unref?.();
    (child.stderr as { unref?: () => void } | null)?.unref?.();
    return new SpawnedProcess(child, argv, netns);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Blocks the thread (exit handlers only). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
