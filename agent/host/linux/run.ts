// How the Linux adapters run wg, ip, nft and wireguard-go: argv only (never a shell), optionally
// inside a network namespace. Tests swap in RecordingRunner to golden-test the exact commands.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { HostCommandError } from '../../../lib/errors.js';

export interface RunOptions {
  /** Written to stdin, then stdin is closed. Absent: empty stdin. */
  input?: string;
  /** Run inside this network namespace. Absent: the agent's own namespace. */
  netns?: string;
  /** Return a non-zero exit instead of throwing HostCommandError. Default false. */
  allowFailure?: boolean;
  /** Called with the PID right after the process starts (e.g. to recognise its own nft commits). */
  onSpawn?: (pid: number) => void;
  /** SIGKILL after this long; reported as exit code -1. Default 60 000. */
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface DaemonOptions {
  netns?: string;
  env?: Record<string, string>;
  /** Append the daemon's output here. Absent: /dev/null (a closed pipe would kill it later). */
  logFile?: string;
}

export interface Daemon {
  pid: number;
  /** Resolves with the exit code (or -1 for a signal) if the daemon exits while we still watch. */
  exited: Promise<number>;
  /** Stop watching (the daemon keeps running). */
  detach(): void;
}

export interface WatchHandle {
  pid: number;
  /** Kills the watcher by its PID. */
  stop(): void;
}

export interface CommandRunner {
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Starts a long-lived daemon in its own session (it outlives the agent). Optional. */
  startDaemon?(argv: readonly string[], opts?: DaemonOptions): Daemon;
  /** Runs a long-lived process and hands over its stdout line by line (e.g. `nft monitor`). Optional. */
  watch?(
    argv: readonly string[],
    opts: WatchOptions,
    onLine: (line: string) => void,
    onExit: (code: number) => void,
  ): WatchHandle;
}

export interface WatchOptions {
  netns?: string;
  /**
   * After each chunk read, read nothing more for this long, so that a burst arrives in a few large
   * reads. `ip monitor` writes each event on its own: 5,000 route events of our own batch were
   * 5,000 wake-ups of the agent, which took a core from `wg syncconf` and `ip -batch` and made the
   * two ~50 ms slower (measured). A line is then at most this much later. Default 0.
   */
  coalesceMs?: number;
}

/** The argv actually executed for `argv` in `netns`: `ip -n NS ...` for ip itself (no extra exec),
 *  `ip netns exec NS ...` for everything else. */
export function inNetns(netns: string | undefined, argv: readonly string[]): string[] {
  if (!netns) return [...argv];
  if (argv[0] === 'ip') return ['ip', '-n', netns, ...argv.slice(1)];
  return ['ip', 'netns', 'exec', netns, ...argv];
}

/** The program and its arguments; an empty argv fails like a program that cannot start. */
function programOf(full: readonly string[]): [string, string[]] {
  const [program, ...args] = full;
  if (program === undefined) throw new HostCommandError(full, 127, 'empty command');
  return [program, args];
}

const liveWatchers = new Set<number>();
let isExitHookInstalled = false;
function killWatchersOnExit(): void {
  if (isExitHookInstalled) return;
  isExitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of liveWatchers) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  });
}

/** The real runner over child_process. */
export class ProcessRunner implements CommandRunner {
  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const full = inNetns(opts.netns, argv);
    return new Promise((resolve, reject) => {
      // stdin: a pipe only for a command given input (otherwise /dev/null: one socket pair and
      // one stream less per command; the agent runs thousands).
      const hasInput = opts.input !== undefined;
      const child = spawn(...programOf(full), { stdio: [hasInput ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
      if (child.pid !== undefined) opts.onSpawn?.(child.pid);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout!.on('data', (b: Buffer) => out.push(b));
      child.stderr!.on('data', (b: Buffer) => err.push(b));
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new HostCommandError(full, 127, e.message, { cause: e }));
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        const result = {
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          exitCode: code ?? -1,
        };
        if (result.exitCode !== 0 && !opts.allowFailure)
          reject(new HostCommandError(full, result.exitCode, result.stderr));
        else resolve(result);
      });
      if (hasInput) {
        child.stdin!.on('error', () => undefined); // the command may exit without reading its input
        child.stdin!.end(opts.input);
      }
    });
  }

  startDaemon(argv: readonly string[], opts: DaemonOptions = {}): Daemon {
    const full = inNetns(opts.netns, argv);
    const fd = opts.logFile ? openSync(opts.logFile, 'a', 0o600) : 'ignore';
    try {
      const child = spawn(...programOf(full), {
        detached: true,
        stdio: ['ignore', fd, fd],
        env: { ...process.env, ...opts.env },
      });
      let detached = false;
      const exited = new Promise<number>((resolve) => {
        child.on('error', () => resolve(127));
        child.on('exit', (code) => {
          if (!detached) resolve(code ?? -1);
        });
      });
      child.unref();
      if (child.pid === undefined) throw new HostCommandError(full, 127, `cannot start ${argv[0]}`);
      return {
        pid: child.pid,
        exited,
        detach: () => {
          detached = true;
        },
      };
    } finally {
      if (typeof fd === 'number') closeSync(fd);
    }
  }

  watch(
    argv: readonly string[],
    opts: WatchOptions,
    onLine: (line: string) => void,
    onExit: (code: number) => void,
  ): WatchHandle {
    const full = inNetns(opts.netns, argv);
    const child = spawn(...programOf(full), { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    child.stdout.setEncoding('utf8');
    const coalesceMs = opts.coalesceMs ?? 0;
    child.stdout.on('data', (s: string) => {
      buf += s;
      let start = 0;
      let i: number;
      while ((i = buf.indexOf('\n', start)) >= 0) {
        onLine(buf.slice(start, i));
        start = i + 1;
      }
      buf = buf.slice(start);
      if (coalesceMs > 0) {
        child.stdout.pause();
        setTimeout(() => child.stdout.resume(), coalesceMs).unref();
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => onLine(`# stderr: ${s.trim()}`));
    const pid = child.pid ?? -1;
    child.on('error', () => onExit(127));
    child.on('exit', (code) => {
      liveWatchers.delete(pid);
      onExit(code ?? -1);
    });
    // A watcher must never keep the agent (or a test) alive on its own.
    child.unref();
    // Pipes to a child are net.Sockets at run time, which can be unref'd.
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    if (pid > 0) {
      liveWatchers.add(pid);
      killWatchersOnExit();
    }
    return {
      pid,
      stop: () => {
        if (pid > 0 && liveWatchers.has(pid)) {
          try {
            process.kill(pid, 'SIGTERM');
          } catch {
            // already gone
          }
        }
      },
    };
  }
}

export interface RecordedCall {
  argv: string[];
  netns?: string;
  input?: string;
  /** Contents of files named in argv at the time of the call (temp files are gone afterwards). */
  files: Record<string, string>;
}

type Reply = Partial<RunResult>;

/** Records every command and answers from a script: the first rule whose prefix matches the argv
 *  (joined with spaces) answers; default is success with empty output. */
export class RecordingRunner implements CommandRunner {
  readonly calls: RecordedCall[] = [];
  private readonly rules: Array<{ prefix: string; reply: Reply | ((call: RecordedCall) => Reply) }> = [];

  on(prefix: string, reply: Reply | ((call: RecordedCall) => Reply)): this {
    this.rules.push({ prefix, reply });
    return this;
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async so a failure is a rejection, as from ProcessRunner
  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const files: Record<string, string> = {};
    for (const a of argv) if (a.startsWith('/') && existsSync(a)) files[a] = readFileSync(a, 'utf8');
    const call: RecordedCall = {
      argv: [...argv],
      ...(opts.netns ? { netns: opts.netns } : {}),
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      files,
    };
    this.calls.push(call);
    const joined = argv.join(' ');
    const rule = this.rules.find((r) => joined.startsWith(r.prefix));
    const reply = rule ? (typeof rule.reply === 'function' ? rule.reply(call) : rule.reply) : {};
    const result = { stdout: reply.stdout ?? '', stderr: reply.stderr ?? '', exitCode: reply.exitCode ?? 0 };
    if (result.exitCode !== 0 && !opts.allowFailure)
      throw new HostCommandError(inNetns(opts.netns, argv), result.exitCode, result.stderr);
    return result;
  }

  /** The calls as text, one per line, with stdin and file contents indented below; paths under
   *  `tempDir` are shown as <tmp>/NAME so golden files do not depend on the random directory. */
  transcript(tempDir?: string): string {
    // mkdtemp's random suffix is replaced too, so the transcript is the same on every run.
    const clean = (s: string) =>
      (tempDir ? s.split(tempDir).join('<tmp>') : s).replace(/(<tmp>\/[\w.-]+-)[A-Za-z0-9]{6}\//g, '$1XXXXXX/');
    const lines: string[] = [];
    for (const c of this.calls) {
      lines.push(clean(`${c.netns ? `[${c.netns}] ` : ''}${c.argv.join(' ')}`));
      if (c.input)
        lines.push(
          ...c.input
            .trimEnd()
            .split('\n')
            .map((l) => `  | ${l}`),
        );
      for (const [path, text] of Object.entries(c.files)) {
        lines.push(
          clean(`  ${path}:`),
          ...text
            .trimEnd()
            .split('\n')
            .map((l) => `  | ${l}`),
        );
      }
    }
    return lines.join('\n') + '\n';
  }
}
