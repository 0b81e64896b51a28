// RFC 5424 syslog messages for flow records (and any other event: formatSyslog is generic), and the
// octet-counting frame that TCP (RFC 6587 §3.4.1) and TLS (RFC 5425 §4.3) carry them in. PURE.
//
// A flow record becomes, for example:
//   <134>1 2026-12-05T21:00:00.000Z leeds-gw crosslink - flow [flow@32473 rule="gp-to-council"
//   verdict="allowed" direction="outbound" proto="6" src="10.1.2.3" sport="51514" dst="10.9.8.7"
//   dport="443" bytes="1200" packets="10" replyBytes="5400" replyPackets="8" start="..." end="..."
//   srcZone="n3" dstZone="psn"] allowed tcp 10.1.2.3:51514 -> 10.9.8.7:443 rule gp-to-council ...
// (one line). The machine-readable part is the structured data; the text after it is for people.
import type { FlowRecord } from './record.js';

/**
 * PLACEHOLDER: 32473 is the PEN RFC 5612 reserves for documentation, so "flow@32473" is an
 * example SD-ID. Replace it with Crosslink's registered PEN (the same one as ipfix.ts's
 * CROSSLINK_PEN) before production use, and tell the SIEM's operators.
 */
export const SYSLOG_SD_PEN = 32473;
export const FLOW_SD_ID = `flow@${SYSLOG_SD_PEN}`;
/** local0: the facility left to the site (RFC 5424 §6.2.1). */
export const FACILITY_LOCAL0 = 16;
export const SEVERITY = { warning: 4, notice: 5, informational: 6 } as const;
export const DEFAULT_APP_NAME = 'crosslink';
export const FLOW_MSGID = 'flow';

export interface StructuredDataElement {
  /** SD-ID: a registered name or NAME@PEN. */
  id: string;
  /** SD-PARAMs in order: [name, value]; values are escaped here. */
  params: readonly (readonly [string, string])[];
}

export interface SyslogMessage {
  facility: number;
  severity: number;
  timestampMs: number;
  hostname: string;
  appName: string;
  procId?: string;
  msgId?: string;
  structuredData?: readonly StructuredDataElement[];
  /** Free text after the structured data; control characters become spaces. */
  message?: string;
}

/** RFC 5424 §6.3.3: `"`, `\` and `]` in a PARAM-VALUE are escaped with a backslash. */
export function escapeSdParamValue(value: string): string {
  return value.replace(/["\\\]]/g, (c) => `\\${c}`);
}

/** A header field (HOSTNAME, APP-NAME, PROCID, MSGID): printable US-ASCII (33-126) only, at most
 *  `maxLength` characters; anything else becomes "_", and an empty field the NILVALUE "-". */
export function headerField(text: string | undefined, maxLength: number): string {
  if (!text) return '-';
  const clean = text.replace(/[^\x21-\x7e]/g, '_').slice(0, maxLength);
  return clean.length ? clean : '-';
}

/** An SD-NAME (SD-ID or PARAM-NAME): printable US-ASCII except `=`, space, `]` and `"`; 1-32 long. */
export function isSdName(name: string): boolean {
  return /^[\x21-\x7e]{1,32}$/.test(name) && !/[= \]"]/.test(name);
}

/** RFC 3339 in UTC with milliseconds, or undefined for a time that is not one. */
export function isoTime(ms: number): string | undefined {
  const d = new Date(ms);
  return Number.isFinite(d.getTime()) ? d.toISOString() : undefined;
}

/** The whole message, without a trailing newline or frame. */
export function formatSyslog(m: SyslogMessage): string {
  const pri = `<${m.facility * 8 + m.severity}>`;
  const timestamp = isoTime(m.timestampMs) ?? '-';
  const header = [
    `${pri}1`,
    timestamp,
    headerField(m.hostname, 255),
    headerField(m.appName, 48),
    headerField(m.procId, 128),
    headerField(m.msgId, 32),
  ].join(' ');
  const sd = m.structuredData?.length
    ? m.structuredData
        .map((e) => {
          if (!isSdName(e.id)) throw new RangeError(`bad SD-ID ${e.id}`);
          const params = e.params.map(([k, v]) => {
            if (!isSdName(k)) throw new RangeError(`bad PARAM-NAME ${k}`);
            return ` ${k}="${escapeSdParamValue(v)}"`;
          });
          return `[${e.id}${params.join('')}]`;
        })
        .join('')
    : '-';
  // eslint-disable-next-line no-control-regex -- a newline in the text would split the record in a file.
  const text = m.message ? ` ${m.message.replace(/[\x00-\x1f\x7f]/g, ' ')}` : '';
  return `${header} ${sd}${text}`;
}

/** `LENGTH SP MESSAGE`, LENGTH in octets (RFC 6587 §3.4.1, RFC 5425 §4.3). */
export function octetCountingFrame(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}

const PROTOCOL_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp' };

function endpoint(address: string, port: number): string {
  const host = address.includes(':') ? `[${address}]` : address;
  return port ? `${host}:${port}` : host;
}

export interface FlowSyslogOptions {
  /** When the message is made (the TIMESTAMP field). */
  nowMs: number;
  appName?: string;
  facility?: number;
  /** HOSTNAME; the record's box when absent. */
  hostname?: string;
}

/** The RFC 5424 message for one flow record: informational when allowed, notice when dropped. */
export function formatFlowSyslog(r: FlowRecord, opts: FlowSyslogOptions): string {
  const params: [string, string][] = [
    ['rule', r.rule ?? ''],
    ['verdict', r.verdict],
    ['direction', r.direction],
    ['proto', String(r.protocol)],
    ['src', r.srcAddress],
    ['sport', String(r.srcPort)],
    ['dst', r.dstAddress],
    ['dport', String(r.dstPort)],
    ['bytes', String(r.bytes)],
    ['packets', String(r.packets)],
    ['replyBytes', String(r.replyBytes)],
    ['replyPackets', String(r.replyPackets)],
    ['start', isoTime(r.startMs) ?? ''],
  ];
  // An open flow has no end yet: the parameter is left out rather than given a made-up time.
  if (r.endMs !== null) params.push(['end', isoTime(r.endMs) ?? '']);
  params.push(['srcZone', r.srcZone], ['dstZone', r.dstZone]);
  // map-to: the real LAN address beside the mapped one the overlay knows.
  if (r.srcRealAddress !== undefined) params.push(['srcReal', r.srcRealAddress]);
  if (r.dstRealAddress !== undefined) params.push(['dstReal', r.dstRealAddress]);
  const real = (a: string | undefined): string => (a === undefined ? '' : ` (real ${a})`);
  const proto = PROTOCOL_NAMES[r.protocol] ?? `proto ${r.protocol}`;
  const because = r.rule === null ? 'no rule admits it' : `rule ${r.rule}`;
  const text =
    `${r.verdict} ${proto} ${endpoint(r.srcAddress, r.srcPort)}${real(r.srcRealAddress)} -> ` +
    `${endpoint(r.dstAddress, r.dstPort)}${real(r.dstRealAddress)} ` +
    `${because} (${r.direction}) ${r.bytes} B/${r.packets} pkts, reply ${r.replyBytes} B/${r.replyPackets} pkts`;
  return formatSyslog({
    facility: opts.facility ?? FACILITY_LOCAL0,
    severity: r.verdict === 'dropped' ? SEVERITY.notice : SEVERITY.informational,
    timestampMs: opts.nowMs,
    hostname: opts.hostname ?? r.box,
    appName: opts.appName ?? DEFAULT_APP_NAME,
    msgId: FLOW_MSGID,
    structuredData: [{ id: FLOW_SD_ID, params }],
    message: text,
  });
}
