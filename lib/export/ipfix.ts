// IPFIX (RFC 7011) messages from flow records, for collectors the networks already run (HSCN's
// analytics, nfacctd, nfdump). PURE: bytes in, bytes out; the time is an argument. The exporter
// (exporters.ts) sends what this returns as UDP datagrams.
//
// What a record carries, one template per address family (IDs 256 IPv4, 257 IPv6), in this order:
//   flowStartMilliseconds(152), flowEndMilliseconds(153)    8 octets each; an open flow ends "now"
//   sourceIPv4Address(8)/destinationIPv4Address(12)          or sourceIPv6Address(27)/destinationIPv6Address(28)
//   octetDeltaCount(1), packetDeltaCount(2)                 original direction, 8 octets each
//   reverse octetDeltaCount / packetDeltaCount              RFC 5103: the same IEs with the enterprise
//                                                           bit and PEN 29305, for the reply direction
//   sourceTransportPort(7), destinationTransportPort(11), protocolIdentifier(4)
//   flowDirection(61)                                       see FLOW_DIRECTION
//   firewallEvent(233)                                      see firewallEventOf
//   ruleName (CROSSLINK_PEN, RULE_NAME_ELEMENT_ID)          variable-length UTF-8; empty for a drop
//   sourceZone, destinationZone (CROSSLINK_PEN, 101, 102)  variable-length UTF-8: the policy zones of
//                                                           the two ends; empty when the box knows none
//
// Why RFC 5103 reverse elements and not postOctetDeltaCount(23): 23 means "the same packets, counted
// after the observation point changed them" (RFC 7012), not the reply direction; nfacctd even
// reads 23 as the forward byte count when 1 is absent. Collectors that know RFC 5103 (YAF, SiLK,
// nfdump's IPFIX reader) show the reply counts; nfacctd 1.7.7 has no built-in reverse IEs but reads
// them as custom primitives (field_type=29305:1 and 29305:2 in an aggregate_primitives file).
//
// The counts are deltas (what is new since this flow's previous record): a flow exported once, at
// its end, carries its totals. A collector that exports an open flow again must send only the growth.
import { parseAddress } from '../prefix.js';
import type { FlowRecord } from './record.js';

export const IPFIX_VERSION = 10;
export const TEMPLATE_SET_ID = 2;
export const IPV4_TEMPLATE_ID = 256;
export const IPV6_TEMPLATE_ID = 257;
/** RFC 5103's PEN for reverse information elements. */
export const REVERSE_PEN = 29305;
/**
 * PLACEHOLDER: 32473 is the PEN that RFC 5612 reserves for documentation and examples. Crosslink has
 * no registered Private Enterprise Number yet; before production use, register one with IANA
 * (https://www.iana.org/assignments/enterprise-numbers) and put it here, and tell collector operators.
 */
export const CROSSLINK_PEN = 32473;
/** The rule-name element's ID under CROSSLINK_PEN (placeholder with the PEN). */
export const RULE_NAME_ELEMENT_ID = 100;
/** The zone elements' IDs under CROSSLINK_PEN (placeholders with the PEN). */
export const SOURCE_ZONE_ELEMENT_ID = 101;
export const DESTINATION_ZONE_ELEMENT_ID = 102;
/** A field length of 65535 in a template marks a variable-length field (RFC 7011 §7). */
export const VARIABLE_LENGTH = 0xffff;
/**
 * UDP has no session, so a collector that (re)starts learns the templates only when they come again
 * (RFC 7011 §8.4). RFC 6728 suggests 600 s; 60 s keeps a restarted collector blind for at most a
 * minute and costs one ~150-octet template set a minute.
 */
export const DEFAULT_TEMPLATE_REFRESH_MS = 60_000;
/** Below a 1500-octet MTU less IPv6 (40), UDP (8) and a WireGuard or IPsec hop's overhead. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1400;
/** A longer rule name is cut (at a character boundary) so one record always fits a message. */
export const MAX_RULE_NAME_BYTES = 1024;

/** flowDirection(61) as seen on the overlay side of the box: outbound leaves into the overlay
 *  (egress), inbound arrives from it (ingress). A local flow (LAN to LAN on this box) never crosses
 *  the overlay; it is reported as ingress, where it entered the box. */
export const FLOW_DIRECTION = { outbound: 1, inbound: 0, local: 0 } as const;

/** IANA firewallEvent(233): 1 flow created, 2 flow deleted, 3 flow denied. */
export const FIREWALL_EVENT = { created: 1, deleted: 2, denied: 3 } as const;

/** A dropped attempt is "denied"; an allowed flow that has ended "deleted"; one still open "created". */
export function firewallEventOf(r: FlowRecord): number {
  if (r.verdict === 'dropped') return FIREWALL_EVENT.denied;
  return r.endMs === null ? FIREWALL_EVENT.created : FIREWALL_EVENT.deleted;
}

export interface FieldSpecifier {
  name: string;
  id: number;
  length: number;
  /** Set for an enterprise-specific element (the enterprise bit is then set on the wire). */
  pen?: number;
}

function fieldsFor(family: 4 | 6): FieldSpecifier[] {
  const addrLen = family === 4 ? 4 : 16;
  return [
    { name: 'flowStartMilliseconds', id: 152, length: 8 },
    { name: 'flowEndMilliseconds', id: 153, length: 8 },
    { name: family === 4 ? 'sourceIPv4Address' : 'sourceIPv6Address', id: family === 4 ? 8 : 27, length: addrLen },
    {
      name: family === 4 ? 'destinationIPv4Address' : 'destinationIPv6Address',
      id: family === 4 ? 12 : 28,
      length: addrLen,
    },
    { name: 'octetDeltaCount', id: 1, length: 8 },
    { name: 'packetDeltaCount', id: 2, length: 8 },
    { name: 'reverseOctetDeltaCount', id: 1, length: 8, pen: REVERSE_PEN },
    { name: 'reversePacketDeltaCount', id: 2, length: 8, pen: REVERSE_PEN },
    { name: 'sourceTransportPort', id: 7, length: 2 },
    { name: 'destinationTransportPort', id: 11, length: 2 },
    { name: 'protocolIdentifier', id: 4, length: 1 },
    { name: 'flowDirection', id: 61, length: 1 },
    { name: 'firewallEvent', id: 233, length: 1 },
    { name: 'crosslinkRuleName', id: RULE_NAME_ELEMENT_ID, length: VARIABLE_LENGTH, pen: CROSSLINK_PEN },
    { name: 'crosslinkSourceZone', id: SOURCE_ZONE_ELEMENT_ID, length: VARIABLE_LENGTH, pen: CROSSLINK_PEN },
    { name: 'crosslinkDestinationZone', id: DESTINATION_ZONE_ELEMENT_ID, length: VARIABLE_LENGTH, pen: CROSSLINK_PEN },
  ];
}

export const IPV4_FIELDS: readonly FieldSpecifier[] = fieldsFor(4);
export const IPV6_FIELDS: readonly FieldSpecifier[] = fieldsFor(6);

const HEADER_BYTES = 16;
const SET_HEADER_BYTES = 4;

function templateRecord(templateId: number, fields: readonly FieldSpecifier[]): Buffer {
  const size = 4 + fields.reduce((n, f) => n + (f.pen === undefined ? 4 : 8), 0);
  const b = Buffer.alloc(size);
  b.writeUInt16BE(templateId, 0);
  b.writeUInt16BE(fields.length, 2);
  let o = 4;
  for (const f of fields) {
    b.writeUInt16BE(f.pen === undefined ? f.id : f.id | 0x8000, o);
    b.writeUInt16BE(f.length, o + 2);
    o += 4;
    if (f.pen !== undefined) {
      b.writeUInt32BE(f.pen, o);
      o += 4;
    }
  }
  return b;
}

/** The template set (ID 2) with both templates; the same bytes every time. */
export function templateSet(): Buffer {
  const records = [templateRecord(IPV4_TEMPLATE_ID, IPV4_FIELDS), templateRecord(IPV6_TEMPLATE_ID, IPV6_FIELDS)];
  const body = Buffer.concat(records);
  const head = Buffer.alloc(SET_HEADER_BYTES);
  head.writeUInt16BE(TEMPLATE_SET_ID, 0);
  head.writeUInt16BE(SET_HEADER_BYTES + body.length, 2);
  return Buffer.concat([head, body]);
}

/** UTF-8 of `text`, cut to at most `max` octets without splitting a character. */
export function utf8Prefix(text: string, max: number): Buffer {
  const b = Buffer.from(text, 'utf8');
  if (b.length <= max) return b;
  let end = max;
  // Back up over continuation octets (10xxxxxx) to the start of the character that did not fit.
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

/** RFC 7011 §7: a length below 255 in one octet; otherwise 255 and the length in two octets. */
export function variableLengthField(value: Buffer): Buffer {
  if (value.length > 0xffff) throw new RangeError(`variable-length field of ${value.length} octets`);
  const head =
    value.length < 255 ? Buffer.from([value.length]) : Buffer.from([255, value.length >> 8, value.length & 255]);
  return Buffer.concat([head, value]);
}

/** A non-negative integer for an unsigned field (NaN, negatives and fractions made safe). */
function unsigned(n: number): bigint {
  return Number.isFinite(n) && n > 0 ? BigInt(Math.floor(n)) : 0n;
}

function writeAddress(b: Buffer, o: number, a: { family: 4; addr: number } | { family: 6; addr: bigint }): number {
  if (a.family === 4) {
    b.writeUInt32BE(a.addr, o);
    return o + 4;
  }
  b.writeBigUInt64BE(a.addr >> 64n, o);
  b.writeBigUInt64BE(a.addr & 0xffff_ffff_ffff_ffffn, o + 8);
  return o + 16;
}

interface EncodedRecord {
  templateId: number;
  bytes: Buffer;
}

/** One data record, or null when the addresses are not one family of valid addresses. */
export function encodeDataRecord(r: FlowRecord, nowMs: number): EncodedRecord | null {
  const src = parseAddress(r.srcAddress);
  const dst = parseAddress(r.dstAddress);
  if (!src || !dst || src.family !== dst.family) return null;
  const name = variableLengthField(utf8Prefix(r.rule ?? '', MAX_RULE_NAME_BYTES));
  // Zone names are policy names (at most 63 octets): one length octet each.
  const srcZone = variableLengthField(utf8Prefix(r.srcZone, MAX_RULE_NAME_BYTES));
  const dstZone = variableLengthField(utf8Prefix(r.dstZone, MAX_RULE_NAME_BYTES));
  const addrBytes = src.family === 4 ? 8 : 32;
  const b = Buffer.alloc(16 + addrBytes + 32 + 5 + 2 + name.length + srcZone.length + dstZone.length);
  let o = 0;
  o = b.writeBigUInt64BE(unsigned(r.startMs), o);
  o = b.writeBigUInt64BE(unsigned(r.endMs ?? nowMs), o);
  o = writeAddress(b, o, src);
  o = writeAddress(b, o, dst);
  o = b.writeBigUInt64BE(unsigned(r.bytes), o);
  o = b.writeBigUInt64BE(unsigned(r.packets), o);
  o = b.writeBigUInt64BE(unsigned(r.replyBytes), o);
  o = b.writeBigUInt64BE(unsigned(r.replyPackets), o);
  o = b.writeUInt16BE(r.srcPort & 0xffff, o);
  o = b.writeUInt16BE(r.dstPort & 0xffff, o);
  o = b.writeUInt8(r.protocol & 0xff, o);
  o = b.writeUInt8(FLOW_DIRECTION[r.direction], o);
  o = b.writeUInt8(firewallEventOf(r), o);
  o += name.copy(b, o);
  o += srcZone.copy(b, o);
  dstZone.copy(b, o);
  return { templateId: src.family === 4 ? IPV4_TEMPLATE_ID : IPV6_TEMPLATE_ID, bytes: b };
}

export interface IpfixEncoderOptions {
  observationDomainId: number;
  /** How often the templates go again (ms); DEFAULT_TEMPLATE_REFRESH_MS when absent. */
  templateRefreshMs?: number;
  /** Largest message (octets), DEFAULT_MAX_MESSAGE_BYTES when absent; at least 512. */
  maxMessageBytes?: number;
}

/** A message under construction: its parts, and the open data set's template and length. */
interface Draft {
  parts: Buffer[];
  bytes: number;
  records: number;
  setTemplateId: number | null;
  setBytes: number;
  setHeaderIndex: number;
}

/**
 * Turns flow records into IPFIX messages for one observation domain and one UDP stream: the header's
 * sequence number counts the data records sent before the message (modulo 2^32); the templates lead
 * the first message and come again once templateRefreshMs has passed (or the clock went back).
 */
export class IpfixEncoder {
  readonly observationDomainId: number;
  readonly templateRefreshMs: number;
  readonly maxMessageBytes: number;
  private sequence = 0;
  private templatesSentMs: number | null = null;
  private skipped = 0;
  private readonly templates = templateSet();

  constructor(opts: IpfixEncoderOptions) {
    if (
      !Number.isInteger(opts.observationDomainId) ||
      opts.observationDomainId < 0 ||
      opts.observationDomainId > 0xffffffff
    ) {
      throw new RangeError(`observationDomainId must be an integer 0..4294967295, not ${opts.observationDomainId}`);
    }
    this.observationDomainId = opts.observationDomainId;
    this.templateRefreshMs = opts.templateRefreshMs ?? DEFAULT_TEMPLATE_REFRESH_MS;
    this.maxMessageBytes = Math.max(512, opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
  }

  /** Data records sent so far (the next message's sequence number), modulo 2^32. */
  get sequenceNumber(): number {
    return this.sequence;
  }

  /** Records left out because their addresses were not valid (or of two families). */
  get skippedRecords(): number {
    return this.skipped;
  }

  /** Whether the next encode() will lead with the templates. */
  templatesDue(nowMs: number): boolean {
    const last = this.templatesSentMs;
    return last === null || nowMs - last >= this.templateRefreshMs || nowMs < last;
  }

  /**
   * The messages that carry `records`, in order. Empty when there is nothing to send; a lone
   * template message when there are no records but the templates are due (call it on a timer so a
   * restarted collector learns them without waiting for traffic).
   */
  encode(records: readonly FlowRecord[], nowMs: number): Buffer[] {
    const messages: Buffer[] = [];
    let draft = this.newDraft(nowMs);
    for (const r of records) {
      const rec = encodeDataRecord(r, nowMs);
      if (!rec) {
        this.skipped++;
        continue;
      }
      const opensSet = draft.setTemplateId !== rec.templateId;
      // Worst case: a new set's header, the record, and 3 octets to pad the set to 4.
      const need = (opensSet ? SET_HEADER_BYTES : 0) + rec.bytes.length + 3;
      if (draft.records > 0 && draft.bytes + need > this.maxMessageBytes) {
        messages.push(this.finish(draft, nowMs));
        draft = this.newDraft(nowMs);
      }
      if (draft.setTemplateId !== rec.templateId) this.openSet(draft, rec.templateId);
      draft.parts.push(rec.bytes);
      draft.bytes += rec.bytes.length;
      draft.setBytes += rec.bytes.length;
      draft.records++;
    }
    // parts[0] is the header: anything after it is templates or records.
    if (draft.parts.length > 1) messages.push(this.finish(draft, nowMs));
    return messages;
  }

  private newDraft(nowMs: number): Draft {
    const draft: Draft = {
      parts: [Buffer.alloc(HEADER_BYTES)],
      bytes: HEADER_BYTES,
      records: 0,
      setTemplateId: null,
      setBytes: 0,
      setHeaderIndex: -1,
    };
    if (this.templatesDue(nowMs)) {
      draft.parts.push(this.templates);
      draft.bytes += this.templates.length;
      this.templatesSentMs = nowMs;
    }
    return draft;
  }

  private openSet(draft: Draft, templateId: number): void {
    this.closeSet(draft);
    draft.setTemplateId = templateId;
    draft.setHeaderIndex = draft.parts.length;
    draft.parts.push(Buffer.alloc(SET_HEADER_BYTES));
    draft.bytes += SET_HEADER_BYTES;
    draft.setBytes = SET_HEADER_BYTES;
  }

  /** Pads the open data set to a multiple of 4 octets (RFC 7011 §3.3.1: zeros, shorter than a
   *  record) and writes its header. */
  private closeSet(draft: Draft): void {
    if (draft.setTemplateId === null) return;
    const pad = (4 - (draft.setBytes % 4)) % 4;
    if (pad) {
      draft.parts.push(Buffer.alloc(pad));
      draft.bytes += pad;
      draft.setBytes += pad;
    }
    const head = draft.parts[draft.setHeaderIndex]!;
    head.writeUInt16BE(draft.setTemplateId, 0);
    head.writeUInt16BE(draft.setBytes, 2);
    draft.setTemplateId = null;
  }

  private finish(draft: Draft, nowMs: number): Buffer {
    this.closeSet(draft);
    const head = draft.parts[0]!;
    head.writeUInt16BE(IPFIX_VERSION, 0);
    head.writeUInt16BE(draft.bytes, 2);
    head.writeUInt32BE(Math.floor(Math.max(0, nowMs) / 1000) % 2 ** 32, 4);
    head.writeUInt32BE(this.sequence, 8);
    head.writeUInt32BE(this.observationDomainId, 12);
    this.sequence = (this.sequence + draft.records) % 2 ** 32;
    return Buffer.concat(draft.parts, draft.bytes);
  }
}
