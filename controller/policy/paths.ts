// How two boxes reach each other over the underlays. PURE: no I/O, no clock.
//
// N3/HSCN and the PSN have no route between them. Two boxes that share an underlay peer directly
// over it. Two that share none go through a relay: a box that sits on an underlay of each, that the
// policy names a relay (`relay: true`) and that consents itself (`--relay`). The relay does not
// take part in their WireGuard session: it forwards their encrypted UDP datagrams in the kernel
// (nft DNAT to the far box, SNAT to its own address on the far underlay; conntrack carries replies),
// so it holds no key of theirs and cannot read or forge what it carries.
//
// Ports on the relay are a pure function of the pair, so nothing has to be allocated or stored: box
// A sends B's datagrams to relay:(RELAY_PORT_BASE + slot(B)), B sends A's to
// relay:(RELAY_PORT_BASE + slot(A)), where a box's slot is its overlay address's offset in the pool
// (unique per box). Each forwarded datagram leaves the relay from exactly the address and port the
// receiver has configured for the sender, so WireGuard's roaming never moves the endpoint, and a
// datagram either side sends first finds the same conntrack entry.
import type { RelayForward } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { parseAddress, type Family } from './prefixes.js';
import type { AgentName } from './types.js';

/** First UDP port of the relay's forwarding range: a box with slot n is reached at BASE + n. */
export const RELAY_PORT_BASE = 52000;
/** Highest slot a box may have and still be relayed to (its port must stay <= 65535). */
export const MAX_RELAY_SLOT = 65535 - RELAY_PORT_BASE;

export interface PathEndpoint {
  underlay: string;
  /** "host:port" as announced. */
  endpoint: string;
}

/** One box, as path selection sees it. */
export interface PathAgent {
  name: AgentName;
  /** Underlays the box sits on (the policy's word, else what it announced), sorted. */
  underlays: readonly string[];
  /** Its announced endpoints on those underlays, sorted by underlay (some may be missing). */
  endpoints: readonly PathEndpoint[];
  /** Relay port slot: offset of its overlay address in the pool. Absent: it cannot be relayed to. */
  slot?: number;
  isHealthy: boolean;
}

/** A box the policy names a relay, with why it cannot relay now (absent: it can). */
export interface RelayCandidate {
  agent: PathAgent;
  /** e.g. "has not consented (start its agent with --relay)", "is not enrolled". */
  unusable?: string;
}

/** One way through one relay for the pair (a, b), a < b by name. */
export interface RelayHop {
  relay: AgentName;
  /** Underlay a sends on / b sends on. */
  underlayA: string;
  underlayB: string;
  /** What a configures as b's endpoint (the relay's address on underlayA), and b as a's. */
  endpointForA: string;
  endpointForB: string;
  /** The relay's two forwarding entries, a -> b first. */
  forwards: [RelayForward, RelayForward];
}

export type PairPath =
  | { kind: 'direct'; underlay: string }
  /** Hops best first: healthy relays before unhealthy, then a stable per-pair order that spreads pairs over relays. */
  | { kind: 'relay'; hops: RelayHop[] }
  | { kind: 'none'; reason: string };

interface HostPort {
  host: string;
  port: number;
  family: Family | 0;
  isLiteral: boolean;
}

/** "10.1.2.3:51820", "[fd00::1]:51820", "box.example:51820" -> parts; undefined if malformed. */
export function splitEndpoint(text: string): HostPort | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  const a = parseAddress(m[1]!);
  if (a) return { host: a.text, port, family: a.family, isLiteral: true };
  if (text.startsWith('[')) return undefined;
  return { host: m[1]!, port, family: 0, isLiteral: false };
}

export function joinEndpoint(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function endpointOn(agent: PathAgent, underlay: string): string | undefined {
  for (const e of agent.endpoints) if (e.underlay === underlay) return e.endpoint;
  return undefined;
}

function intersect(a: readonly string[], b: readonly string[]): string[] {
  return a.filter((x) => b.includes(x));
}

/** FNV-1a, 32 bits: a stable score for rendezvous hashing (not for security). */
function score(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function pairKey(a: AgentName, b: AgentName): string {
  return a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
}

function describeUnderlays(a: PathAgent): string {
  return a.underlays.length > 0 ? a.underlays.join(', ') : 'no underlay';
}

/** The relay hop for (a, b) through `r`, or why there is none. */
function hopThrough(a: PathAgent, b: PathAgent, r: PathAgent): RelayHop | string {
  const ua = intersect(a.underlays, r.underlays);
  const ub = intersect(b.underlays, r.underlays);
  if (ua.length === 0 || ub.length === 0) {
    return `${r.name} sits on ${describeUnderlays(r)}, not on one of ${a.name}'s and one of ${b.name}'s`;
  }
  for (const [x, slot] of [
    [a, a.slot],
    [b, b.slot],
  ] as const) {
    if (slot === undefined || slot < 1 || slot > MAX_RELAY_SLOT)
      return `${x.name}'s overlay address is beyond the relay port range (${RELAY_PORT_BASE + 1}-65535)`;
  }
  let why = '';
  for (const underlayA of ua) {
    for (const underlayB of ub) {
      const ea = endpointOn(a, underlayA);
      const eb = endpointOn(b, underlayB);
      const ra = endpointOn(r, underlayA);
      const rb = endpointOn(r, underlayB);
      const missing = !ea
        ? `${a.name} announces no endpoint on ${underlayA}`
        : !eb
          ? `${b.name} announces no endpoint on ${underlayB}`
          : !ra
            ? `${r.name} announces no endpoint on ${underlayA}`
            : !rb
              ? `${r.name} announces no endpoint on ${underlayB}`
              : '';
      if (missing) {
        why ||= missing;
        continue;
      }
      const pa = splitEndpoint(ea!);
      const pb = splitEndpoint(eb!);
      const pra = splitEndpoint(ra!);
      const prb = splitEndpoint(rb!);
      if (!pa?.isLiteral || !pb?.isLiteral || !pra?.isLiteral || !prb?.isLiteral) {
        why ||=
          'a relay forwards by address: the endpoints of both boxes and the relay must be IP addresses, not names';
        continue;
      }
      // The kernel cannot translate between IPv4 and IPv6 within one connection.
      if (!(pa.family === pra.family && pb.family === prb.family && pa.family === pb.family)) {
        why ||= `${a.name} (${ea}), ${b.name} (${eb}) and ${r.name} (${ra}, ${rb}) are not all IPv4 or all IPv6`;
        continue;
      }
      const portForB = RELAY_PORT_BASE + b.slot!;
      const portForA = RELAY_PORT_BASE + a.slot!;
      const listenA = joinEndpoint(pra.host, portForB);
      const listenB = joinEndpoint(prb.host, portForA);
      const fwd = (
        source: HostPort,
        listen: string,
        target: HostPort,
        snat: string,
        from: AgentName,
        to: AgentName,
      ): RelayForward => ({
        $typeName: 'crosslink.v1.RelayForward',
        source: joinEndpoint(source.host, source.port),
        listen,
        target: joinEndpoint(target.host, target.port),
        snat,
        fromAgent: from,
        toAgent: to,
      });
      return {
        relay: r.name,
        underlayA,
        underlayB,
        endpointForA: listenA,
        endpointForB: listenB,
        forwards: [fwd(pa, listenA, pb, listenB, a.name, b.name), fwd(pb, listenB, pa, listenA, b.name, a.name)],
      };
    }
  }
  return why;
}

/**
 * The path between a and b (any order; hops are described for the pair ordered by name). Direct
 * over the first shared underlay (by name) whose endpoints can talk; else through every usable
 * relay, best first.
 */
export function choosePath(x: PathAgent, y: PathAgent, relays: readonly RelayCandidate[]): PairPath {
  const [a, b] = x.name < y.name ? [x, y] : [y, x];
  const shared = intersect(a.underlays, b.underlays);
  if (shared.length > 0) {
    // Prefer an underlay where both endpoints are of one family (or one side has none: it waits to
    // be contacted, or is a host name).
    for (const u of shared) {
      const ea = endpointOn(a, u);
      const eb = endpointOn(b, u);
      const fa = ea ? (splitEndpoint(ea)?.family ?? 0) : 0;
      const fb = eb ? (splitEndpoint(eb)?.family ?? 0) : 0;
      if (fa === 0 || fb === 0 || fa === fb) return { kind: 'direct', underlay: u };
    }
    return { kind: 'direct', underlay: shared[0]! };
  }
  const key = pairKey(a.name, b.name);
  const hops: Array<{ hop: RelayHop; isHealthy: boolean; score: number }> = [];
  const why: string[] = [];
  for (const c of relays) {
    const r = c.agent;
    if (r.name === a.name || r.name === b.name) continue;
    const sitsOnBoth = intersect(a.underlays, r.underlays).length > 0 && intersect(b.underlays, r.underlays).length > 0;
    if (c.unusable !== undefined) {
      if (sitsOnBoth) why.push(`relay ${r.name} ${c.unusable}`);
      continue;
    }
    const hop = hopThrough(a, b, r);
    if (typeof hop === 'string') {
      if (sitsOnBoth) why.push(hop);
      continue;
    }
    hops.push({ hop, isHealthy: r.isHealthy, score: score(`${key}\u0000${r.name}`) });
  }
  if (hops.length > 0) {
    hops.sort(
      (p, q) => Number(q.isHealthy) - Number(p.isHealthy) || q.score - p.score || (p.hop.relay < q.hop.relay ? -1 : 1),
    );
    return { kind: 'relay', hops: hops.map((h) => h.hop) };
  }
  const head = `${a.name} (${describeUnderlays(a)}) and ${b.name} (${describeUnderlays(b)}) share no underlay`;
  return {
    kind: 'none',
    reason:
      why.length > 0
        ? `${head}; ${why.join('; ')}`
        : `${head}, and no relay sits on both sides: name a box on both (${[...new Set([a.underlays[0], b.underlays[0]].filter(Boolean))].join(' and ')}) in the policy with relay: true`,
  };
}

/** A box's relay slot: its overlay address's offset from the pool's network address. */
export function overlaySlot(overlayAddress: string): number | undefined {
  const [ip, len] = overlayAddress.split('/');
  const a = parseAddress(ip ?? '');
  const length = Number(len);
  if (!a || !Number.isInteger(length)) return undefined;
  const bits = a.family === 4 ? 32 : 128;
  const hostBits = BigInt(bits - length);
  const offset = a.value & ((1n << hostBits) - 1n);
  return offset <= BigInt(MAX_RELAY_SLOT) ? Number(offset) : MAX_RELAY_SLOT + 1;
}

/**
 * Policy-only check (no live endpoints): can boxes on these underlay sets reach each other, given
 * the relays' underlay sets? undefined if yes, else the reason.
 */
export function possiblePath(
  a: { name: string; underlays: readonly string[] },
  b: { name: string; underlays: readonly string[] },
  relays: ReadonlyArray<{ name: string; underlays: readonly string[] }>,
): string | undefined {
  if (intersect(a.underlays, b.underlays).length > 0) return undefined;
  const ok = relays.some(
    (r) =>
      r.name !== a.name &&
      r.name !== b.name &&
      intersect(a.underlays, r.underlays).length > 0 &&
      intersect(b.underlays, r.underlays).length > 0,
  );
  if (ok) return undefined;
  return `${a.name} (${a.underlays.join(', ') || 'no underlay'}) and ${b.name} (${b.underlays.join(', ') || 'no underlay'}) to reach each other, but they share no underlay and no relay sits on both: name a box on ${a.underlays[0] ?? '?'} and ${b.underlays[0] ?? '?'} a relay (agents.NAME.relay: true)`;
}

/** For people: "relayed through nhs-shared-hub (psn-wan | n3-wan)", "direct over n3-wan", "no path: …". */
export function describePairPath(path: PairPath): string {
  return describePathView(pairPathJson('', '', path));
}

/** The same words from the JSON form (what the API's dry run returns to the CLI). */
export function describePathView(v: Pick<PairPathJson, 'kind' | 'relays' | 'underlays' | 'reason'>): string {
  switch (v.kind) {
    case 'direct':
      return `direct over ${v.underlays[0]}`;
    case 'relay': {
      const [first, ...rest] = v.relays;
      return `relayed through ${first} (${v.underlays.join(' | ')})${rest.length > 0 ? `, standby ${rest.join(', ')}` : ''}`;
    }
    case 'none':
      return `no path: ${v.reason}`;
  }
}

export type PairPathJson = ReturnType<typeof pairPathJson>;

/** The JSON form used by `policy check --json` and the dry run. */
export function pairPathJson(
  a: string,
  b: string,
  path: PairPath,
): { a: string; b: string; kind: PairPath['kind']; relays: string[]; underlays: string[]; reason: string } {
  if (path.kind === 'relay')
    return {
      a,
      b,
      kind: path.kind,
      relays: path.hops.map((h) => h.relay),
      underlays: [path.hops[0]!.underlayA, path.hops[0]!.underlayB],
      reason: '',
    };
  if (path.kind === 'direct') return { a, b, kind: path.kind, relays: [], underlays: [path.underlay], reason: '' };
  return { a, b, kind: path.kind, relays: [], underlays: [], reason: path.reason };
}
