// Pieces of the nft ruleset that more than the rule sets need: prefix parsing with paths for errors,
// set and map blocks, the liveness port's input chain and the drop counters per zone pair.
// PURE: no I/O.
import { CrosslinkError } from '../../lib/errors.js';
import type { PrefixMapping } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { parsePrefix, type ParsedPrefix } from './canonical.js';
import { contains, cmpStr } from './firewall-layers.js';
import { FIREWALL_DIRECTIONS, zoneDropCounter, type FirewallDirection } from './firewall-names.js';

/**
 * Who may send to the liveness UDP port (agent/liveness/): the echo from peers' overlay addresses
 * through the WireGuard interface, and the LAN advertisements of the other candidates of this
 * box's serving groups on any other interface. The port is closed to everyone else.
 */
export interface LivenessFirewall {
  port: number;
  /** Canonical prefixes the peers' overlay addresses lie in (the overlay pool, e.g. "100.64.0.0/10"). */
  overlayPrefixes: readonly string[];
  /** Canonical LAN prefixes of the serving groups this box is a candidate of (where the other
   *  candidates' adverts come from); IPv6 adverts also come from link-local addresses. Empty: a
   *  box that only sends to serving groups, so it takes no adverts. */
  lanPrefixes: readonly string[];
}

export type Family = 4 | 6;

export function invalid(path: string, message: string): CrosslinkError {
  return new CrosslinkError('config_invalid', `${path}: ${message}`, [{ path, message }]);
}

/** Distinct prefix texts of one render, parsed once (10,000 tuples may name only 100 destinations). */
export type PrefixCache = Map<string, ParsedPrefix>;

/**
 * Parses `text` once per render. One that does not parse is an error at
 * `firewall.${dir}[${rule}].${field}[${index}]`, or `${dir}[${index}]` when rule is -1; the path is
 * built only then (no string, no closure per call: a firewall names ~20,000 prefixes).
 */
export function parseAt(
  text: string,
  dir: string,
  rule: number,
  field: string,
  index: number,
  cache: PrefixCache,
): ParsedPrefix {
  const known = cache.get(text);
  if (known !== undefined) return known;
  let p: ParsedPrefix;
  try {
    p = parsePrefix(text);
  } catch (e) {
    const at = rule < 0 ? `${dir}[${index}]` : `firewall.${dir}[${rule}].${field}[${index}]`;
    throw new CrosslinkError(
      'config_invalid',
      `${at}: invalid prefix "${text}"`,
      [{ path: at, message: `invalid prefix "${text}"` }],
      { cause: e },
    );
  }
  cache.set(text, p);
  return p;
}

/** Keeps only the outermost prefixes (an nft interval set refuses overlapping intervals). */
export function outermost(prefixes: readonly string[], path: string, cache: PrefixCache): Map<Family, ParsedPrefix[]> {
  const parsed = prefixes.map((p, i) => parseAt(p, path, -1, '', i, cache));
  parsed.sort((a, b) => a.family - b.family || cmpStr(a.startHex, b.startHex) || a.len - b.len);
  const out = new Map<Family, ParsedPrefix[]>([
    [4, []],
    [6, []],
  ]);
  for (const p of parsed) {
    const list = out.get(p.family)!;
    const last = list[list.length - 1];
    if (last && contains(last, p)) continue;
    list.push(p);
  }
  return out;
}

/** One map as one string of lines. */
export function mapBlock(name: string, type: string, elements: readonly string[], isInterval = false): string {
  const head = `\tmap ${name} {\n\t\ttype ${type}\n${isInterval ? '\t\tflags interval\n' : ''}`;
  if (elements.length === 0) return `${head}\t}`;
  return `${head}\t\telements = {\n\t\t\t${elements.join(',\n\t\t\t')}\n\t\t}\n\t}`;
}

/** One set as one string of lines (joined with the rest by "\n"). */
export function setBlock(name: string, type: string, elements: readonly string[]): string {
  const head = `\tset ${name} {\n\t\ttype ${type}\n\t\tflags interval\n`;
  if (elements.length === 0) return `${head}\t}`;
  return `${head}\t\telements = {\n\t\t\t${elements.join(',\n\t\t\t')}\n\t\t}\n\t}`;
}

/** The input chain of the liveness port: accept from the overlay on the WireGuard interface and
 *  from the groups' LANs elsewhere, drop the port otherwise; other input is not ours to judge. */
export function livenessInput(l: LivenessFirewall, ifq: string, cache: PrefixCache): string[] {
  if (!Number.isInteger(l.port) || l.port < 1 || l.port > 65535)
    throw invalid('liveness.port', `invalid port ${l.port}`);
  const overlay = outermost(l.overlayPrefixes, 'liveness.overlay_prefixes', cache);
  // IPv6 adverts to ff02::1 leave from the sender's link-local address.
  const lanV6 = l.lanPrefixes.some((p) => p.includes(':')) ? ['fe80::/10'] : [];
  const lan = outermost([...l.lanPrefixes, ...lanV6], 'liveness.lan_prefixes', cache);
  const dport = `udp dport ${l.port}`;
  const rules: string[] = [];
  for (const fam of [4, 6] as const) {
    const ip = fam === 4 ? 'ip' : 'ip6';
    const from = overlay.get(fam)!.map((p) => p.text);
    if (from.length > 0) rules.push(`\t\t${dport} iifname ${ifq} ${ip} saddr ${anonSet(from)} accept`);
  }
  for (const fam of [4, 6] as const) {
    const ip = fam === 4 ? 'ip' : 'ip6';
    const from = lan.get(fam)!.map((p) => p.text);
    if (from.length === 0) continue;
    rules.push(`\t\t${dport} iifname != ${ifq} ${ip} saddr ${anonSet(from)} accept`);
  }
  return [
    '',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy accept;',
    ...rules,
    `\t\t${dport} drop`,
    '\t}',
  ];
}

/** One prefix as it is, several as an anonymous set. */
export const anonSet = (list: readonly string[]): string => (list.length === 1 ? list[0]! : `{ ${list.join(', ')} }`);

/** The zones of the addresses a box knows, each with its prefixes (AgentConfig.zones). */
export type ZoneSets = ReadonlyArray<{ zone: string; prefixes: readonly string[] }>;

/** Zone names as the policy allows them (controller/policy/names.ts NAME_PATTERN). */
const ZONE_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Drops counted per direction and zone pair: one interval set per zone and family (`zone4_0`, ...),
 * and before each direction's final drop one counting rule per pair of zones that both have
 * prefixes of that family. Only packets about to be dropped reach those rules, so admitted traffic
 * pays nothing; a drop pays one lookup per pair (zones are few: N3, PSN, a shared one). A packet
 * with an end in no known zone is counted per direction only (the direction's own counter counts
 * every drop).
 */
export class ZoneDrops {
  /** The set blocks, to go with the table's other sets. */
  readonly sets: string[] = [];
  /** Every counter the rules name, sorted: the table declares them. */
  readonly counters: string[];
  private readonly byFamily = new Map<Family, Array<{ zone: string; set: string }>>([
    [4, []],
    [6, []],
  ]);

  constructor(zones: ZoneSets, cache: PrefixCache) {
    const seen = new Set<string>();
    zones.forEach((z, i) => {
      if (!ZONE_RE.test(z.zone)) throw invalid(`zones[${i}].zone`, `"${z.zone}" is not a zone name`);
      if (seen.has(z.zone)) throw invalid(`zones[${i}].zone`, `zone "${z.zone}" is given twice`);
      seen.add(z.zone);
      const prefixes = outermost(z.prefixes, `zones[${i}].prefixes`, cache);
      for (const fam of [4, 6] as const) {
        const list = prefixes.get(fam)!;
        if (list.length === 0) continue;
        const set = `zone${fam}_${i}`;
        this.sets.push(
          setBlock(
            set,
            fam === 4 ? 'ipv4_addr' : 'ipv6_addr',
            list.map((p) => p.text),
          ),
        );
        this.byFamily.get(fam)!.push({ zone: z.zone, set });
      }
    });
    const names = new Set<string>();
    for (const dir of FIREWALL_DIRECTIONS)
      for (const fam of [4, 6] as const)
        for (const s of this.byFamily.get(fam)!)
          for (const d of this.byFamily.get(fam)!) names.add(zoneDropCounter(dir.key, s.zone, d.zone));
    this.counters = [...names].sort(cmpStr);
  }

  /** The counting rules of one direction's chain, to go just before its drop. */
  rules(direction: FirewallDirection): string[] {
    const out: string[] = [];
    for (const fam of [4, 6] as const) {
      const ip = fam === 4 ? 'ip' : 'ip6';
      for (const s of this.byFamily.get(fam)!)
        for (const d of this.byFamily.get(fam)!)
          out.push(
            `\t\t${ip} saddr @${s.set} ${ip} daddr @${d.set} counter name "${zoneDropCounter(direction, s.zone, d.zone)}"`,
          );
    }
    return out;
  }
}

/**
 * `map-to`: a 1:1 prefix translation at the WireGuard interface, stateful so the kernel's
 * connection tracking turns each reply back. Inbound, the destination is translated in prerouting,
 * before the forward chain; outbound, the source in postrouting, after it: the forward chain sees
 * the box's own mapped subnets by their real prefixes on both ways, as the controller compiles.
 * Returns the map blocks, the prerouting rules and the postrouting rules.
 */
export function mapToParts(
  mapTo: readonly PrefixMapping[],
  ifq: string,
  cache: PrefixCache,
): { maps: string[]; dnat: string[]; snat: string[] } {
  const out = { maps: [] as string[], dnat: [] as string[], snat: [] as string[] };
  for (const fam of [4, 6] as const) {
    const pairs = mapTo
      .map((m, i) => ({
        real: parseAt(m.real, 'firewall.map_to', -1, '', i, cache),
        mapped: parseAt(m.mapped, 'firewall.map_to', -1, '', i, cache),
        i,
      }))
      .filter((x) => x.real.family === fam);
    if (pairs.length === 0) continue;
    for (const x of pairs)
      if (x.mapped.family !== fam || x.mapped.len !== x.real.len)
        throw invalid(`firewall.map_to[${x.i}]`, `${x.real.text} and ${x.mapped.text} differ in family or length`);
    const [ip, addr] = fam === 4 ? ['ip', 'ipv4_addr'] : ['ip6', 'ipv6_addr'];
    const type = `${addr} : interval ${addr}`;
    out.maps.push(
      mapBlock(
        `map_in${fam}`,
        type,
        pairs.map((x) => `${x.mapped.text} : ${x.real.text}`),
        true,
      ),
      mapBlock(
        `map_out${fam}`,
        type,
        pairs.map((x) => `${x.real.text} : ${x.mapped.text}`),
        true,
      ),
    );
    out.dnat.push(`\t\tiifname ${ifq} dnat ${ip} prefix to ${ip} daddr map @map_in${fam}`);
    out.snat.push(`\t\toifname ${ifq} snat ${ip} prefix to ${ip} saddr map @map_out${fam}`);
  }
  return out;
}
