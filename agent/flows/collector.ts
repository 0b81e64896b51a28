// The flow log: follows conntrack's events for the flows Crosslink's rules admitted (their ct mark,
// agent/host/firewall-names.ts) with `conntrack -E` from Debian's conntrack package, and hands one
// record per finished flow to the sinks (the local JSON-lines file, IPFIX, syslog); and, through
// the drop log (drop-log.ts), the firewall's sample of denied attempts.
import type { Logger } from 'pino';
import { Backoff } from '../../lib/backoff.js';
import { RULE_MARK_BASE, RULE_MARK_MASK, type RuleMark } from '../host/firewall-names.js';
import type { CommandRunner, WatchHandle } from '../host/linux/run.js';
import { FlowTracker, parseConntrackEvent } from './conntrack-events.js';
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

/** The conntrack command line: events of flows with Crosslink's marks only, with ids and times. */
export const CONNTRACK_EVENTS_ARGV = [
  'conntrack',
  '-E',
  '-e',
  'NEW,UPDATE,DESTROY',
  '-o',
  'id,timestamp',
  '--mark',
  `${hex(RULE_MARK_BASE)}/${hex(RULE_MARK_MASK)}`,
];

export class FlowCollector {
  private readonly tracker: FlowTracker;
  private readonly drops: DropLogReader;
  private watcher: WatchHandle | null = null;
  private isStopped = false;
  private readonly backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  private retry: NodeJS.Timeout | null = null;
  readonly counters = { records: 0, lines: 0, restarts: 0 };

  constructor(private readonly opts: FlowCollectorOptions) {
    this.tracker = new FlowTracker({ box: opts.box, marks: opts.marks });
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
    this.follow();
    this.drops.start();
  }

  private follow(): void {
    if (this.isStopped || !this.opts.runner.watch) return;
    this.watcher = this.opts.runner.watch(
      CONNTRACK_EVENTS_ARGV,
      { netns: this.opts.netns, coalesceMs: 20 },
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
    if (!ev) return;
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
