// The command lines a Fleet starts: the built CLI, its ports, the API forwarder and per-box agent flags.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Box, Testbed } from '../testbed/testbed.js';

/** The repository root (holds package.json), whether this file runs from the source tree or dist/. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'cli'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the repository root from ' + fileURLToPath(import.meta.url));
}

/** dist/cli/main.js; throws with the fix when it was not built. */
export function cliPath(): string {
  const p = join(repoRoot(), 'dist', 'cli', 'main.js');
  if (!existsSync(p)) throw new Error(`${p} is missing: run "make build" (or npx tsc -p tsconfig.build.json) first`);
  return p;
}

export const CONTROLLER_PORT = 8443;
export const WG_LISTEN_PORT = 51820;
export const STATUS_LISTEN = '127.0.0.1:9474';

// Runs inside the controller namespace: Unix socket (visible from the root namespace) -> TCP.
export const FORWARDER = `
const net = require('net'); const fs = require('fs');
const [sock, host, port] = process.argv.slice(1);
try { fs.unlinkSync(sock); } catch {}
const server = net.createServer((c) => {
  const u = net.connect(Number(port), host);
  c.pipe(u); u.pipe(c);
  c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
  c.on('close', () => u.destroy()); u.on('close', () => c.destroy());
});
server.listen(sock, () => { fs.chmodSync(sock, 0o600); console.log('ready'); });
`;

/**
 * `--endpoint` flags for a box: a bare HOST:PORT on a testbed with one underlay (as a box that
 * predates underlays), else NAME=HOST:PORT for every underlay the box is cabled to.
 */
export function endpointArgs(bed: Testbed, box: Box): string[] {
  if (bed.underlays.length === 1) return ['--endpoint', `${box.wanAddress}:${WG_LISTEN_PORT}`];
  return box.underlays.flatMap((u) => ['--endpoint', `${u.underlay}=${u.address}:${WG_LISTEN_PORT}`]);
}

/** The last lines of a log file, for error messages (or "(no log)"). */
export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
