// The data-plane echo: a BFD-like asynchronous liveness check with every peer through the tunnel.
// PURE: no I/O, no clock (every method takes the time). The runner (runner.ts) moves the packets.
//
// Each side sends each peer one small datagram per interval, on its own (no request/reply):
//
//   0..3  magic "xlEC"   4  version (1)   5  flags   6..7  held-groups filter (BE)   8..11  sequence (BE)
//
// Flags: bit 0 "I hear you": a valid packet from this peer arrived within the detection time
// (below). Bit 1 "held groups": bytes 6..7 say which serving groups' gateways the sender holds.
// A peer is 'up' once a packet arrives that says it hears us (both directions work), 'down' when no
// such packet arrived for the detection time, and 'init' from setPeers until the first of those.
//
// The held-groups filter lets a box that sends to a serving group follow the candidate that holds
// the group's gateway (decide.ts): the servers' replies leave through the gateway, so a sender that
// chose another candidate (it saw the holder late at start, or the holder came back after a
// failure) would make the path asymmetric, and the firewall drops replies it saw no request for.
// It is a 16-bit Bloom filter of the held groups' names (two bits per name, hashFilterBits): no
// false negative; a false positive needs another held group whose both bits cover the asked one
// (about 1 in 130 for one other held group). Version 1 receivers ignore bit 1 and bytes 6..7 (they
// were zero), and a packet without bit 1 (an older agent) claims nothing: the sender's choice then
// falls back to its own view of the candidates, as before.
//
// Detection time: multiplier x interval and half an interval of grace. Packets arrive once per
// interval; with a bound of exactly multiplier x interval, a packet arriving a moment after the
// check (the two sides' send slots nearly coincide, jitter, a timer served before the socket) fell
// outside the window, and multiplier - 1 losses in a row were enough to go down. With the grace,
// exactly `multiplier` packets in a row must go missing (5 % loss, multiplier 5: 1 in 3.2 million).
//
// Cost (1,000 peers at 5/s each): every peer owns its packet bytes and its send entry, made once,
// so a tick allocates nothing but its result, and receive() allocates nothing unless a state
// changes. Sends are batched: a peer's phase is one of a few slots of the interval (by a hash of
// its name), so the timer fires a few times per interval and each fire sends one slot's peers.
// A peer's timeout is checked when it is sent to, so 'down' comes at most one interval late.

export type PeerLiveness = 'init' | 'up' | 'down';

export interface EchoTiming {
  intervalMs: number;
  multiplier: number;
}

export const ECHO_PACKET_BYTES = 12;
export const ECHO_VERSION = 1;
/** "xlEC": distinct from the LAN advertisements' magic (advert.ts), which share the UDP port. */
export const ECHO_MAGIC = Uint8Array.of(0x78, 0x6c, 0x45, 0x43);
const FLAG_HEAR_YOU = 1;
const FLAG_HELD = 2;
/** Slots per interval aim at this width (ms), at most MAX_SLOTS: fewer timer wake-ups. */
const SLOT_TARGET_MS = 25;
const MAX_SLOTS = 8;

/** True when `packet` starts with the echo magic (how the socket tells echoes from adverts). */
export function isEchoPacket(packet: Uint8Array): boolean {
  return (
    packet.length >= 4 &&
    packet[0] === ECHO_MAGIC[0] &&
    packet[1] === ECHO_MAGIC[1] &&
    packet[2] === ECHO_MAGIC[2] &&
    packet[3] === ECHO_MAGIC[3]
  );
}

/** The held-groups filter of a packet: null when it carries none (bit 1 clear: an older agent). */
function heldOf(packet: Uint8Array): number | null {
  return (packet[5]! & FLAG_HELD) === 0 ? null : (packet[6]! << 8) | packet[7]!;
}

/** The fields of one echo packet; null for anything malformed. */
export function decodeEcho(packet: Uint8Array): { hearsYou: boolean; seq: number; held: number | null } | null {
  if (packet.length !== ECHO_PACKET_BYTES || !isEchoPacket(packet) || packet[4] !== ECHO_VERSION) return null;
  const seq = ((packet[8]! << 24) | (packet[9]! << 16) | (packet[10]! << 8) | packet[11]!) >>> 0;
  return { hearsYou: (packet[5]! & FLAG_HEAR_YOU) !== 0, seq, held: heldOf(packet) };
}

/** Writes one echo packet into `out` (ECHO_PACKET_BYTES long). `held`: the held-groups filter
 *  (heldFilter), or null to carry none. */
export function encodeEcho(out: Uint8Array, hearsYou: boolean, seq: number, held: number | null = null): void {
  out.set(ECHO_MAGIC, 0);
  out[4] = ECHO_VERSION;
  out[5] = (hearsYou ? FLAG_HEAR_YOU : 0) | (held === null ? 0 : FLAG_HELD);
  out[6] = held === null ? 0 : (held >>> 8) & 0xff;
  out[7] = held === null ? 0 : held & 0xff;
  out[8] = (seq >>> 24) & 0xff;
  out[9] = (seq >>> 16) & 0xff;
  out[10] = (seq >>> 8) & 0xff;
  out[11] = seq & 0xff;
}

/** How long a peer (or a LAN neighbour advertising at the same interval) may stay silent before it
 *  counts as dead: multiplier x interval + half an interval of grace (see the top of this file). */
export function detectionMs(t: EchoTiming): number {
  return t.intervalMs * t.multiplier + Math.floor(t.intervalMs / 2);
}

/** The filter's two bits for a group name (FNV-1a, one bit from each half of the hash). */
function hashFilterBits(group: string): number {
  const h = hashName(group);
  return (1 << (h & 15)) | (1 << ((h >>> 16) & 15));
}

/** The held-groups filter of these group names (0: holds none). */
export function heldFilter(groups: Iterable<string>): number {
  let f = 0;
  for (const g of groups) f |= hashFilterBits(g);
  return f;
}

/** Whether a held-groups filter says its sender holds `group` (no false negatives; see the top). */
export function filterHolds(filter: number, group: string): boolean {
  const bits = hashFilterBits(group);
  return (filter & bits) === bits;
}

function validTiming(t: EchoTiming): EchoTiming {
  if (!Number.isInteger(t.intervalMs) || t.intervalMs < 1)
    throw new RangeError(`echo interval must be a positive integer of ms, not ${t.intervalMs}`);
  if (!Number.isInteger(t.multiplier) || t.multiplier < 1)
    throw new RangeError(`echo multiplier must be a positive integer, not ${t.multiplier}`);
  return { intervalMs: t.intervalMs, multiplier: t.multiplier };
}

/** FNV-1a of a name: a stable phase per peer, so restarts and other boxes spread the same way. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

interface Session {
  readonly name: string;
  readonly address: string;
  readonly hash: number;
  /** The peer's send entry, returned by every tick that sends to it (its packet is rewritten). */
  readonly send: { address: string; packet: Uint8Array };
  state: PeerLiveness;
  sinceMs: number;
  /** Last valid packet from the peer (what our "I hear you" flag says); null: none yet. */
  lastRxMs: number | null;
  /** Last packet from the peer saying it hears us; null: none since setPeers. */
  lastHeardMs: number | null;
  /** The held-groups filter of the peer's last packet; null: it carried none (or none yet). */
  held: number | null;
  seq: number;
  nextDueMs: number;
}

const NONE: string[] = [];
Object.freeze(NONE);

export class EchoSessions {
  private timing: EchoTiming;
  private slots = 1;
  private readonly byName = new Map<string, Session>();
  private readonly byAddress = new Map<string, Session>();
  /** All sessions, for the tick's scan (a plain array: no iterator objects). */
  private list: Session[] = [];
  private readonly sends: Array<{ address: string; packet: Uint8Array }> = [];
  private earliestDueMs = Infinity;
  /** What this box's packets say it holds (setHeld). */
  private ownHeld = 0;
  /** Packets counted by what became of them. */
  readonly counters = { rx: 0, tx: 0, unknown: 0, malformed: 0 };

  constructor(timing: EchoTiming, nowMs: number) {
    this.timing = validTiming(timing);
    this.slots = this.slotCount();
    void nowMs; // the grid is absolute: sessions start in setPeers
  }

  get currentTiming(): EchoTiming {
    return { ...this.timing };
  }

  /** New interval or multiplier: states stay, every peer's next send moves onto the new grid. */
  setTiming(t: EchoTiming): void {
    const next = validTiming(t);
    if (next.intervalMs === this.timing.intervalMs && next.multiplier === this.timing.multiplier) return;
    this.timing = next;
    this.slots = this.slotCount();
    this.earliestDueMs = Infinity;
    for (const s of this.list) {
      // Sooner, not later: the new grid's slot within one new interval before the old due time.
      s.nextDueMs = this.dueAfter(s.hash, s.nextDueMs - next.intervalMs);
      if (s.nextDueMs < this.earliestDueMs) this.earliestDueMs = s.nextDueMs;
    }
  }

  /** Peers to echo with (name + overlay IP). State of peers that stay (same name and address) is
   *  kept; new ones start 'init' and are first sent to in their slot. Names must be unique. */
  setPeers(peers: ReadonlyArray<{ name: string; address: string }>, nowMs: number): void {
    const keep = new Map<string, Session>();
    for (const p of peers) {
      if (keep.has(p.name)) throw new RangeError(`echo peer "${p.name}" given twice`);
      const old = this.byName.get(p.name);
      if (old !== undefined && old.address === p.address) {
        keep.set(p.name, old);
        continue;
      }
      const hash = hashName(p.name);
      const packet = new Uint8Array(ECHO_PACKET_BYTES);
      keep.set(p.name, {
        name: p.name,
        address: p.address,
        hash,
        send: { address: p.address, packet },
        state: 'init',
        sinceMs: nowMs,
        lastRxMs: null,
        lastHeardMs: null,
        held: null,
        seq: 0,
        nextDueMs: this.dueAfter(hash, nowMs),
      });
    }
    this.byName.clear();
    this.byAddress.clear();
    this.list = [];
    this.earliestDueMs = Infinity;
    for (const s of keep.values()) {
      if (this.byAddress.has(s.address)) throw new RangeError(`echo address ${s.address} given to two peers`);
      this.byName.set(s.name, s);
      this.byAddress.set(s.address, s);
      this.list.push(s);
      if (s.nextDueMs < this.earliestDueMs) this.earliestDueMs = s.nextDueMs;
    }
  }

  /** The held-groups filter this box's packets carry from now on (heldFilter of the groups whose
   *  gateways it holds; 0: none). */
  setHeld(filter: number): void {
    this.ownHeld = filter & 0xffff;
  }

  /** A datagram from `address`; returns the names whose state or held-groups filter changed (a
   *  shared empty array when none: do not modify it). Unknown senders and malformed packets are
   *  counted and ignored. */
  receive(address: string, packet: Uint8Array, nowMs: number): string[] {
    const s = this.byAddress.get(address);
    if (s === undefined) {
      this.counters.unknown++;
      return NONE;
    }
    if (packet.length !== ECHO_PACKET_BYTES || !isEchoPacket(packet) || packet[4] !== ECHO_VERSION) {
      this.counters.malformed++;
      return NONE;
    }
    this.counters.rx++;
    s.lastRxMs = nowMs;
    const held = heldOf(packet);
    const isHeldChanged = held !== s.held;
    s.held = held;
    if ((packet[5]! & FLAG_HEAR_YOU) !== 0) {
      s.lastHeardMs = nowMs;
      if (s.state !== 'up') {
        s.state = 'up';
        s.sinceMs = nowMs;
        return [s.name];
      }
    }
    return isHeldChanged ? [s.name] : NONE;
  }

  /** Packets due at nowMs (one per peer per interval, each peer in its own slot of the interval)
   *  and the names whose state changed by timeout. The send entries belong to the sessions: their
   *  bytes are valid until that peer's next send. */
  tick(nowMs: number): { sends: Array<{ address: string; packet: Uint8Array }>; changed: string[] } {
    const sends = this.sends;
    sends.length = 0;
    let changed = NONE;
    if (nowMs < this.earliestDueMs) return { sends, changed };
    const { intervalMs } = this.timing;
    const deadMs = detectionMs(this.timing);
    let earliest = Infinity;
    const list = this.list;
    for (let i = 0; i < list.length; i++) {
      const s = list[i]!;
      if (s.nextDueMs <= nowMs) {
        if (s.state !== 'down' && nowMs - (s.lastHeardMs ?? s.sinceMs) >= deadMs) {
          s.state = 'down';
          s.sinceMs = nowMs;
          if (changed === NONE) changed = [];
          changed.push(s.name);
        }
        s.seq = (s.seq + 1) >>> 0;
        encodeEcho(s.send.packet, s.lastRxMs !== null && nowMs - s.lastRxMs < deadMs, s.seq, this.ownHeld);
        sends.push(s.send);
        // The next slot on the grid; a late timer skips what it missed rather than sending twice.
        s.nextDueMs += intervalMs;
        if (s.nextDueMs <= nowMs) s.nextDueMs = this.dueAfter(s.hash, nowMs);
      }
      if (s.nextDueMs < earliest) earliest = s.nextDueMs;
    }
    this.earliestDueMs = earliest;
    this.counters.tx += sends.length;
    return { sends, changed };
  }

  /** ms until the next tick is due (0: now; Infinity: no peers). */
  nextDueInMs(nowMs: number): number {
    return this.earliestDueMs === Infinity ? Infinity : Math.max(0, this.earliestDueMs - nowMs);
  }

  state(name: string): PeerLiveness | undefined {
    return this.byName.get(name)?.state;
  }

  /** The held-groups filter of the peer's last packet; null when it carries none (an older agent)
   *  or nothing came yet. Meaningful while the peer is 'up'. */
  heldBy(name: string): number | null {
    return this.byName.get(name)?.held ?? null;
  }

  /** True once any valid packet came from the peer since it was added (a peer that runs no echo,
   *  having no serving group, never sends one). */
  hasHeard(name: string): boolean {
    return (this.byName.get(name)?.lastRxMs ?? null) !== null;
  }

  /** Since when the peer has been in its current state. */
  sinceMs(name: string): number | undefined {
    return this.byName.get(name)?.sinceMs;
  }

  snapshot(): Array<{ name: string; address: string; state: PeerLiveness; sinceMs: number; lastRxMs: number | null }> {
    return this.list
      .map((s) => ({ name: s.name, address: s.address, state: s.state, sinceMs: s.sinceMs, lastRxMs: s.lastRxMs }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  private slotCount(): number {
    return Math.max(1, Math.min(MAX_SLOTS, Math.floor(this.timing.intervalMs / SLOT_TARGET_MS)));
  }

  /** The first due time after `afterMs` of a peer with this hash: on the grid k x interval + its
   *  slot's offset (the same on every box, so batches stay batches). */
  private dueAfter(hash: number, afterMs: number): number {
    const { intervalMs } = this.timing;
    const offset = Math.floor(((hash % this.slots) * intervalMs) / this.slots);
    let due = Math.floor((afterMs - offset) / intervalMs) * intervalMs + offset;
    while (due <= afterMs) due += intervalMs;
    return due;
  }
}
