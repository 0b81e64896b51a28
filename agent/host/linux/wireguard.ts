// WireGuardPort over `wg` and either the kernel module (`ip link add IF type wireguard`) or
// wireguard-go (userspace, TUN). Peers are applied with `wg syncconf` from a 0600 file — not stdin:
// Node's pipes are sockets and wg cannot read its config from one — so unchanged peers keep their
// sessions.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostCommandError } from '../../../lib/errors.js';
import type { WireGuardMode, WireGuardPort } from '../ports.js';
import type { WgDeviceDesired, WgDeviceObserved, WgPeerObserved } from '../../reconcile/host-state.js';
import { renderWgConfig } from '../wg-config.js';
import type { NetlinkMonitor } from './monitor.js';
import { HostObservations } from './observations.js';
import type { CommandRunner } from './run.js';

/** wireguard-go's control sockets; one directory for every network namespace on the machine. */
export const WIREGUARD_SOCKET_DIR = '/var/run/wireguard';

export interface LinuxWireGuardOptions {
  runner: CommandRunner;
  netns?: string;
  /** Where the short-lived 0600 syncconf file is written. Default: the OS temp directory. */
  tempDir?: string;
  /** wireguard-go's log (append). Absent: discarded. */
  wireguardGoLogFile?: string;
  /** How long wireguard-go may take to bring its interface up. Default 5 000 ms. */
  startTimeoutMs?: number;
  /** Told when the interface is created or removed (cached link and route reads are then stale). */
  monitor?: NetlinkMonitor;
  /** The host's remembered reads (parsed allowed-IPs fields). Default: the adapter's own. */
  observations?: HostObservations;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Parses `wg show IF dump`. The first line carries the private key: it is read and dropped.
 *  `observations` remembers parsed allowed-IPs fields (the adapter passes the host's). */
export function parseWgDump(text: string, observations = new HostObservations()): WgDeviceObserved {
  const lines = text.split('\n').filter((l) => l !== '');
  const head = (lines[0] ?? '').split('\t');
  const none = (s: string | undefined) => (s === undefined || s === '(none)' ? '' : s);
  const peers: WgPeerObserved[] = lines.slice(1).map((l) => {
    const f = l.split('\t');
    const allowed = none(f[3]);
    return {
      publicKey: f[0] ?? '', // split() gives at least one field
      endpoint: none(f[2]),
      allowedIps: allowed === '' ? [] : observations.allowedIps(allowed),
      latestHandshakeUnix: Number(f[4] ?? 0),
      rxBytes: BigInt(f[5] ?? 0),
      txBytes: BigInt(f[6] ?? 0),
      persistentKeepaliveSeconds: f[7] === 'off' || f[7] === undefined ? 0 : Number(f[7]),
    };
  });
  peers.sort((a, b) => (a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0));
  return { publicKey: none(head[1]), listenPort: Number(head[2] ?? 0), peers };
}

/**
 * PID of the wireguard-go serving `ifname`, found without any state of ours: the process named
 * wireguard-go whose first argument is the interface (names are unique machine-wide because the
 * control sockets are). null when there is none.
 */
export function findWireGuardGoPid(ifname: string): number | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'wireguard-go') continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[1] === ifname || argv[argv.length - 2] === ifname) return Number(entry);
    } catch {
      // the process ended while we looked
    }
  }
  return null;
}

/**
 * Kernel when the wireguard module is loaded or can be loaded (a probe link is created and deleted
 * at once), userspace otherwise.
 */
export async function detectWireGuardMode(runner: CommandRunner, netns?: string): Promise<WireGuardMode> {
  if (existsSync('/sys/module/wireguard')) return 'kernel';
  const probe = `xlprobe${process.pid % 100000}`;
  const r = await runner.run(['ip', 'link', 'add', 'dev', probe, 'type', 'wireguard'], { netns, allowFailure: true });
  if (r.exitCode !== 0) return 'userspace';
  await runner.run(['ip', 'link', 'del', 'dev', probe], { netns, allowFailure: true });
  return 'kernel';
}

export class LinuxWireGuard implements WireGuardPort {
  private readonly runner: CommandRunner;
  private readonly netns?: string;
  private readonly opts: LinuxWireGuardOptions;
  /** wireguard-go PIDs started by this adapter, by interface. */
  private readonly pids = new Map<string, number>();
  /** prepare()'s rendered files, by the desired device they were made for (see WireGuardPort.prepare). */
  private readonly prepared = new WeakMap<WgDeviceDesired, string>();
  private readonly observations: HostObservations;

  constructor(opts: LinuxWireGuardOptions) {
    this.observations = opts.observations ?? new HostObservations();
    this.runner = opts.runner;
    this.netns = opts.netns;
    this.opts = opts;
  }

  /** PID of the wireguard-go behind `ifname` (ours or found in /proc), or null. */
  pidOf(ifname: string): number | null {
    const known = this.pids.get(ifname);
    if (known !== undefined && isAlive(known)) return known;
    return findWireGuardGoPid(ifname);
  }

  async observe(ifname: string): Promise<WgDeviceObserved | null> {
    const r = await this.runner.run(['wg', 'show', ifname, 'dump'], { netns: this.netns, allowFailure: true });
    if (r.exitCode === 0) return parseWgDump(r.stdout, this.observations);
    // "No such device" (kernel) or "Protocol not supported" (no module, no socket): not there.
    if (/Unable to access interface|No such device/.test(r.stderr) && !(await this.linkExists(ifname))) return null;
    throw new HostCommandError(['wg', 'show', ifname, 'dump'], r.exitCode, r.stderr);
  }

  async create(ifname: string, mode: WireGuardMode): Promise<void> {
    try {
      await this.createNow(ifname, mode);
    } finally {
      this.opts.monitor?.touch();
    }
  }

  private async createNow(ifname: string, mode: WireGuardMode): Promise<void> {
    if (await this.linkExists(ifname)) return;
    if (mode === 'kernel') {
      await this.runner.run(['ip', 'link', 'add', 'dev', ifname, 'type', 'wireguard'], { netns: this.netns });
      return;
    }
    if (!this.runner.startDaemon) throw new Error('this command runner cannot start wireguard-go');
    const argv = ['wireguard-go', ifname];
    // Foreground mode, detached by us: we learn its PID directly instead of chasing the fork.
    const daemon = this.runner.startDaemon(argv, {
      netns: this.netns,
      env: { WG_PROCESS_FOREGROUND: '1' },
      logFile: this.opts.wireguardGoLogFile,
    });
    this.pids.set(ifname, daemon.pid);
    // A holder, not a let: TypeScript cannot see the callback set it, and would narrow it to null.
    const exit: { code: number | null } = { code: null };
    void daemon.exited.then((c) => {
      exit.code = c;
    });
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 5000);
    try {
      for (;;) {
        if (exit.code !== null) {
          throw new HostCommandError(
            argv,
            exit.code,
            `wireguard-go exited (code ${exit.code}) before ${ifname} appeared${this.opts.wireguardGoLogFile ? `; see ${this.opts.wireguardGoLogFile}` : ''}`,
          );
        }
        if (existsSync(join(WIREGUARD_SOCKET_DIR, `${ifname}.sock`)) && (await this.linkExists(ifname))) return;
        if (Date.now() > deadline) {
          this.kill(daemon.pid);
          throw new HostCommandError(
            argv,
            -1,
            `wireguard-go did not bring up ${ifname} within ${this.opts.startTimeoutMs ?? 5000} ms`,
          );
        }
        await sleep(10);
      }
    } finally {
      daemon.detach();
    }
  }

  prepare(ifname: string, desired: WgDeviceDesired): void {
    if (!this.prepared.has(desired)) this.prepared.set(desired, this.render(desired));
  }

  /** The syncconf file's text. It holds the private key: kept in memory only until sync(). */
  private render(desired: WgDeviceDesired): string {
    const privateKey = readFileSync(desired.privateKeyFile, 'utf8').trim();
    return renderWgConfig(privateKey, desired.listenPort, desired.peers);
  }

  async sync(ifname: string, desired: WgDeviceDesired): Promise<void> {
    // Synchronous up to the start of `wg` (the text is usually prepared already; rendering 1,000
    // peers cold takes ~20 ms, writing the ~100 KB file well under one), so that `wg syncconf`
    // starts before whatever else the reconciler runs alongside (the route batch) takes the loop.
    const text = this.prepared.get(desired) ?? this.render(desired);
    this.prepared.delete(desired);
    const dir = mkdtempSync(join(this.opts.tempDir ?? tmpdir(), 'xl-wg-'));
    const file = join(dir, `${ifname}.conf`);
    try {
      writeFileSync(file, text, { mode: 0o600 });
      await this.runner.run(['wg', 'syncconf', ifname, file], { netns: this.netns });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async remove(ifname: string): Promise<void> {
    try {
      await this.removeNow(ifname);
    } finally {
      this.opts.monitor?.touch();
    }
  }

  private async removeNow(ifname: string): Promise<void> {
    const pid = this.pidOf(ifname);
    if (await this.linkExists(ifname)) {
      // Deleting the TUN link makes wireguard-go exit on its own.
      await this.runner.run(['ip', 'link', 'del', 'dev', ifname], { netns: this.netns });
    }
    if (pid !== null) {
      const deadline = Date.now() + 2000;
      while (isAlive(pid) && Date.now() < deadline) await sleep(10);
      if (isAlive(pid)) this.kill(pid);
    }
    this.pids.delete(ifname);
  }

  private kill(pid: number): void {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }

  private async linkExists(ifname: string): Promise<boolean> {
    const r = await this.runner.run(['ip', 'link', 'show', 'dev', ifname], { netns: this.netns, allowFailure: true });
    return r.exitCode === 0;
  }
}
