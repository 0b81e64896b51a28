// One controller per SQLite file, with real processes: a second `crosslink controller serve` on a
// data dir that a live controller serves exits 1 naming the file and the other process; after the
// first is killed with SIGKILL (no clean-up ran) a new one starts on the same file.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../../cli/commands/api.js';
import { startChildController, waitExit } from './child.js';

const CLI = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));

function serve(dataDir: string): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', CLI, 'controller', 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    // A controller that started would run forever: stop it after 30 s so the assertion fails clearly.
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

t.test('a second controller on a served SQLite file is refused; a killed holder leaves no stale lock', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-lock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = await startChildController(dir);
  t.teardown(() => {
    if (first.proc.exitCode === null && first.proc.signalCode === null) first.proc.kill('SIGKILL');
  });

  const second = await serve(dir);
  t.equal(second.code, 1, 'the second controller exits 1');
  const db = join(dir, 'controller.db');
  t.match(
    second.stderr,
    `crosslink: database ${db} is in use by another controller (pid ${first.proc.pid} on `,
    'the error names the file and the other process',
  );
  t.notMatch(second.stderr, /\n\s+at /, 'no stack trace');
  t.notMatch(second.stdout, /listening/, 'it never listened');

  // The first is untouched: it still answers.
  const api = await ApiClient.connect({
    controller: first.url,
    token: first.adminToken,
    caFingerprint: first.caFingerprint,
  });
  t.equal((await api.request('GET', '/healthz')).status, 200, 'the first controller still serves');
  api.close();

  first.proc.kill('SIGKILL');
  await waitExit(first.proc);
  const third = await startChildController(dir);
  t.teardown(() => {
    if (third.proc.exitCode === null && third.proc.signalCode === null) third.proc.kill('SIGKILL');
  });
  const api3 = await ApiClient.connect({
    controller: third.url,
    token: third.adminToken,
    caFingerprint: third.caFingerprint,
  });
  t.equal(
    (await api3.request('GET', '/healthz')).status,
    200,
    'after kill -9 of the holder a new controller serves the file',
  );
  api3.close();
  third.proc.kill('SIGTERM');
  await waitExit(third.proc);
  t.equal(third.proc.exitCode, 0, 'a clean stop');
});
