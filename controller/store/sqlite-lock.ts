// One controller per SQLite file. Two controllers writing one file would each compile and push from
// their own in-memory view and never hear of the other's changes, so the second is refused.
//
// The exclusion itself is an OS lock that SQLite takes on a sidecar file (`<db>.lock`, opened in
// exclusive locking mode with one write): the kernel drops it when the holder exits, however it
// dies (kill -9 included), so a stale lock cannot exist and a reused PID cannot fool it. The
// sidecar's lock also hides its contents, so the holder's PID and start time go to `<db>.pid`,
// read only to name the other process in the error.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import BetterSqlite3 from 'better-sqlite3';
import { CrosslinkError } from '../../lib/errors.js';

export interface SqliteFileLock {
  readonly lockPath: string;
  release(): void;
}

/** Takes the lock for `dbPath`, or throws `conflict` naming the file and the process holding it. */
export function lockSqliteFile(dbPath: string): SqliteFileLock {
  const lockPath = `${dbPath}.lock`;
  const pidPath = `${dbPath}.pid`;
  // Opening takes no lock (SQLite opens lazily); the statements below do.
  const db = new BetterSqlite3(lockPath, { timeout: 0 });
  try {
    // No waiting: a second controller must fail at once, not after the busy timeout.
    db.pragma('busy_timeout = 0');
    db.pragma('journal_mode = DELETE');
    db.pragma('locking_mode = EXCLUSIVE');
    // The first write takes the EXCLUSIVE lock; in exclusive locking mode it is kept until close.
    db.prepare('create table if not exists holder (id integer primary key, at_ms integer)').run([]);
    db.prepare('insert or replace into holder (id, at_ms) values (1, ?)').run([Date.now()]);
  } catch (e) {
    db.close();
    const code = (e as { code?: string }).code ?? '';
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      throw new CrosslinkError(
        'conflict',
        `database ${dbPath} is in use by another controller (${holderText(pidPath)}); SQLite allows one controller per file: stop that one first, or run several controllers on PostgreSQL (docs/running-the-controller.md)`,
        [{ path: 'database', message: `${dbPath} is locked (${lockPath})` }],
        { cause: e },
      );
    }
    throw e;
  }
  const holder = { pid: process.pid, host: hostname(), startedAtMs: Date.now() };
  writeFileSync(pidPath, JSON.stringify(holder) + '\n', { mode: 0o600 });
  let isReleased = false;
  return {
    lockPath,
    release() {
      if (isReleased) return;
      isReleased = true;
      // Remove our PID first: the next holder writes its own after it has the lock.
      try {
        if (readHolder(pidPath)?.pid === process.pid) rmSync(pidPath, { force: true });
      } catch {
        // Best effort: a stale PID file is only ever read for an error message.
      }
      db.close();
    },
  };
}

function readHolder(pidPath: string): { pid: number; host: string; startedAtMs: number } | null {
  try {
    const h = JSON.parse(readFileSync(pidPath, 'utf8')) as { pid?: unknown; host?: unknown; startedAtMs?: unknown };
    if (typeof h.pid !== 'number') return null;
    return { pid: h.pid, host: typeof h.host === 'string' ? h.host : '', startedAtMs: Number(h.startedAtMs ?? 0) };
  } catch {
    return null;
  }
}

function holderText(pidPath: string): string {
  const h = readHolder(pidPath);
  if (!h) return 'process unknown';
  return `pid ${h.pid} on ${h.host}, running since ${new Date(h.startedAtMs).toISOString()}`;
}
