// The Linux Host: every adapter over one command runner, optionally inside a network namespace
// (tests run the adapters from the root namespace against a box namespace).
import type { Host } from '../ports.js';
import { LinuxConntrack } from './conntrack.js';
import { LinuxFirewall, type LinuxFirewallOptions } from './firewall.js';
import { LinuxLinks } from './links.js';
import { NetlinkMonitor, type NetlinkMonitorOptions } from './monitor.js';
import { NftMonitor } from './nft-monitor.js';
import { HostObservations } from './observations.js';
import { LinuxRoutes } from './routes.js';
import { ProcessRunner, type CommandRunner } from './run.js';
import { LinuxSysctl } from './sysctl.js';
import { LinuxWireGuard } from './wireguard.js';

export interface LinuxHostOptions {
  runner?: CommandRunner;
  netns?: string;
  /** Short-lived 0600 files for `wg syncconf`, `nft -f` and `ip -batch`. Default: the OS temp directory. */
  tempDir?: string;
  wireguardGoLogFile?: string;
  firewall?: Pick<LinuxFirewallOptions, 'isWatching' | 'fullCheckIntervalMs' | 'clock'>;
  /** Cache route and link reads behind `ip monitor` (monitor.ts). Default on (when the runner can watch). */
  netlink?: Pick<NetlinkMonitorOptions, 'settleMs' | 'fullCheckIntervalMs' | 'clock'> & { isWatching?: boolean };
}

/** Changes in the host's network namespace that are not the agent's own (NetlinkMonitor.onChange). */
export interface HostChangeFeed {
  /** Calls `listener` with each such `ip monitor` line; returns the unsubscribe function. */
  onChange(listener: (line: string) => void): () => void;
}

export interface LinuxHost extends Host {
  wireguard: LinuxWireGuard;
  firewall: LinuxFirewall;
  /** The route/link monitor's change feed: the agent's one `ip monitor`. Absent when it is off. */
  events?: HostChangeFeed;
  /** Stops helper processes (the nft and ip monitors). The data plane stays as it is. */
  close(): void;
}

export function createLinuxHost(opts: LinuxHostOptions = {}): LinuxHost {
  const runner = opts.runner ?? new ProcessRunner();
  const base = { runner, netns: opts.netns };
  const { isWatching, ...netlink } = opts.netlink ?? {};
  const monitor = isWatching === false || !runner.watch ? undefined : new NetlinkMonitor({ ...base, ...netlink });
  const observations = new HostObservations(monitor, new NftMonitor({ ...base, clock: opts.firewall?.clock }));
  const firewall = new LinuxFirewall({ ...base, tempDir: opts.tempDir, ...opts.firewall, monitor: observations.nft });
  return {
    wireguard: new LinuxWireGuard({
      ...base,
      tempDir: opts.tempDir,
      wireguardGoLogFile: opts.wireguardGoLogFile,
      monitor,
      observations,
    }),
    links: new LinuxLinks({ ...base, monitor }),
    routes: new LinuxRoutes({ ...base, monitor, tempDir: opts.tempDir }),
    firewall,
    sysctl: new LinuxSysctl(base),
    conntrack: new LinuxConntrack(base),
    ...(monitor ? { events: { onChange: (listener: (line: string) => void) => monitor.onChange(listener) } } : {}),
    close: () => {
      firewall.close();
      monitor?.close();
    },
  };
}
