// The drop log: the denied attempts the firewall samples to NFLOG (a few per second per direction,
// agent/host/firewall-names.ts DROP_LOG_GROUPS), read with `tcpdump -i nflog:...` and turned into
// flow records with the verdict "dropped". The parser is pure; DropLogReader runs tcpdump.
//
// `tcpdump -l -n -e -v -tt -i nflog:25465,25466,25467` prints, per packet (tcpdump 4.99):
//   1796507692.777892 version 0, resource ID 25466, family IPv4 (2), length 108: (tos 0x0, ttl 64, id 6578, offset 0, flags [DF], proto TCP (6), length 60)
//       127.0.0.1.42792 > 127.0.0.1.9998: Flags [S], ...
//   1796507692.778429 version 0, resource ID 25466, family IPv6 (10), length 128: (flowlabel 0x3febd, hlim 64, next-header TCP (6) payload length: 40) ::1.51804 > ::1.9998: Flags [S], ...
import type { Logger } from 'pino';
import { Backoff } from '../../lib/backoff.js';
import { DROP_LOG_GROUPS, FIREWALL_DIRECTIONS, type FirewallDirection } from '../host/firewall-names.js';
import type { CommandRunner, WatchHandle } from '../host/linux/run.js';
import type { FlowSink } from './collector.js';
import type { FlowRecord } from '../../lib/export/record.js';

const HEADER = /^(\d+)\.(\d+) version \d+, resource ID (\d+), family IPv([46]) \(\d+\), length \d+: (.*)$/;
const V4 = /proto \S+ \((\d+)\), length (\d+)\)/;
const V6 = /next-header \S+ \((\d+)\) payload length: (\d+)\) (.*)$/;
const PORTED = new Set([6, 17, 132]);

const directionOf = new Map<number, FirewallDirection>(
  FIREWALL_DIRECTIONS.map((d) => [DROP_LOG_GROUPS[d.key], d.key] as const),
);

/** "10.1.0.2.42792" -> address and port for protocols with ports; the address alone otherwise. */
function endpoint(text: string, isPorted: boolean): { address: string; port: number } {
  if (!isPorted) return { address: text, port: 0 };
  const dot = text.lastIndexOf('.');
  return { address: text.slice(0, dot), port: Number(text.slice(dot + 1)) };
}

export class NflogParser {
  private pending: { atMs: number; direction: FirewallDirection; protocol: number; length: number } | null = null;

  constructor(private readonly box: string) {}

  /** One line of tcpdump's output; a record when a packet is complete. */
  feed(line: string): FlowRecord | null {
    const h = HEADER.exec(line);
    if (h) {
      this.pending = null;
      const direction = directionOf.get(Number(h[3]));
      if (!direction) return null;
      const atMs = Number(h[1]) * 1000 + Math.floor(Number(`0.${h[2]}`) * 1000);
      if (h[4] === '4') {
        const v4 = V4.exec(h[5]!);
        if (v4) this.pending = { atMs, direction, protocol: Number(v4[1]), length: Number(v4[2]) };
        return null;
      }
      const v6 = V6.exec(h[5]!);
      if (!v6) return null;
      return this.record({ atMs, direction, protocol: Number(v6[1]), length: Number(v6[2]) + 40 }, v6[3]!);
    }
    const p = this.pending;
    this.pending = null;
    return p && /^\s/.test(line) ? this.record(p, line.trim()) : null;
  }

  private record(
    p: { atMs: number; direction: FirewallDirection; protocol: number; length: number },
    addresses: string,
  ): FlowRecord | null {
    const m = /^(\S+) > (\S+?):\s/.exec(addresses);
    if (!m) return null;
    const isPorted = PORTED.has(p.protocol);
    const src = endpoint(m[1]!, isPorted);
    const dst = endpoint(m[2]!, isPorted);
    return {
      startMs: p.atMs,
      endMs: p.atMs,
      protocol: p.protocol,
      srcAddress: src.address,
      srcPort: src.port,
      dstAddress: dst.address,
      dstPort: dst.port,
      packets: 1,
      bytes: p.length,
      replyPackets: 0,
      replyBytes: 0,
      rule: null,
      direction: p.direction,
      verdict: 'dropped',
      srcZone: '',
      dstZone: '',
      box: this.box,
    };
  }
}

export const DROP_LOG_ARGV = [
  'tcpdump',
  '-l',
  '-n',
  '-e',
  '-v',
  '-tt',
  '-i',
  `nflog:${FIREWALL_DIRECTIONS.map((d) => DROP_LOG_GROUPS[d.key]).join(',')}`,
];

/** Follows the sampled drops with tcpdump and hands each to the sinks. Never throws. */
export class DropLogReader {
  private readonly parser: NflogParser;
  private watcher: WatchHandle | null = null;
  private retry: NodeJS.Timeout | null = null;
  private isStopped = false;
  private readonly backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  readonly counters = { records: 0 };

  constructor(
    private readonly opts: { runner: CommandRunner; netns?: string; box: string; sinks: FlowSink[]; log: Logger },
  ) {
    this.parser = new NflogParser(opts.box);
  }

  start(): void {
    if (this.isStopped || !this.opts.runner.watch) return;
    this.watcher = this.opts.runner.watch(
      DROP_LOG_ARGV,
      { netns: this.opts.netns },
      (line) => {
        const r = this.parser.feed(line);
        if (!r) return;
        this.backoff.reset();
        this.counters.records++;
        for (const sink of this.opts.sinks) sink.write(r);
      },
      (code) => {
        this.watcher = null;
        if (this.isStopped) return;
        const waitMs = this.backoff.next();
        this.opts.log.warn({ code, waitMs }, 'drop log: tcpdump exited; following again');
        this.retry = setTimeout(() => this.start(), waitMs);
      },
    );
  }

  stop(): void {
    this.isStopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.watcher?.stop();
    this.watcher = null;
  }
}
