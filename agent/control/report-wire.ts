// The periodic report's two long lists, peers and rule counters, encoded by hand and kept per
// entry from one report to the next. protobuf-es's reflective toBinary took ~20 ms and left ~1 MB
// of short-lived objects per report of 1,000 peers on this machine, every 10 s: the idle agent's
// largest source of heap churn, which V8 promotes and the old generation keeps (issue 19,
// docs/performance.md). Between two reports nearly every entry is unchanged, so its bytes are
// reused. They are sent as the request's unknown fields under the lists' own field numbers: the
// bytes toBinary would write for them (after the other fields; protobuf parsers accept fields in
// any order), which the controller decodes as the lists themselves.
import { create, type UnknownField } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  ReportRequestSchema,
  type PeerStatus,
  type ReportRequest,
  type RuleCounter,
} from '../../proto/gen/crosslink/v1/agent_pb.js';

/** ReportRequest's field numbers of the two lists (proto/crosslink/v1/agent.proto). */
export const REPORT_PEERS_FIELD = 4;
export const REPORT_RULE_COUNTERS_FIELD = 10;

interface Kept<T> {
  value: T;
  field: UnknownField;
  /** The report that last used it (entries no report used are dropped). */
  seen: number;
}

const samePeer = (a: PeerStatus, b: PeerStatus): boolean =>
  a.name === b.name &&
  a.publicKey === b.publicKey &&
  a.endpoint === b.endpoint &&
  a.latestHandshakeUnix === b.latestHandshakeUnix &&
  a.rxBytes === b.rxBytes &&
  a.txBytes === b.txBytes &&
  a.isReachable === b.isReachable &&
  a.rttMs === b.rttMs &&
  a.lossRatio === b.lossRatio &&
  a.isProbed === b.isProbed;

const sameCounter = (a: RuleCounter, b: RuleCounter): boolean =>
  a.rule === b.rule &&
  a.direction === b.direction &&
  a.connections === b.connections &&
  a.packets === b.packets &&
  a.bytes === b.bytes;

/** One PeerStatus as a length-delimited field body (proto3: default values are left out). */
export function encodePeerStatus(p: PeerStatus): Uint8Array {
  const w = new BinaryWriter().fork();
  if (p.name !== '') w.tag(1, WireType.LengthDelimited).string(p.name);
  if (p.publicKey !== '') w.tag(2, WireType.LengthDelimited).string(p.publicKey);
  if (p.endpoint !== '') w.tag(3, WireType.LengthDelimited).string(p.endpoint);
  if (p.latestHandshakeUnix !== 0n) w.tag(4, WireType.Varint).int64(p.latestHandshakeUnix);
  if (p.rxBytes !== 0n) w.tag(5, WireType.Varint).uint64(p.rxBytes);
  if (p.txBytes !== 0n) w.tag(6, WireType.Varint).uint64(p.txBytes);
  if (p.isReachable) w.tag(7, WireType.Varint).bool(true);
  if (p.rttMs !== 0) w.tag(8, WireType.Bit64).double(p.rttMs);
  if (p.lossRatio !== 0) w.tag(9, WireType.Bit64).double(p.lossRatio);
  if (p.isProbed) w.tag(10, WireType.Varint).bool(true);
  return w.join().finish();
}

/** One RuleCounter as a length-delimited field body. */
export function encodeRuleCounter(c: RuleCounter): Uint8Array {
  const w = new BinaryWriter().fork();
  if (c.rule !== '') w.tag(1, WireType.LengthDelimited).string(c.rule);
  if (c.direction !== '') w.tag(2, WireType.LengthDelimited).string(c.direction);
  if (c.connections !== 0n) w.tag(3, WireType.Varint).uint64(c.connections);
  if (c.packets !== 0n) w.tag(4, WireType.Varint).uint64(c.packets);
  if (c.bytes !== 0n) w.tag(5, WireType.Varint).uint64(c.bytes);
  return w.join().finish();
}

/** Encodes the lists of successive reports, reusing each unchanged entry's bytes. One per client. */
export class ReportWire {
  private readonly peers = new Map<string, Kept<PeerStatus>>();
  /** rule -> direction -> counter. */
  private readonly counters = new Map<string, Map<string, Kept<RuleCounter>>>();
  private report = 0;

  /**
   * The request to send: `fields` with the two lists as kept bytes. A message, not an init object:
   * Connect passes a message through as it is, but builds one from an init object with create(),
   * which drops `$unknown` (and the lists with it).
   */
  request(
    fields: Partial<Omit<ReportRequest, '$typeName' | '$unknown' | 'peers' | 'ruleCounters'>>,
    peers: readonly PeerStatus[],
    ruleCounters: readonly RuleCounter[],
  ): ReportRequest {
    const req = create(ReportRequestSchema, fields);
    req.$unknown = this.encode(peers, ruleCounters);
    return req;
  }

  /** The unknown fields that carry `peers` and `ruleCounters`, in their order. */
  encode(peers: readonly PeerStatus[], ruleCounters: readonly RuleCounter[]): UnknownField[] {
    const n = ++this.report;
    const out: UnknownField[] = new Array<UnknownField>(peers.length + ruleCounters.length);
    let i = 0;
    for (const p of peers) {
      let k = this.peers.get(p.publicKey);
      if (k === undefined || !samePeer(k.value, p)) {
        k = { value: p, field: field(REPORT_PEERS_FIELD, encodePeerStatus(p)), seen: n };
        this.peers.set(p.publicKey, k);
      }
      k.seen = n;
      out[i++] = k.field;
    }
    for (const c of ruleCounters) {
      let byDirection = this.counters.get(c.rule);
      if (byDirection === undefined) this.counters.set(c.rule, (byDirection = new Map<string, Kept<RuleCounter>>()));
      let k = byDirection.get(c.direction);
      if (k === undefined || !sameCounter(k.value, c)) {
        k = { value: c, field: field(REPORT_RULE_COUNTERS_FIELD, encodeRuleCounter(c)), seen: n };
        byDirection.set(c.direction, k);
      }
      k.seen = n;
      out[i++] = k.field;
    }
    this.dropUnseen(n);
    return out;
  }

  /** Entries kept (peers + rule counters): what a long-running agent holds between reports. */
  get size(): number {
    let n = this.peers.size;
    for (const m of this.counters.values()) n += m.size;
    return n;
  }

  private dropUnseen(n: number): void {
    for (const [key, k] of this.peers) if (k.seen !== n) this.peers.delete(key);
    for (const [rule, m] of this.counters) {
      for (const [dir, k] of m) if (k.seen !== n) m.delete(dir);
      if (m.size === 0) this.counters.delete(rule);
    }
  }
}

function field(no: number, data: Uint8Array): UnknownField {
  return { no, wireType: WireType.LengthDelimited, data };
}
