// LAN advertisements between the candidate boxes of one serving group (like VRRP's): each box
// says, every interval, where it stands in the group. PURE: encode and decode only.
//
//   0..3  magic "xlAD"   4  version (1)   5  flags (bit 0: eligible, bit 1: holding)
//   6..7  rank (BE)   8..11  seq (BE)   12  group length G   13..  group (UTF-8)
//   13+G  agent length A   14+G..  agent (UTF-8); nothing after it
//
// Same UDP port as the echo (echo.ts): the magic tells them apart.

export interface Advert {
  /** The serving group's name (ServingGroup.name). */
  group: string;
  /** The sending agent's name. */
  agent: string;
  /** Its place in the group's candidates (0: primary), 0..65535. */
  rank: number;
  /** It may hold the group's gateways now (it reaches peers over the overlay). */
  isEligible: boolean;
  /** It holds the group's gateways now. */
  isHolding: boolean;
  /** Increases with every advertisement the sender sends (wraps at 2^32). */
  seq: number;
}

export const ADVERT_VERSION = 1;
/** "xlAD" (the echo's is "xlEC"). */
export const ADVERT_MAGIC = Uint8Array.of(0x78, 0x6c, 0x41, 0x44);
const HEADER = 12;
const MAX_NAME_BYTES = 255;
const FLAG_ELIGIBLE = 1;
const FLAG_HOLDING = 2;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** True when `packet` starts with the advertisement magic. */
export function isAdvertPacket(packet: Uint8Array): boolean {
  return (
    packet.length >= 4 &&
    packet[0] === ADVERT_MAGIC[0] &&
    packet[1] === ADVERT_MAGIC[1] &&
    packet[2] === ADVERT_MAGIC[2] &&
    packet[3] === ADVERT_MAGIC[3]
  );
}

/** The bytes of `a`. Throws RangeError for a field that cannot be sent (empty or > 255-byte
 *  name, rank outside 0..65535, seq outside 0..2^32-1). */
export function encodeAdvert(a: Advert): Uint8Array {
  const group = encoder.encode(a.group);
  const agent = encoder.encode(a.agent);
  if (group.length < 1 || group.length > MAX_NAME_BYTES) throw new RangeError(`advert group "${a.group}": 1-255 bytes`);
  if (agent.length < 1 || agent.length > MAX_NAME_BYTES) throw new RangeError(`advert agent "${a.agent}": 1-255 bytes`);
  if (!Number.isInteger(a.rank) || a.rank < 0 || a.rank > 0xffff) throw new RangeError(`advert rank ${a.rank}`);
  if (!Number.isInteger(a.seq) || a.seq < 0 || a.seq > 0xffffffff) throw new RangeError(`advert seq ${a.seq}`);
  const out = new Uint8Array(HEADER + 1 + group.length + 1 + agent.length);
  out.set(ADVERT_MAGIC, 0);
  out[4] = ADVERT_VERSION;
  out[5] = (a.isEligible ? FLAG_ELIGIBLE : 0) | (a.isHolding ? FLAG_HOLDING : 0);
  out[6] = a.rank >>> 8;
  out[7] = a.rank & 0xff;
  out[8] = (a.seq >>> 24) & 0xff;
  out[9] = (a.seq >>> 16) & 0xff;
  out[10] = (a.seq >>> 8) & 0xff;
  out[11] = a.seq & 0xff;
  out[HEADER] = group.length;
  out.set(group, HEADER + 1);
  out[HEADER + 1 + group.length] = agent.length;
  out.set(agent, HEADER + 2 + group.length);
  return out;
}

function utf8(bytes: Uint8Array): string | null {
  try {
    return decoder.decode(bytes);
  } catch {
    return null;
  }
}

/** The advertisement in `packet`; null for anything malformed (other magic or version, unknown
 *  flags, wrong lengths, empty names, names that are not UTF-8, trailing bytes). */
export function decodeAdvert(packet: Uint8Array): Advert | null {
  if (packet.length < HEADER + 4 || !isAdvertPacket(packet) || packet[4] !== ADVERT_VERSION) return null;
  const flags = packet[5]!;
  if ((flags & ~(FLAG_ELIGIBLE | FLAG_HOLDING)) !== 0) return null;
  const groupLen = packet[HEADER]!;
  const agentAt = HEADER + 1 + groupLen;
  if (groupLen === 0 || agentAt >= packet.length) return null;
  const agentLen = packet[agentAt]!;
  if (agentLen === 0 || agentAt + 1 + agentLen !== packet.length) return null;
  const group = utf8(packet.subarray(HEADER + 1, agentAt));
  const agent = utf8(packet.subarray(agentAt + 1));
  if (group === null || agent === null) return null;
  return {
    group,
    agent,
    rank: (packet[6]! << 8) | packet[7]!,
    isEligible: (flags & FLAG_ELIGIBLE) !== 0,
    isHolding: (flags & FLAG_HOLDING) !== 0,
    seq: ((packet[8]! << 24) | (packet[9]! << 16) | (packet[10]! << 8) | packet[11]!) >>> 0,
  };
}
