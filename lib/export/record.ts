// One flow record: a connection that one of the policy's rules admitted on this box (or an attempt
// that none did), as the agent writes it to its flow log and exports it (IPFIX, syslog). PURE: data.

export interface FlowRecord {
  /** When the flow started and ended (ms since the epoch); end is null for a flow still open. */
  startMs: number;
  endMs: number | null;
  /** IANA protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6, ...). */
  protocol: number;
  /** True addresses and ports as the box forwarded them (before any masquerade); ports 0 without. */
  srcAddress: string;
  srcPort: number;
  dstAddress: string;
  dstPort: number;
  /**
   * The real LAN address of an end its own box translates with `map-to` (srcAddress/dstAddress are
   * then the mapped address the rest of the overlay knows). Absent: not translated.
   */
  srcRealAddress?: string;
  dstRealAddress?: string;
  /** Original direction (source -> destination) and reply direction. */
  packets: number;
  bytes: number;
  replyPackets: number;
  replyBytes: number;
  /** The policy rule that admitted it; null for a dropped attempt. */
  rule: string | null;
  /** outbound (LAN -> overlay), inbound (overlay -> LAN) or local (LAN -> LAN on this box). */
  direction: 'outbound' | 'inbound' | 'local';
  /** "allowed", or "dropped" for an attempt no rule admitted. */
  verdict: 'allowed' | 'dropped';
  /** Zones of the source and destination subnets, when the box knows them ("" otherwise). */
  srcZone: string;
  dstZone: string;
  /** The agent's name. */
  box: string;
}
