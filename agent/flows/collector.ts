// The flow log: follows conntrack's events for the flows Crosslink's rules admitted (their ct mark,
// agent/host/firewall-names.ts) with `conntrack -E` from Debian's conntrack package, and hands one
// record per finished flow to the sinks (the local JSON-lines file, IPFIX, syslog); and, through
// the drop log (drop-log.ts), the firewall's sample of denied attempts.
import type { Logger } from 'pino';
import { Backoff } from '../../lib/backoff.js';
import { RULE_MARK_BASE, RULE_MARK_MASK, type RuleMark } from '../host/firewall-names.js';
import type { CommandRunner, WatchHandle } from '../host/linux/run.js';
import { FlowTracker, parseConntrackEvent, type TcpEndTimeouts } from './conntrack-events.js';
import { DropLogReader } from './drop-log.js';
import type { FlowRecord } from '../../lib/export/record.js';

export interface FlowSink {
  write(record: FlowRecord): void;
}

export interface FlowCollectorOptions {
  runner: CommandRunner;
  /** The box's network namespace (tests); absent: the agent's own. */
  netns?: string;
  box: string;
  marks: () => ReadonlyMap<number, RuleMark> | undefined;
  sinks: FlowSink[];
  log: Logger;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

/**
 * The conntrack command line: events of flows with Crosslink's marks only, with ids and times.
 * NEW and DESTROY only: a TCP flow also has ~4 UPDATEs (SYN_RECV, ESTABLISHED, FIN_WAIT, TIME_WAIT),
 * which at 1,000 new flows/s cost most of the CPU and overflowed the netlink socket (events lost,
 * "ENOBUFS"); its end is taken from the DESTROY instead (FlowTracker's tcpTimeouts). The kernel
 * filters by event type (one netlink group each), so the UPDATEs are never sent at all. An 8 MiB
 * receive buffer holds some seconds of events while the agent is busy.
 */
export const CONNTRACK_EVENTS_ARGV = [
  'conntrack',
  '-E',
  '-e',
  'NEW,DESTROY',
  '-o',
  'id,timestamp',
  '--buffer-size',
  String(8 << 20),
  '--mark',
  `${hex(RULE_MARK_BASE)}/${hex(RULE_MARK_MASK)}`,
];

const TCP_TIMEOUT_SYSCTLS = {
  timeWait: 'net.netfilter.nf_conntrack_tcp_timeout_time_wait',
  close: 'net.netfilter.nf_conntrack_tcp_timeout_close',
} as const;

export class FlowCollector {
  private readonly tracker: FlowTracker;
  private readonly drops: DropLogReader;
  private watcher: WatchHandle | null = null;
  private isStopped = false;
  private readonly backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  private retry: NodeJS.Timeout | null = null;
  /** records: written; lines: read; restarts of conntrack -E; lost: times conntrack said it lost
   *  events (its netlink buffer overflowed). */
  readonly counters = { records: 0, lines: 0, restarts: 0, lost: 0 };
  /** Linux's defaults until the box's own are read. */
  private readonly tcpTimeouts: TcpEndTimeouts = { timeWait: 120, close: 10 };

  constructor(private readonly opts: FlowCollectorOptions) {
    this.tracker = new FlowTracker({ box: opts.box, marks: opts.marks, tcpTimeouts: this.tcpTimeouts });
    this.drops = new DropLogReader(opts);
  }

  /** Turns on conntrack's byte counters and flow timestamps (per network namespace; the records
   *  need them), then follows the events. Never throws: a box without conntrack logs why. */
  async start(): Promise<void> {
    for (const key of ['net.netfilter.nf_conntrack_acct', 'net.netfilter.nf_conntrack_timestamp']) {
      const r = await this.opts.runner.run(['sysctl', '-qw', `${key}=1`], {
        netns: this.opts.netns,
        allowFailure: true,
      });
      if (r.exitCode !== 0)
        this.opts.log.warn({ key, stderr: r.stderr.trim() }, 'flow log: cannot turn on a conntrack setting');
    }
    for (const [field, key] of Object.entries(TCP_TIMEOUT_SYSCTLS) as Array<[keyof TcpEndTimeouts, string]>) {
      const r = await this.opts.runner.run(['sysctl', '-n', key], { netns: this.opts.netns, allowFailure: true });
      const v = Number(r.stdout.trim());
      if (r.exitCode === 0 && Number.isInteger(v) && v >= 0) this.tcpTimeouts[field] = v;
    }
    this.follow();
    this.drops.start();
  }

  private follow(): void {
    if (this.isStopped || !this.opts.runner.watch) return;
    this.watcher = this.opts.runner.watch(
      CONNTRACK_EVENTS_ARGV,
      { netns: this.opts.netns },
      (line) => this.onLine(line),
      (code) => {
        this.watcher = null;
        if (this.isStopped) return;
        this.counters.restarts++;
        const waitMs = this.backoff.next();
        this.opts.log.warn({ code, waitMs }, 'flow log: conntrack -E exited; following again');
        this.retry = setTimeout(() => this.follow(), waitMs);
      },
    );
  }

  private onLine(line: string): void {
    this.counters.lines++;
    const ev = parseConntrackEvent(line);
    if (!ev) {
      if (line.includes('ENOBUFS')) {
        // Said once per overflow; the flows whose events were lost get no record.
        if (this.counters.lost++ % 100 === 0)
          this.opts.log.warn({ times: this.counters.lost }, 'flow log: conntrack lost events (the box is too busy)');
      }
      return;
    }
    this.backoff.reset();
    const record = this.tracker.feed(ev);
    if (!record) return;
    this.counters.records++;
    for (const sink of this.opts.sinks) {
      try {
        sink.write(record);
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message }, 'flow log: a sink failed');
      }
    }
  }

  stop(): void {
    this.isStopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.watcher?.stop();
    this.watcher = null;
    this.drops.stop();
  }
}
