// Starts test/controller/fixtures/controller-child.ts and waits for its "listening" line.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const FIXTURE = fileURLToPath(new URL('./fixtures/controller-child.ts', import.meta.url));

export interface ChildController {
  proc: ChildProcess;
  url: string;
  port: number;
  caFingerprint: string;
  adminToken: string;
  stderr: () => string;
}

/** `settings`: more controller settings, e.g. `{ database: 'postgres://…' }`. */
export function startChildController(
  dataDir: string,
  listen = '127.0.0.1:0',
  settings: Record<string, unknown> = {},
): Promise<ChildController> {
  const proc = spawn(process.execPath, ['--import', 'tsx', FIXTURE, dataDir, listen, JSON.stringify(settings)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`controller did not start within 60 s: ${err}`));
    }, 60_000);
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      const info = JSON.parse(out.slice(0, nl)) as { url: string; port: number; caFingerprint: string };
      resolve({
        proc,
        ...info,
        adminToken: readFileSync(join(dataDir, 'admin.token'), 'utf8').trim(),
        stderr: () => err,
      });
    });
    proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`controller exited (${code ?? sig}) before listening: ${err}`));
    });
  });
}

export function waitExit(proc: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (proc.exitCode !== null || proc.signalCode !== null) r();
    else proc.once('exit', () => r());
  });
}
