// Network namespaces and processes for the host tests, removed when the test ends — also on failure
// or Ctrl-C — by namespace name and by PID, never by process name. Names carry the prefix
// xlh<pid> so parallel runs never collide (wireguard-go sockets are shared by all namespaces, so
// interface names are unique machine-wide too).
import { spawnSync } from 'node:child_process';
import { createLinuxHost, type LinuxHost } from './host.js';
import { ProcessRunner, type CommandRunner } from './run.js';
import { detectWireGuardMode, findWireGuardGoPid } from './wireguard.js';

export function sh(argv: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function must(argv: string[], input?: string): string {
  const r = sh(argv, input);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export class NetnsFixture {
  readonly prefix = `xlh${process.pid}`;
  private readonly namespaces = new Set<string>();
  private readonly ifnames = new Set<string>();
  private readonly pids = new Set<number>();
  private counter = 0;
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.cleanup();
    process.kill(process.pid, sig);
  };

  constructor() {
    process.on('exit', () => this.cleanup());
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }

  /** A fresh namespace with lo up. */
  addNetns(tag = 'n'): string {
    const name = `${this.prefix}${tag}${this.counter++}`;
    must(['ip', 'netns', 'add', name]);
    this.namespaces.add(name);
    must(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** A machine-wide unique interface name (<= 15 characters); its wireguard-go is killed at cleanup. */
  ifname(tag = 'w'): string {
    const name = `${this.prefix}${tag}${this.counter++}`;
    if (name.length > 15) throw new Error(`interface name ${name} is too long`);
    this.ifnames.add(name);
    return name;
  }

  /** A Linux host over `runner` in `ns` (route and link reads cached 200 ms after its monitor
   *  starts), with the WireGuard interface `ifname` created and up; closed and removed when `t` ends. */
  async hostWithInterface(
    t: { teardown(fn: () => void): void },
    ns: string,
    ifname: string,
    runner: CommandRunner,
  ): Promise<LinuxHost> {
    const host = createLinuxHost({ netns: ns, runner, netlink: { settleMs: 200 } });
    t.teardown(() => {
      host.close();
      this.removeNetns(ns, [ifname]);
    });
    await host.wireguard.create(ifname, await detectWireGuardMode(new ProcessRunner(), ns));
    await host.links.setUp(ifname, 1420);
    return host;
  }

  trackPid(pid: number): void {
    this.pids.add(pid);
  }

  /** Removes one namespace (and the wireguard-go of the given interfaces). */
  removeNetns(name: string, ifnames: string[] = []): void {
    for (const ifn of ifnames) this.killWireGuardGo(ifn);
    if (this.namespaces.delete(name)) sh(['ip', 'netns', 'del', name]);
  }

  /** Everything this fixture made: processes by PID, then namespaces by name. Idempotent. */
  cleanup(): void {
    for (const pid of this.pids) killPid(pid);
    this.pids.clear();
    for (const ifn of this.ifnames) this.killWireGuardGo(ifn);
    for (const ns of this.namespaces) sh(['ip', 'netns', 'del', ns]);
    this.namespaces.clear();
  }

  private killWireGuardGo(ifname: string): void {
    const pid = findWireGuardGoPid(ifname);
    if (pid !== null) killPid(pid);
  }
}

/** SIGTERM, then SIGKILL after 1 s if the process is still there. */
export function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + 1000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    spawnSync('sleep', ['0.02']);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}
