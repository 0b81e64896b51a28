// ConntrackPort over the `conntrack` tool (Debian's conntrack package).
//
// Why a relay needs it: NAT is decided on a connection's first packet only. A box that starts
// sending WireGuard datagrams to a relay's port before the relay's port map is installed (or after
// the map sends that port elsewhere) has a conntrack entry without (or with the old) translation,
// and WireGuard's handshake retries every 5 s keep that entry alive past UDP's 30 s timeout, so
// the pair would never pass. Forgetting the entries of each forward that appeared, changed or went
// makes the next datagram take the current map (or none: a removed forward stops at once).
//
// Why every box needs it: an established flow is let through by `ct state established` whatever the
// policy says now. When a rule goes (removed, or a box restarted with a narrower policy), the
// flows it admitted are forgotten: their next packet is a new one to conntrack (TCP's loose pickup)
// and meets the current rules, which drop it, or admit it again under the rule that now allows it.
import type { ConntrackPort, RelayListen } from '../ports.js';

const hex = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
/** "0 flow entries have been deleted" (exit 1) is not a failure: there was nothing to forget. */
const NOTHING = /0 flow entries have been deleted/;
import type { CommandRunner } from './run.js';

export class LinuxConntrack implements ConntrackPort {
  constructor(private readonly opts: { runner: CommandRunner; netns?: string }) {}

  async forgetUdp(listens: readonly RelayListen[]): Promise<void> {
    for (const l of listens) {
      // Exit 1 with "0 flow entries have been deleted" is not a failure: there was nothing to forget.
      const r = await this.opts.runner.run(
        [
          'conntrack',
          '-D',
          '-f',
          l.family === 6 ? 'ipv6' : 'ipv4',
          '-p',
          'udp',
          '--orig-dst',
          l.address,
          '--orig-port-dst',
          String(l.port),
        ],
        { netns: this.opts.netns, allowFailure: true },
      );
      if (r.exitCode !== 0 && !NOTHING.test(r.stderr)) {
        throw new Error(
          `conntrack -D --orig-dst ${l.address} --orig-port-dst ${l.port}: exit ${r.exitCode}: ${r.stderr.trim()}`,
        );
      }
    }
  }

  async forgetMarks(marks: readonly number[]): Promise<void> {
    for (const mark of marks) {
      for (const family of ['ipv4', 'ipv6']) {
        const argv = ['conntrack', '-D', '-f', family, '--mark', `${hex(mark)}/0xffffffff`];
        const r = await this.opts.runner.run(argv, { netns: this.opts.netns, allowFailure: true });
        if (r.exitCode !== 0 && !NOTHING.test(r.stderr))
          throw new Error(`${argv.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim()}`);
      }
    }
  }

  async listMarks(base: number, mask: number): Promise<number[]> {
    const marks = new Set<number>();
    for (const family of ['ipv4', 'ipv6']) {
      const argv = ['conntrack', '-L', '-f', family, '--mark', `${hex(base)}/${hex(mask)}`];
      const r = await this.opts.runner.run(argv, { netns: this.opts.netns, allowFailure: true });
      if (r.exitCode !== 0) throw new Error(`${argv.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim()}`);
      for (const m of r.stdout.matchAll(/ mark=(\d+)/g)) marks.add(Number(m[1]) >>> 0);
    }
    return [...marks].sort((a, b) => a - b);
  }
}
