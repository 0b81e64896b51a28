// LinkPort over `ip -json addr show` and `ip link`/`ip addr`. Link-local IPv6 addresses are the
// kernel's, not ours, and are not reported.
import { canonicalInterfaceAddress, sortByPrefix } from '../canonical.js';
import type { LinkObserved, LinkPort } from '../ports.js';
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
  return { exists: true, isUp: (link.flags ?? []).includes('UP'), mtu: link.mtu ?? 0, addresses: sortByPrefix(addresses, (a) => a) };
}

export class LinuxLinks implements LinkPort {
  constructor(private readonly opts: { runner: CommandRunner; netns?: string }) {}

  async observe(ifname: string): Promise<LinkObserved> {
    const r = await this.opts.runner.run(['ip', '-json', 'addr', 'show', 'dev', ifname], { netns: this.opts.netns, allowFailure: true });
    if (r.exitCode !== 0) {
      if (/does not exist|Cannot find device/.test(r.stderr)) return { exists: false, isUp: false, mtu: 0, addresses: [] };
      await this.opts.runner.run(['ip', '-json', 'addr', 'show', 'dev', ifname], { netns: this.opts.netns }); // throws with the details
    }
    return parseIpAddrJson(r.stdout);
  }

  async setUp(ifname: string, mtu: number): Promise<void> {
    await this.opts.runner.run(['ip', 'link', 'set', 'dev', ifname, 'mtu', String(mtu), 'up'], { netns: this.opts.netns });
  }

  async addAddress(ifname: string, cidr: string): Promise<void> {
    // `replace` is idempotent where `add` fails with "File exists".
    await this.opts.runner.run(['ip', 'addr', 'replace', canonicalInterfaceAddress(cidr), 'dev', ifname], { netns: this.opts.netns });
  }

  async delAddress(ifname: string, cidr: string): Promise<void> {
    const argv = ['ip', 'addr', 'del', canonicalInterfaceAddress(cidr), 'dev', ifname];
    const r = await this.opts.runner.run(argv, { netns: this.opts.netns, allowFailure: true });
    // Already absent is the state we want.
    if (r.exitCode !== 0 && !/Cannot assign requested address|address not found/.test(r.stderr)) await this.opts.runner.run(argv, { netns: this.opts.netns });
  }
}
