// The flow pipeline of a running agent: the collector (conntrack events and the drop log) and where
// its records go: the local flow log file, IPFIX collectors, a syslog receiver (agent/flows/).
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { FlowCollector, FlowCollectorOptions, FlowSink } from './collector.js';
import { IpfixExporter, parseCollector, parseSyslogUrl, SyslogExporter } from '../../lib/export/exporters.js';
import type { FlowRecord } from '../../lib/export/record.js';
import type { ZoneTable } from './zone-table.js';
import { DEFAULT_FLOW_LOG_MAX_BYTES, FLOW_LOG_FILE, FlowLogFile } from './flow-log.js';

/** The agent's settings for it (AgentRunOptions' fields of the same names). */
export interface FlowPipelineOptions {
  stateDir: string;
  flowLogMaxBytes?: number;
  ipfixCollectors?: string[];
  syslog?: string;
  syslogCa?: string;
}

/** The flow log: conntrack's finished flows (and the sampled drops) to STATE_DIR/flows.jsonl and to
 *  the IPFIX collectors and syslog receiver configured (agent/flows/). */
export function startFlowPipeline(
  opts: FlowPipelineOptions,
  deps: {
    box: string;
    marks: FlowCollectorOptions['marks'];
    /** The zones of the current config (DesiredState.zones): each record names its ends' zones. */
    zones?: () => ZoneTable | undefined;
    createCollector: (o: Omit<FlowCollectorOptions, 'runner'>) => Pick<FlowCollector, 'start' | 'stop'>;
    log: Logger;
  },
): { stop(): Promise<void> } | null {
  const { box, log } = deps;
  const maxBytes = opts.flowLogMaxBytes ?? DEFAULT_FLOW_LOG_MAX_BYTES;
  const collectors = (opts.ipfixCollectors ?? []).map((c) => parseCollector(c));
  if (maxBytes === 0 && collectors.length === 0 && !opts.syslog) return null;
  const sinks: FlowSink[] = [];
  const closers: Array<() => Promise<void> | void> = [];
  if (maxBytes > 0) {
    const file = new FlowLogFile(join(resolve(opts.stateDir), FLOW_LOG_FILE), maxBytes, (err) =>
      log.warn({ err: err.message }, 'flow log: cannot write the file'),
    );
    sinks.push(file);
    closers.push(() => file.flush());
  }
  if (collectors.length > 0) {
    const ipfix = new IpfixExporter({ collectors, observationDomainId: observationDomainOf(box), log });
    ipfix.start();
    sinks.push({ write: (r) => ipfix.export([r]) });
    closers.push(() => ipfix.close());
  }
  if (opts.syslog) {
    const syslog = new SyslogExporter({
      target: parseSyslogUrl(opts.syslog),
      ...(opts.syslogCa ? { caFile: opts.syslogCa } : {}),
      log,
    });
    syslog.start();
    sinks.push({ write: (r) => syslog.export([r]) });
    closers.push(async () => {
      await syslog.flushed(1000); // what is queued, if the receiver takes it within a second
      syslog.close();
    });
  }
  const zones = deps.zones;
  const named: FlowSink[] = zones
    ? sinks.map((sink) => ({ write: (r: FlowRecord) => sink.write(withZones(r, zones())) }))
    : sinks;
  const collector = deps.createCollector({ box, marks: deps.marks, sinks: named, log });
  void collector.start();
  return {
    async stop() {
      collector.stop();
      for (const close of closers) await close();
    },
  };
}

/** The record with the zones of its two ends, as far as the box knows them. */
function withZones(r: FlowRecord, table: ZoneTable | undefined): FlowRecord {
  if (!table || (r.srcZone !== '' && r.dstZone !== '')) return r;
  // The box knows its own mapped LAN by its real prefix.
  return {
    ...r,
    srcZone: r.srcZone || table.zoneOf(r.srcRealAddress ?? r.srcAddress),
    dstZone: r.dstZone || table.zoneOf(r.dstRealAddress ?? r.dstAddress),
  };
}

/** The IPFIX observation domain of this box: a stable number from its name (collectors tell
 *  exporters apart by it, beside the source address). */
function observationDomainOf(box: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < box.length; i++) h = Math.imul(h ^ box.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
