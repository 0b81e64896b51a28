// LinkPort over `ip -json addr show` and `ip link`/`ip addr`. Link-local IPv6 addresses are the
// kernel's, not ours, and are not reported.
import { canonicalInterfaceAddress, sortByPrefix } from '../canonical.js';
import type { LinkPort } from '../ports.js';
import type { InterfaceAddress, LinkObserved } from '../../reconcile/host-state.js';
import { MonitoredCache, type NetlinkMonitor } from './monitor.js';
import type { CommandRunner } from './run.js';

interface IpAddrJson {
  ifname: string;
  flags?: string[];
  mtu?: number;
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope?: string }>;
}

export function parseIpAddrJson(stdout: string): LinkObserved {
  const list = JSON.parse(stdout || '[]') as IpAddrJson[];
  const link = list[0];
  if (!link) return { exists: false, isUp: false, mtu: 0, addresses: [] };
  const addresses = (link.addr_info ?? [])
    .filter((a) => (a.family === 'inet' || a.family === 'inet6') && !(a.family === 'inet6' && a.scope === 'link'))
    .map((a) => canonicalInterfaceAddress(`${a.local}/${a.prefixlen}`));
  return {
    exists: true,
    isUp: (link.flags ?? []).includes('UP'),
    mtu: link.mtu ?? 0,
    addresses: sortByPrefix(addresses, (a) => a),
  };
}

/** Every global address of `ip -json addr show` (all interfaces but loopback). */
export function parseIpAddrAllJson(stdout: string): InterfaceAddress[] {
  const list = JSON.parse(stdout || '[]') as IpAddrJson[];
  const out: InterfaceAddress[] = [];
  for (const link of list) {
    if (link.ifname === 'lo') continue;
    for (const a of link.addr_info ?? []) {
      if ((a.family !== 'inet' && a.family !== 'inet6') || (a.family === 'inet6' && a.scope === 'link')) continue;
      out.push({ ifname: link.ifname, cidr: canonicalInterfaceAddress(`${a.local}/${a.prefixlen}`) });
    }
  }
  return out.sort((x, y) =>
    x.ifname < y.ifname ? -1 : x.ifname > y.ifname ? 1 : x.cidr < y.cidr ? -1 : x.cidr > y.cidr ? 1 : 0,
  );
}

export class LinuxLinks implements LinkPort {
  private readonly caches = new Map<string, MonitoredCache<LinkObserved>>();
  private readonly allCache: MonitoredCache<InterfaceAddress[]>;
  /** The background gratuitous-ARP sender of each gateway this box holds ("IF ADDRESS/LEN"). */
  private readonly announcers = new Map<string, number>();

  /** With `monitor`, reads run nothing while the monitor saw no change (see monitor.ts). */
  constructor(private readonly opts: { runner: CommandRunner; netns?: string; monitor?: NetlinkMonitor }) {
    this.allCache = new MonitoredCache(opts.monitor);
  }

  async observe(ifname: string): Promise<LinkObserved> {
    let cache = this.caches.get(ifname);
    if (!cache) this.caches.set(ifname, (cache = new MonitoredCache(this.opts.monitor)));
    const link = await cache.get(() => this.read(ifname));
    return { ...link, addresses: [...link.addresses] };
  }

  private async read(ifname: string): Promise<LinkObserved> {
    const r = await this.opts.runner.run(['ip', '-json', 'addr', 'show', 'dev', ifname], {
      netns: this.opts.netns,
      allowFailure: true,
    });
    if (r.exitCode !== 0) {
      if (/does not exist|Cannot find device/.test(r.stderr))
        return { exists: false, isUp: false, mtu: 0, addresses: [] };
      await this.opts.runner.run(['ip', '-json', 'addr', 'show', 'dev', ifname], { netns: this.opts.netns }); // throws with the details
    }
    return parseIpAddrJson(r.stdout);
  }

  async setUp(ifname: string, mtu: number): Promise<void> {
    return this.written(this.setUpNow(ifname, mtu));
  }

  private async setUpNow(ifname: string, mtu: number): Promise<void> {
    await this.opts.runner.run(['ip', 'link', 'set', 'dev', ifname, 'mtu', String(mtu), 'up'], {
      netns: this.opts.netns,
    });
  }

  async addAddress(ifname: string, cidr: string): Promise<void> {
    return this.written(this.addAddressNow(ifname, cidr));
  }

  private async addAddressNow(ifname: string, cidr: string): Promise<void> {
    // `replace` is idempotent where `add` fails with "File exists".
    await this.opts.runner.run(['ip', 'addr', 'replace', canonicalInterfaceAddress(cidr), 'dev', ifname], {
      netns: this.opts.netns,
    });
  }

  async observeAll(): Promise<InterfaceAddress[]> {
    const all = await this.allCache.get(async () => {
      const r = await this.opts.runner.run(['ip', '-json', 'addr', 'show'], { netns: this.opts.netns });
      return parseIpAddrAllJson(r.stdout);
    });
    return all.map((a) => ({ ...a }));
  }

  async addGateway(ifname: string, cidr: string): Promise<void> {
    return this.written(this.addGatewayNow(ifname, cidr));
  }

  private async addGatewayNow(ifname: string, cidr: string): Promise<void> {
    const c = canonicalInterfaceAddress(cidr);
    const address = c.slice(0, c.indexOf('/'));
    if (c.includes(':')) {
      // With ndisc_notify the kernel sends an unsolicited neighbour advertisement (override flag
      // set) once the address has passed duplicate address detection, so hosts move their entry
      // for the gateway to this box. Not `nodad`: the kernel sends no advertisement for those
      // (checked on 6.x), and DAD also refuses the address while another box still holds it.
      await this.opts.runner.run(['sysctl', '-q', '-w', `net.ipv6.conf.${ifname}.ndisc_notify=1`], {
        netns: this.opts.netns,
      });
      await this.opts.runner.run(['ip', 'addr', 'replace', c, 'dev', ifname], { netns: this.opts.netns });
    } else {
      await this.opts.runner.run(['ip', 'addr', 'replace', c, 'dev', ifname], { netns: this.opts.netns });
      // Gratuitous ARP, twice within a second: a host ignores an update within its 1 s locktime.
      await this.opts.runner.run(['arping', '-q', '-U', '-c', '2', '-w', '1', '-I', ifname, address], {
        netns: this.opts.netns,
        timeoutMs: 5000,
      });
      // And once a second for a few seconds more, in the background, as VRRP routers do: the box
      // that held the gateway before may announce it once more before its own removal (a standby
      // that briefly served at start-up did, in the failover test), and the last announcement wins.
      // Started as a daemon (its own session, not waited for): it must not hold up the agent's
      // exit, and it ends by itself within 6 s.
      // Stopped when the address goes (delAddress): arping -U keeps claiming an address its box no
      // longer has, and a standby that served for a moment at start-up would otherwise pull the
      // LAN's hosts back to itself for seconds after the primary took the gateway.
      this.stopAnnouncer(`${ifname} ${c}`);
      const daemon = this.opts.runner.startDaemon?.(
        ['arping', '-q', '-U', '-c', '5', '-w', '6', '-I', ifname, address],
        { netns: this.opts.netns },
      );
      if (daemon) {
        const key = `${ifname} ${c}`;
        this.announcers.set(key, daemon.pid);
        // Forgotten as soon as it exits, so a PID the system reuses later is never signalled.
        void daemon.exited.then(() => {
          if (this.announcers.get(key) === daemon.pid) this.announcers.delete(key);
        });
      }
    }
  }

  private stopAnnouncer(key: string): void {
    const pid = this.announcers.get(key);
    if (pid === undefined) return;
    this.announcers.delete(key);
    try {
      process.kill(pid, 'SIGTERM'); // our own child, still running (see above)
    } catch {
      // already gone
    }
  }

  async delAddress(ifname: string, cidr: string): Promise<void> {
    return this.written(this.delAddressNow(ifname, cidr));
  }

  private async delAddressNow(ifname: string, cidr: string): Promise<void> {
    this.stopAnnouncer(`${ifname} ${canonicalInterfaceAddress(cidr)}`);
    const argv = ['ip', 'addr', 'del', canonicalInterfaceAddress(cidr), 'dev', ifname];
    const r = await this.opts.runner.run(argv, { netns: this.opts.netns, allowFailure: true });
    // Already absent is the state we want.
    if (r.exitCode !== 0 && !/Cannot assign requested address|address not found/.test(r.stderr))
      await this.opts.runner.run(argv, { netns: this.opts.netns });
  }

  /** Our own change: cached reads are stale from now on, whatever its events say and when. */
  private async written(p: Promise<void>): Promise<void> {
    try {
      await p;
    } finally {
      this.opts.monitor?.touch();
    }
  }
}
