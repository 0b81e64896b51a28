// What a testbed run leaves on the machine, found by its prefix: namespaces, WireGuard sockets, the
// scratch directory and the processes inside its namespaces (killed by PID only, never by name).
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { isPidAlive, run, runSync, signalPid, sleep, sleepSync } from './exec.js';

const NETNS_DIR = '/run/netns';
const WG_SOCKET_DIR = '/var/run/wireguard';

export function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // try the next directory
    }
  }
  return false;
}

/** Namespaces whose name starts with `${prefix}-`. */
export function namespacesWithPrefix(prefix: string): string[] {
  if (!existsSync(NETNS_DIR)) return [];
  return readdirSync(NETNS_DIR)
    .filter((n) => n.startsWith(`${prefix}-`))
    .sort();
}

/** WireGuard control sockets of this prefix's interfaces (`${prefix}w<n>.sock`). */
export function wgSocketsWithPrefix(prefix: string): string[] {
  if (!existsSync(WG_SOCKET_DIR)) return [];
  const re = new RegExp(`^${prefix}w\\d+\\.sock$`);
  return readdirSync(WG_SOCKET_DIR)
    .filter((f) => re.test(f))
    .map((f) => join(WG_SOCKET_DIR, f));
}

/**
 * The run's scratch directory, named by prefix so that attach() and destroyByPrefix() find it from
 * another process. Created 0700; an existing one must be a real directory, never a symlink.
 */
export function workDirFor(prefix: string): string {
  return join(tmpdir(), `crosslink-testbed-${prefix}`);
}

export function ensureWorkDir(prefix: string, isFresh: boolean): string {
  const dir = workDirFor(prefix);
  if (isFresh) rmSync(dir, { recursive: true, force: true });
  if (!existsSync(dir)) mkdirSync(dir, { mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== process.getuid?.()) throw new Error(`${dir} is not a directory of ours`);
  return dir;
}

export function randomPrefix(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  for (let attempt = 0; attempt < 20; attempt++) {
    const prefix = `xl${[...randomBytes(4)].map((b) => alphabet[b % alphabet.length]).join('')}`;
    if (namespacesWithPrefix(prefix).length === 0 && wgSocketsWithPrefix(prefix).length === 0) return prefix;
  }
  throw new Error('could not find an unused testbed prefix');
}

export function parsePids(stdout: string): number[] {
  return stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

export async function pidsInNetns(netns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', netns], { check: false });
  return r.code === 0 ? parsePids(r.stdout) : [];
}

/** SIGTERM, wait up to graceMs, SIGKILL what is left, wait until all are gone. By PID only. */
export async function killPids(pids: readonly number[], graceMs: number): Promise<void> {
  let alive = pids.filter((p) => signalPid(p, 'SIGTERM'));
  const deadline = Date.now() + graceMs;
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(50);
    alive = alive.filter(isPidAlive);
  }
  for (const p of alive) signalPid(p, 'SIGKILL');
  const hardDeadline = Date.now() + 5000;
  while (alive.length > 0 && Date.now() < hardDeadline) {
    await sleep(20);
    alive = alive.filter(isPidAlive);
  }
}

export function killPidsSync(pids: readonly number[], graceMs: number): void {
  let alive = pids.filter((p) => {
    try {
      return signalPid(p, 'SIGTERM');
    } catch {
      return false;
    }
  });
  const deadline = Date.now() + graceMs;
  while (alive.length > 0 && Date.now() < deadline) {
    sleepSync(50);
    alive = alive.filter(isPidAlive);
  }
  for (const p of alive) {
    try {
      signalPid(p, 'SIGKILL');
    } catch {
      // nothing more to do in an exit handler
    }
  }
}

// Process-wide registry so exit and signal handlers can clean up every live testbed. This is
// the one piece of global state the harness needs: handlers are process-wide too.
export const live = new Set<{ destroySync(): void }>();
let isExitHookInstalled = false;

export function installExitHooks(): void {
  if (isExitHookInstalled) return;
  isExitHookInstalled = true;
  process.on('exit', () => {
    for (const bed of [...live]) bed.destroySync();
  });
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const numbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
  for (const sig of signals) {
    const onSignal = (): void => {
      for (const bed of [...live]) bed.destroySync();
      process.removeListener(sig, onSignal);
      // Alone: die of the signal as if we had not been here. Others listening (tap): let them run, then exit.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
      else setImmediate(() => process.exit(128 + (numbers[sig] ?? 0)));
    };
    process.on(sig, onSignal);
  }
}

/** Testbed.destroyByPrefix: kills the processes in the prefix's namespaces, deletes them, its WireGuard sockets and work directory. */
export async function removeByPrefix(prefix: string, graceMs: number): Promise<string[]> {
  if (!/^[a-z][a-z0-9]{1,9}$/.test(prefix)) throw new Error(`not a testbed prefix: ${prefix}`);
  const namespaces = namespacesWithPrefix(prefix);
  const pids = (await Promise.all(namespaces.map(pidsInNetns))).flat();
  await killPids(pids, graceMs);
  if (namespaces.length > 0) {
    await run(['ip', '-force', '-batch', '-'], {
      input: namespaces.map((n) => `netns del ${n}\n`).join(''),
      check: false,
    });
  }
  for (const sock of wgSocketsWithPrefix(prefix)) rmSync(sock, { force: true });
  rmSync(workDirFor(prefix), { recursive: true, force: true });
  return namespaces;
}

/** Kills what is still inside the namespaces (by PID) and deletes them (by name; their veths go with them). */
export async function removeNamespaces(namespaces: readonly string[], graceMs: number): Promise<void> {
  const strays = (await Promise.all(namespaces.map(pidsInNetns))).flat();
  await killPids(strays, graceMs);
  await run(['ip', '-force', '-batch', '-'], {
    input: namespaces.map((n) => `netns del ${n}\n`).join(''),
    check: false,
  });
}

/** removeNamespaces for exit and signal handlers: synchronous, also killing the `tracked` PIDs. */
export function removeNamespacesSync(namespaces: readonly string[], tracked: readonly number[], graceMs: number): void {
  const strays = namespaces.flatMap((n) => parsePids(runSync(['ip', 'netns', 'pids', n]).stdout));
  killPidsSync([...new Set([...tracked, ...strays])], Math.min(graceMs, 1000));
  for (const n of namespaces) runSync(['ip', 'netns', 'del', n]);
}
