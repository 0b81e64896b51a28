// The doctor's deps over this machine.
import { constants as fsc, existsSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import https from 'node:https';
import { delimiter, join } from 'node:path';
import type { Clock } from '../../lib/clock.js';
import { fetchPinnedCa, pinnedTlsOptions } from '../../lib/pin.js';
import type { CommandRunner } from '../host/linux/run.js';
import { detectWireGuardMode } from '../host/linux/wireguard.js';
import type { DoctorDeps } from './types.js';

/** Deps over this machine: `runner` (ProcessRunner), the file system, DNS and TLS. */
export function realDoctorDeps(runner: CommandRunner, clock: Clock, opts: { timeoutMs?: number } = {}): DoctorDeps {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return {
    run: async (argv) => {
      try {
        return await runner.run(argv, { allowFailure: true, timeoutMs });
      } catch (e) {
        // Only a program that could not be started gets here.
        return { exitCode: 127, stdout: '', stderr: (e as Error).message };
      }
    },
    readFile: (path) => readFile(path, 'utf8').catch(() => null),
    exists: (path) => Promise.resolve(existsSync(path)),
    which: async (program) => {
      for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
        if (!dir) continue;
        const p = join(dir, program);
        if (
          await access(p, fsc.X_OK).then(
            () => true,
            () => false,
          )
        )
          return p;
      }
      return null;
    },
    clock,
    fetchPinnedCa: (url, fingerprint) => fetchPinnedCa(url, fingerprint, { timeoutMs }),
    controllerDate: (url, caPem, fingerprint) =>
      new Promise((resolveDate, reject) => {
        const sentAtMs = clock.nowMs();
        const req = https.get(
          new URL('/healthz', url),
          { ...pinnedTlsOptions(caPem, fingerprint), timeout: timeoutMs, agent: false },
          (res) => {
            const receivedAtMs = clock.nowMs();
            res.resume();
            resolveDate({ date: res.headers.date ?? null, sentAtMs, receivedAtMs });
          },
        );
        req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
        req.on('error', reject);
      }),
    resolve: async (host) => (await lookup(host)).address,
    kernelWireGuard: async () => (await detectWireGuardMode(runner)) === 'kernel',
  };
}
