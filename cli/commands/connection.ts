// What every command that talks to a controller's REST API shares: the connection options
// (--controller/--token/--ca-fingerprint or CROSSLINK_CONTROLLER, CROSSLINK_TOKEN,
// CROSSLINK_CA_FINGERPRINT), the I/O it prints through, confirmation, and one policy for turning
// failures into messages and exit codes. The commands are one file per resource beside this one.
//
// Exit codes: 0 done; 1 the controller refused or the check failed (invalid policy, failing tests,
// stale version, broken audit chain, no permission); 2 usage (missing or bad options); 3 cannot
// reach the controller, or it could not prove it holds the pinned CA.
// Handlers set process.exitCode; they never exit.
import type { Argv } from 'yargs';
import { readInput } from '../read-input.js';
import { timeoutProblem } from '../flags.js';
import { CrosslinkError } from '../../lib/errors.js';
import { ApiClient, ApiError, UnreachableError } from './api.js';
import { detailLine } from './output.js';

export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const;

export interface RemoteIo {
  out: (text: string) => void;
  err: (text: string) => void;
  readFile: (path: string) => string;
  env: Record<string, string | undefined>;
  /** Asks a yes/no question when a person is at a terminal; null: nobody to ask (a script). */
  ask?(question: string): Promise<boolean | null>;
}

export const processIo: RemoteIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  readFile: readInput,
  env: process.env,
  async ask(question) {
    if (!process.stdin.isTTY || !process.stderr.isTTY) return null;
    const { createInterface } = await import('node:readline/promises');
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      return /^\s*y(es)?\s*$/i.test(await rl.question(`${question} [y/N] `));
    } finally {
      rl.close();
    }
  },
};

/** A destructive command goes ahead with --yes, or when the person at the terminal says yes; a
 *  script (no terminal) is not asked. Prints why when it does not go ahead. */
export async function isConfirmed(args: { yes?: boolean }, io: RemoteIo, question: string): Promise<boolean> {
  if (args.yes === true || io.ask === undefined) return true;
  const answer = await io.ask(question);
  if (answer === false) io.err('crosslink: not done (answer y, or pass --yes)\n');
  return answer !== false;
}

/** A destructive request with no body to show (revoke, delete): asks first, then says what was done. */
export async function confirmedRequest(
  args: ConnArgs & { yes?: boolean },
  io: RemoteIo,
  question: string,
  request: { method: 'POST' | 'DELETE'; path: string; done: string },
): Promise<number> {
  if (!(await isConfirmed(args, io, question))) return EXIT.failed;
  return withClient(args, io, async (api) => {
    await api.request(request.method, request.path);
    io.out(`${request.done}\n`);
    return EXIT.ok;
  });
}

export const yesOption = {
  yes: { alias: 'y', type: 'boolean' as const, default: false, describe: 'Do not ask for confirmation at a terminal' },
};

export interface ConnArgs {
  controller?: string | string[];
  token?: string;
  caFingerprint?: string;
  json?: boolean;
  timeout?: number;
  yes?: boolean;
}

export function connectionOptions<T>(y: Argv<T>) {
  return y
    .option('controller', {
      type: 'string',
      describe:
        'Controller URL, https://HOST:PORT; repeat for a controller on several networks (tried in turn) [env CROSSLINK_CONTROLLER, space-separated]',
    })
    .option('token', { type: 'string', describe: 'API token [env CROSSLINK_TOKEN]' })
    .option('ca-fingerprint', {
      type: 'string',
      describe: "SHA-256 fingerprint of the controller's CA [env CROSSLINK_CA_FINGERPRINT]",
    })
    .option('timeout', { type: 'number', default: 30, describe: 'Seconds to wait for the controller' });
}

/** yargs infers kebab-case keys from options; handlers read the camelCase aliases it also sets. */
export const asArgs = <U>(y: unknown): Argv<U> => y as Argv<U>;

export const jsonOption = {
  json: { type: 'boolean' as const, default: false, describe: 'Print JSON instead of a table' },
};

/** A response body as a controller older than some of its fields sends it: those fields K may be absent. */
export type OlderMayLack<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

/** Connects, runs `fn`, and turns every failure into a message and an exit code. */
export async function withClient(
  args: ConnArgs,
  io: RemoteIo,
  fn: (api: ApiClient) => Promise<number>,
  file?: string,
): Promise<number> {
  const controller = args.controller ?? io.env.CROSSLINK_CONTROLLER;
  const token = args.token ?? io.env.CROSSLINK_TOKEN;
  const caFingerprint = args.caFingerprint ?? io.env.CROSSLINK_CA_FINGERPRINT;
  if (!controller || !token || !caFingerprint) {
    const missing = [
      !controller && '--controller (or CROSSLINK_CONTROLLER)',
      !token && '--token (or CROSSLINK_TOKEN)',
      !caFingerprint && '--ca-fingerprint (or CROSSLINK_CA_FINGERPRINT)',
    ].filter(Boolean);
    io.err(`crosslink: missing ${missing.join(', ')}\n`);
    return EXIT.usage;
  }
  const timeout = args.timeout ?? 30;
  const badTimeout = timeoutProblem(timeout);
  if (badTimeout !== null) {
    io.err(`crosslink: ${badTimeout}\n`);
    return EXIT.usage;
  }
  let api: ApiClient | undefined;
  try {
    api = await ApiClient.connect({ controller, token, caFingerprint, timeoutMs: timeout * 1000 });
    return await fn(api);
  } catch (e) {
    if (e instanceof UnreachableError) {
      io.err(`crosslink: ${e.message}\n`);
      return EXIT.unreachable;
    }
    if (e instanceof ApiError) {
      io.err(`crosslink: ${e.code}: ${e.message}\n`);
      for (const d of e.details) io.err(detailLine(d, file));
      return EXIT.failed;
    }
    if (e instanceof CrosslinkError && e.code === 'config_invalid') {
      io.err(`crosslink: ${e.message}\n`);
      return EXIT.usage;
    }
    io.err(`crosslink: ${(e as Error).message}\n`);
    return EXIT.failed;
  } finally {
    api?.close();
  }
}
