// Runs this box's part of a live trace (proto TraceRequest; the pure half is trace-table.ts):
// installs the temporary table, watches for the window (nft trace on the destination, the test
// packet itself on the source), reads the counters and the flow's ct mark, removes the table in
// every case, and answers through ReportTrace. At most MAX_ACTIVE traces at once: each costs an nft
// monitor process, and a controller asking for more is refused per request, not queued.
import type { Logger } from 'pino';
import { type AgentConfig, type TraceReport, type TraceRequest } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { RuleMark } from '../host/firewall-names.js';
import type { CommandRunner, WatchHandle } from '../host/linux/run.js';
import { sourceAddressFor } from '../health/path-prober.js';
import type { AttemptOutcome, LocalAddressLookup } from '../health/ports.js';
import {
  checkTraceRequest,
  judgeTraceLines,
  leftoverTraceTables,
  parseTraceCounters,
  renderTraceTable,
  traceTableName,
  type CheckedTrace,
  type Count,
} from './trace-table.js';

type Ok = Extract<CheckedTrace, { ok: true }>;
export type TraceReportBody = Omit<TraceReport, '$typeName' | '$unknown' | 'protocolVersion'>;

export interface LiveTracerDeps {
  runner: Pick<CommandRunner, 'run' | 'watch'>;
  log: Logger;
  localAddresses: LocalAddressLookup;
  /** Sends the test packet: tcp connect, udp datagram or ping, from `source` (and `sourcePort`). */
  attempt(t: Ok, source: string, timeoutMs: number): Promise<AttemptOutcome>;
  /** The config the box enforces (its relay forwards); null before the first. */
  config(): AgentConfig | null;
  /** The enforced firewall's rule marks, by mark. */
  ruleMarks(): ReadonlyMap<number, RuleMark> | undefined;
  /** Answers the controller (ReportTrace). Rejections are logged, not retried. */
  report(r: TraceReportBody): Promise<void>;
}

const MAX_ACTIVE = 4;
/** The source waits this long before sending, so the other boxes' tables and monitors are ready. */
const SEND_DELAY_MS = 300;
/** At most this many trace lines are kept per trace (a flood of matches stays bounded). */
const MAX_LINES = 200;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

function outcomeText(o: AttemptOutcome): string {
  return o.kind === 'connected' ? `answered in ${o.rttMs.toFixed(1)} ms` : `${o.kind}: ${o.detail}`;
}

export class LiveTracer {
  private readonly active = new Set<string>();
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly deps: LiveTracerDeps) {}

  /** Removes trace tables a previous run left behind (it crashed or was killed mid-trace). */
  async removeLeftovers(): Promise<void> {
    const r = await this.deps.runner.run(['nft', 'list', 'tables'], { allowFailure: true });
    for (const name of leftoverTraceTables(r.stdout)) {
      await this.deps.runner.run(['nft', 'delete', 'table', 'inet', name], { allowFailure: true });
      this.deps.log.warn({ table: name }, 'removed a live-trace table left behind');
    }
  }

  /** Starts one trace; returns at once (the answer goes through `report`). Never throws. */
  handle(req: TraceRequest): void {
    const p = this.run(req)
      .then((r) => this.deps.report(r))
      .catch((err: unknown) =>
        this.deps.log.warn({ err: (err as Error).message, id: req.id }, 'live trace not answered'),
      )
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  /** Waits for the traces in flight (each removes its table before it ends). */
  async stop(): Promise<void> {
    await Promise.all([...this.running]);
  }

  private async run(req: TraceRequest): Promise<TraceReportBody> {
    const base = {
      id: req.id,
      role: req.role,
      rule: '',
      direction: '',
      packets: 0n,
      bytes: 0n,
      replyPackets: 0n,
      replyBytes: 0n,
    };
    const t = checkTraceRequest(req);
    if (!t.ok) return { ...base, verdict: 'error', detail: `bad trace request: ${t.problem}` };
    if (this.active.size >= MAX_ACTIVE)
      return { ...base, verdict: 'error', detail: `${MAX_ACTIVE} live traces already run on this box` };
    const table = traceTableName(t.id);
    if (this.active.has(table)) return { ...base, verdict: 'error', detail: 'this trace id already runs' };
    const script = renderTraceTable(t, { forwards: this.deps.config()?.firewall?.relay ?? [] });
    if (script === null)
      return { ...base, verdict: 'not-seen', detail: `this box relays nothing between ${t.peerA} and ${t.peerB}` };
    const startMs = Date.now();
    const { runner, log } = this.deps;
    const lines: string[] = [];
    let watcher: WatchHandle | null = null;
    this.active.add(table);
    try {
      await runner.run(['nft', '-f', '-'], { input: script });
      if (t.role === 'destination' && runner.watch) {
        // Only verdict lines are kept: "packet:" lines carry header and payload bytes.
        watcher = runner.watch(
          ['stdbuf', '-oL', 'nft', 'monitor', 'trace'],
          {},
          (line) => {
            if (lines.length < MAX_LINES && line.startsWith('trace id ') && !/ packet: /.test(line)) lines.push(line);
          },
          () => undefined,
        );
      }
      let sent: string | null = null;
      if (t.role === 'source') {
        await sleep(SEND_DELAY_MS);
        const source = sourceAddressFor(t.sourcePrefix, await this.deps.localAddresses());
        if (source === null)
          return { ...base, verdict: 'error', detail: `this box has no address in ${t.sourcePrefix}` };
        const outcome = await this.deps.attempt(t, source, Math.max(200, startMs + t.windowMs - Date.now() - 100));
        sent = `from ${source}${t.sourcePort ? ` port ${t.sourcePort}` : ''}: ${outcomeText(outcome)}`;
      }
      await sleep(startMs + t.windowMs - Date.now());
      const listed = await runner.run(['nft', '-j', 'list', 'counters', 'table', 'inet', table], {
        allowFailure: true,
      });
      const c = parseTraceCounters(listed.stdout);
      const counts = {
        packets: BigInt(c.forward.packets),
        bytes: BigInt(c.forward.bytes),
        replyPackets: BigInt(c.back.packets),
        replyBytes: BigInt(c.back.bytes),
      };
      if (t.role === 'source')
        return {
          ...base,
          ...counts,
          verdict: c.forward.packets > 0 ? 'sent' : 'error',
          detail: `${sent}; the box's own packets leave by its output path, which Crosslink's outbound chain does not judge`,
        };
      if (t.role === 'relay') return { ...base, ...counts, ...this.relayVerdict(t, c.forward, c.back) };
      return { ...base, ...counts, ...(await this.destinationVerdict(t, lines, c.forward)) };
    } catch (e) {
      return { ...base, verdict: 'error', detail: `could not watch: ${(e as Error).message.split('\n')[0]}` };
    } finally {
      watcher?.stop();
      // Removed in every case; an agent killed before this line removes it when it starts again.
      await runner
        .run(['nft', 'delete', 'table', 'inet', table], { allowFailure: true })
        .catch((err: unknown) =>
          log.error({ err: (err as Error).message, table }, 'could not remove the live-trace table'),
        );
      this.active.delete(table);
    }
  }

  private relayVerdict(t: Ok, ab: Count, ba: Count): Pick<TraceReport, 'verdict' | 'detail'> {
    const what = `${ab.packets} encrypted datagrams ${t.peerA} -> ${t.peerB}, ${ba.packets} back, in ${t.windowMs} ms: all of the pair's tunnel traffic (a relay cannot read it, nor tell the test packet from the rest)`;
    return { verdict: ab.packets > 0 ? 'forwarded' : 'not-seen', detail: what };
  }

  private async destinationVerdict(
    t: Ok,
    lines: readonly string[],
    forward: Count,
  ): Promise<Pick<TraceReport, 'verdict' | 'detail' | 'rule' | 'direction'>> {
    const j = judgeTraceLines(lines);
    if (forward.packets === 0 && j.verdict === 'not-seen')
      return { verdict: 'not-seen', detail: `no test packet arrived in ${t.windowMs} ms`, rule: '', direction: '' };
    const marked = j.verdict === 'dropped' ? null : await this.ctRule(t);
    if (j.verdict === 'not-seen') {
      // Counted but not traced (the monitor started late): conntrack still knows an admitted flow.
      if (marked)
        return {
          verdict: 'admitted',
          rule: marked.rule,
          direction: marked.direction,
          detail: `admitted by rule "${marked.rule}" (${marked.direction}; from the flow's ct mark)`,
        };
      return {
        verdict: 'dropped',
        rule: '',
        direction: '',
        detail: 'the test packet arrived but no connection was made: dropped (the trace did not show where)',
      };
    }
    if (j.verdict === 'admitted' && j.isByRule && marked)
      return {
        verdict: 'admitted',
        rule: marked.rule,
        direction: marked.direction,
        detail: `admitted by rule "${marked.rule}" (${marked.direction})`,
      };
    return {
      verdict: j.verdict === 'passed' ? 'admitted' : j.verdict,
      rule: '',
      direction: j.direction,
      detail: j.detail,
    };
  }

  /** The rule whose ct mark the test flow's conntrack entry carries, if any. */
  private async ctRule(t: Ok): Promise<RuleMark | null> {
    const argv = [
      'conntrack',
      '-L',
      '-f',
      t.family === 4 ? 'ipv4' : 'ipv6',
      '-p',
      t.protocol === 'icmp' && t.family === 6 ? 'icmpv6' : t.protocol,
      '--orig-dst',
      t.target,
    ];
    if (t.protocol !== 'icmp') argv.push('--orig-port-src', String(t.sourcePort), '--orig-port-dst', String(t.port));
    const r = await this.deps.runner.run(argv, { allowFailure: true }).catch(() => null);
    const marks = this.deps.ruleMarks();
    for (const line of (r?.stdout ?? '').split('\n')) {
      const m = /\bmark=(\d+)/.exec(line);
      const rule = m ? marks?.get(Number(m[1])) : undefined;
      if (rule) return rule;
    }
    return null;
  }
}
