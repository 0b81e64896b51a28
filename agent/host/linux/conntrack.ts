// ConntrackPort over the `conntrack` tool (Debian's conntrack package).
//
// Why a relay needs it: NAT is decided on a connection's first packet only. A box that starts
// sending WireGuard datagrams to a relay's port before the relay's port map is installed (or after
// the map sends that port elsewhere) has a conntrack entry without (or with the old) translation,
// and WireGuard's handshake retries every 5 s keep that entry alive past UDP's 30 s timeout, so
// the pair would never pass. Forgetting the entries of each forward that appeared, changed or went
// makes the next datagram take the current map (or none: a removed forward stops at once).
import type { ConntrackPort, RelayListen } from '../ports.js';
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
      if (r.exitCode !== 0 && !/0 flow entries have been deleted/.test(r.stderr)) {
        throw new Error(
          `conntrack -D --orig-dst ${l.address} --orig-port-dst ${l.port}: exit ${r.exitCode}: ${r.stderr.trim()}`,
        );
      }
    }
  }
}
