// Namespaces, processes and files of one bench:agent run; removed by name and PID at exit, also on Ctrl-C.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killPid, must, sh } from '../agent/host/linux/netns.fixture.js';
import { findWireGuardGoPid, WIREGUARD_SOCKET_DIR } from '../agent/host/linux/wireguard.js';

const PREFIX = `xlb${process.pid}`;
export const workDir = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
const namespaces = new Set<string>();
const ifnames = new Set<string>();
export const pids = new Set<number>();
let counter = 0;

export function addNetns(tag: string): string {
  const name = `${PREFIX}${tag}${counter++}`;
  must(['ip', 'netns', 'add', name]);
  namespaces.add(name);
  must(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}
/** A machine-wide unique interface name: wireguard-go's sockets are shared by all namespaces. */
export function newIfname(): string {
  const name = `${PREFIX}w${counter++}`;
  if (name.length > 15) throw new Error(`interface name ${name} is too long`);
  ifnames.add(name);
  return name;
}
export function removeNetns(ns: string): void {
  if (!namespaces.delete(ns)) return;
  // Whatever still runs inside (wireguard-go, servers, the agent), by PID, then the namespace.
  for (const p of sh(['ip', 'netns', 'pids', ns]).stdout.split('\n').filter(Boolean)) killPid(Number(p));
  sh(['ip', 'netns', 'del', ns]);
}
export function cleanup(): void {
  for (const pid of pids) killPid(pid);
  pids.clear();
  for (const ns of [...namespaces]) removeNetns(ns);
  for (const ifn of ifnames) {
    const pid = findWireGuardGoPid(ifn);
    if (pid !== null) killPid(pid);
    rmSync(join(WIREGUARD_SOCKET_DIR, `${ifn}.sock`), { force: true });
  }
  rmSync(workDir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    cleanup();
    process.exit(130);
  });
}
