// Reads the lines of `conntrack -E -o id,timestamp` (conntrack-tools 1.4.7) and turns the events of
// the flows Crosslink's rules admitted into flow records. PURE: no I/O.
//
//   [1796506977.249464]	    [NEW] tcp      6 120 SYN_SENT src=10.1.0.2 dst=10.2.0.2 sport=52478 dport=8080 [UNREPLIED] src=10.2.0.2 dst=10.1.0.2 sport=8080 dport=52478 mark=1668808706 id=2188948634
//   [1796506978.297271]	[DESTROY] tcp      6 118 TIME_WAIT src=... packets=7 bytes=100372 src=... packets=4 bytes=216 [ASSURED] mark=1668808706 delta-time=1 id=2188948634
//
// The first src/dst/sport/dport (and packets/bytes, with nf_conntrack_acct=1) are the original
// direction, as the box first saw the flow: the true addresses, before any masquerade on this box.
import type { RuleMark } from '../host/firewall-names.js';
import type { FlowRecord } from '../../lib/export/record.js';

export interface ConntrackEvent {
  type: 'NEW' | 'UPDATE' | 'DESTROY';
  atMs: number;
  id: string;
  protocol: number;
  /** TCP state (ESTABLISHED, TIME_WAIT, ...); "" for other protocols. */
  state: string;
  src: string;
  dst: string;
  /** The reply direction's source and destination: they differ from dst/src when the box translated
   *  the flow (map-to, masquerade); "" when the event carries no reply tuple. */
  replySrc: string;
  replyDst: string;
  sport: number;
  dport: number;
  /** Original and reply direction counters; 0 when the event carries none. */
  packets: number;
  bytes: number;
  replyPackets: number;
  replyBytes: number;
  mark: number;
  /** DESTROY with nf_conntrack_timestamp=1: the flow's age in seconds; null otherwise. */
  deltaSeconds: number | null;
  /** The seconds left of the entry's timeout when the event was sent; null when the line has none
   *  (a DESTROY of an entry that timed out). */
  timeoutLeft: number | null;
}

const TYPES = new Set(['NEW', 'UPDATE', 'DESTROY']);

/** One event line; null for anything else (the tool's summary line, a blank line). */
export function parseConntrackEvent(line: string): ConntrackEvent | null {
  const ts = /^\[(\d+)\.(\d+)\]\s+\[(\w+)\]\s+(.*)$/.exec(line);
  if (!ts || !TYPES.has(ts[3]!)) return null;
  const atMs = Number(ts[1]) * 1000 + Math.floor(Number(`0.${ts[2]}`) * 1000);
  const words = ts[4]!.split(/\s+/);
  // "<proto name> <proto number> [<timeout>] [<state>] key=value ... [FLAGS]"
  const protocol = Number(words[1]);
  if (!Number.isInteger(protocol)) return null;
  const ev: ConntrackEvent = {
    type: ts[3] as ConntrackEvent['type'],
    atMs,
    id: '',
    protocol,
    state: '',
    src: '',
    dst: '',
    replySrc: '',
    replyDst: '',
    sport: 0,
    dport: 0,
    packets: 0,
    bytes: 0,
    replyPackets: 0,
    replyBytes: 0,
    mark: 0,
    deltaSeconds: null,
    timeoutLeft: null,
  };
  let side = 0; // 0: original direction's fields, 1: reply's
  for (let i = 2; i < words.length; i++) {
    const w = words[i]!;
    const eq = w.indexOf('=');
    if (eq < 0) {
      if (/^[A-Z_]+$/.test(w)) ev.state = w;
      else if (i === 2 && /^\d+$/.test(w)) ev.timeoutLeft = Number(w);
      continue;
    }
    const key = w.slice(0, eq);
    const value = w.slice(eq + 1);
    switch (key) {
      case 'src':
        if (ev.src === '') ev.src = value;
        else if (side === 0) {
          side = 1;
          ev.replySrc = value;
        }
        break;
      case 'dst':
        if (side === 0) ev.dst = value;
        else if (ev.replyDst === '') ev.replyDst = value;
        break;
      case 'sport':
        if (side === 0) ev.sport = Number(value);
        break;
      case 'dport':
        if (side === 0) ev.dport = Number(value);
        break;
      case 'packets':
        if (side === 0) ev.packets = Number(value);
        else ev.replyPackets = Number(value);
        break;
      case 'bytes':
        if (side === 0) ev.bytes = Number(value);
        else ev.replyBytes = Number(value);
        break;
      case 'mark':
        ev.mark = Number(value) >>> 0;
        break;
      case 'id': // ICMP's echo id comes first in each tuple; conntrack's own id is the last word
        ev.id = value;
        break;
      case 'delta-time':
        ev.deltaSeconds = Number(value);
        break;
      default:
        break;
    }
  }
  if (ev.src === '' || ev.id === '') return null;
  if (ev.protocol !== 6) ev.state = '';
  return ev;
}

/** TCP states in which the flow has ended for its two hosts (what follows is conntrack's wait). */
const TCP_ENDED = new Set(['TIME_WAIT', 'CLOSE', 'LAST_ACK', 'CLOSE_WAIT']);

/** The box's conntrack timeouts (seconds) of the TCP states after a close: a DESTROY in one of them
 *  came that long after the close, less what was left of it. */
export interface TcpEndTimeouts {
  timeWait: number;
  close: number;
}

interface Open {
  startMs: number;
  endMs: number | null;
  rule: RuleMark | undefined;
}

/**
 * Follows events by conntrack id and gives one record per flow when conntrack forgets it (DESTROY,
 * the only event with counters): start from its NEW event, end from the first TCP state in which
 * both sides were done (an UPDATE, when subscribed; else the DESTROY less the wait after the close,
 * TcpEndTimeouts; else the DESTROY). The rule is the one its mark named when the flow began,
 * so a flow that outlives a policy change keeps its rule. At most `maxOpen` flows are followed; a
 * flow beyond that is still recorded at its end, its start then taken from conntrack's delta-time.
 */
export class FlowTracker {
  private readonly open = new Map<string, Open>();
  dropped = 0;

  constructor(
    private readonly opts: {
      box: string;
      /** The current config's rule marks (DesiredState.firewall.ruleMarks). */
      marks: () => ReadonlyMap<number, RuleMark> | undefined;
      maxOpen?: number;
      /** Without UPDATE events (the collector does not subscribe to them: 4 of a TCP flow's ~6
       *  events), a TCP flow's end is its DESTROY less the wait that followed the close. */
      tcpTimeouts?: TcpEndTimeouts;
    },
  ) {}

  get openFlows(): number {
    return this.open.size;
  }

  /** Feeds one event; returns the finished flow's record on its DESTROY. */
  feed(ev: ConntrackEvent): FlowRecord | null {
    if (ev.type === 'NEW') {
      if (this.open.size >= (this.opts.maxOpen ?? 100_000)) {
        this.dropped++;
        return null;
      }
      this.open.set(ev.id, { startMs: ev.atMs, endMs: null, rule: this.opts.marks()?.get(ev.mark) });
      return null;
    }
    const known = this.open.get(ev.id);
    if (ev.type === 'UPDATE') {
      if (known && known.endMs === null && TCP_ENDED.has(ev.state)) known.endMs = ev.atMs;
      return null;
    }
    this.open.delete(ev.id);
    const rule = known ? known.rule : this.opts.marks()?.get(ev.mark);
    if (!rule) return null; // not a flow a rule of ours admitted (a foreign mark)
    const startMs = known?.startMs ?? ev.atMs - (ev.deltaSeconds ?? 0) * 1000;
    const record: FlowRecord = {
      startMs,
      endMs: known?.endMs ?? Math.max(startMs, ev.atMs - this.waitAfterClose(ev)),
      protocol: ev.protocol,
      srcAddress: ev.src,
      srcPort: ev.sport,
      dstAddress: ev.dst,
      dstPort: ev.dport,
      packets: ev.packets,
      bytes: ev.bytes,
      replyPackets: ev.replyPackets,
      replyBytes: ev.replyBytes,
      rule: rule.rule,
      direction: rule.direction,
      verdict: 'allowed',
      srcZone: '',
      dstZone: '',
      box: this.opts.box,
    };
    return withMapTo(record, ev);
  }

  /** How long before this DESTROY a TCP flow closed: its state's full timeout less what was left. */
  private waitAfterClose(ev: ConntrackEvent): number {
    const t = this.opts.tcpTimeouts;
    if (!t || ev.protocol !== 6) return 0;
    const full = ev.state === 'TIME_WAIT' ? t.timeWait : ev.state === 'CLOSE' ? t.close : 0;
    return Math.max(0, full - (ev.timeoutLeft ?? 0)) * 1000;
  }
}

/**
 * A flow `map-to` translated on this box, named as the rest of the overlay knows it, with the real
 * LAN address beside it. Outbound, only map-to rewrites the source (masquerade acts on inbound
 * flows), so a reply addressed elsewhere than the original source means the source was mapped:
 * that reply destination is the mapped address. Inbound, only map-to rewrites the destination, so
 * a reply from elsewhere than the original destination means it was mapped to that reply source.
 */
export function withMapTo(r: FlowRecord, ev: ConntrackEvent): FlowRecord {
  if (r.direction === 'outbound' && ev.replyDst !== '' && ev.replyDst !== ev.src)
    return { ...r, srcAddress: ev.replyDst, srcRealAddress: ev.src };
  if (r.direction === 'inbound' && ev.replySrc !== '' && ev.replySrc !== ev.dst)
    return { ...r, dstRealAddress: ev.replySrc };
  return r;
}
