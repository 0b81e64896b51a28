// Renders the compiled Firewall message into the nftables ruleset of Crosslink's own table.
// PURE: no I/O. The same input gives the same bytes.
//
// Layout (GUIDE §6: sets, never one rule per tuple): a `forward` base chain with policy ACCEPT, so
// the host's other traffic is never judged here; it sends only traffic that enters or leaves the
// WireGuard interface, or that goes between two of the box's local prefixes, into one of three
// chains. Each of those looks the packet up in concatenated interval sets and drops the rest into a
// named counter, one per direction.
//
// The tuples are first made overlap-free (firewall-layers.ts): nft refuses overlapping elements.
import type { Firewall, FlowRule, RelayForward } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { CROSSLINK_NFT_TABLE } from './ports.js';
import { canonicalEndpoint, type ParsedPrefix } from './canonical.js';
import { layerBoxes, type TupleBox } from './firewall-layers.js';
import {
  invalid,
  livenessInput,
  mapBlock,
  mapToParts,
  outermost,
  parseAt,
  setBlock,
  ZoneDrops,
  type Family,
  type LivenessFirewall,
  type PrefixCache,
  type ZoneSets,
} from './firewall-parts.js';
import {
  assignRuleMarks,
  DROP_LOG_GROUPS,
  DROP_LOG_LIMIT,
  DROP_LOG_SNAPLEN,
  FIREWALL_DIRECTIONS,
  RULE_NAME_RE,
  flowsCounter,
  newCounter,
  type RuleMark,
} from './firewall-names.js';
import { expiryDrops, timeGroups, type RuleWindow } from './firewall-time.js';

export interface RenderFirewallOptions {
  /** The WireGuard interface whose traffic is judged, e.g. "crosslink0". */
  wgInterface: string;
  /** The edge liveness port (a config with serving groups); absent: no input chain at all. */
  liveness?: LivenessFirewall;
  /** The zones of the addresses the box knows (AgentConfig.zones): drops are counted per direction
   *  and zone pair. Absent or empty: per direction only. */
  zones?: ZoneSets;
  /** This box's clock minus the controller's when beyond the skew bound (firewall-time.ts); 0 or
   *  absent: rule windows are enforced on the box's own clock. */
  clockSkewMs?: number;
}

export type { LivenessFirewall, ZoneSets } from './firewall-parts.js';

/** The marks of one render (firewall-names.ts's assignRuleMarks), by direction and rule name. */
class RuleMarks {
  readonly list: readonly RuleMark[];
  private readonly byKey = new Map<string, number>();

  constructor(fw: Firewall | undefined) {
    const names = { outbound: [] as string[], inbound: [] as string[], local: [] as string[] };
    for (const dir of FIREWALL_DIRECTIONS) {
      (fw?.[dir.key] ?? []).forEach((r, ri) => {
        if (!RULE_NAME_RE.test(r.rule))
          throw invalid(`firewall.${dir.key}[${ri}].rule`, `"${r.rule}" is not a rule name nft can count by`);
        names[dir.key].push(r.rule);
      });
    }
    this.list = assignRuleMarks(names);
    for (const m of this.list) this.byKey.set(`${m.direction}/${m.rule}`, m.mark);
  }

  markOf(direction: string, rule: string): number {
    return this.byKey.get(`${direction}/${rule}`)!;
  }
}

const markText = (mark: number): string => `0x${mark.toString(16).padStart(8, '0')}`;

/** Protocol numbers as nft reads them (names: tcp, udp, icmp, icmpv6). */
const PROTO_NAME: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmpv6' };

type SetKind = 'ports' | 'proto' | 'any';

const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

function parseList(
  list: readonly string[],
  dirKey: string,
  ri: number,
  field: string,
  cache: PrefixCache,
): ParsedPrefix[] {
  const out: ParsedPrefix[] = [];
  for (let i = 0; i < list.length; i++) out.push(parseAt(list[i]!, dirKey, ri, field, i, cache));
  return out;
}

const PORTS = 0;
const PROTO = 1;
const ANY = 2;
const SET_KINDS: readonly SetKind[] = ['ports', 'proto', 'any'];
/** Index of the (family, kind) list in expandRules' result. */
const slot = (fam: Family, kind: SetKind): number => (fam === 4 ? 0 : 3) + SET_KINDS.indexOf(kind);

/** Expands the rules of one direction (those at `pick`) into boxes, one list per family and set kind (see slot()). */
function expandRules(
  rules: readonly FlowRule[],
  pick: readonly number[],
  dirKey: string,
  cache: PrefixCache,
  marks: RuleMarks,
): TupleBox[][] {
  const out: TupleBox[][] = [[], [], [], [], [], []];
  // Indexed loops and no per-box allocation but the box: this runs once per tuple, mostly before
  // the JIT has optimised it (a fresh agent's first config).
  const firsts: number[] = [];
  const lasts: number[] = [];
  for (const ri of pick) {
    const rule = rules[ri]!;
    const mark = marks.markOf(dirKey, rule.rule);
    const srcs = parseList(rule.sources, dirKey, ri, 'sources', cache);
    const dsts = parseList(rule.destinations, dirKey, ri, 'destinations', cache);
    const proto = rule.protocol === 'tcp' || rule.protocol === 'udp' ? rule.protocol : rule.protocol.toLowerCase();
    firsts.length = 0;
    lasts.length = 0;
    if (proto === 'tcp' || proto === 'udp') {
      for (let i = 0; i < rule.ports.length; i++) {
        const p = rule.ports[i]!;
        const last = p.last === 0 ? p.first : p.last;
        if (p.first < 0 || p.first > 65535 || last > 65535 || last < p.first) {
          throw invalid(`firewall.${dirKey}[${ri}].ports[${i}]`, `invalid port range ${p.first}-${p.last}`);
        }
        firsts.push(p.first);
        lasts.push(last);
      }
      if (firsts.length === 0) {
        firsts.push(0);
        lasts.push(65535);
      }
    } else if (proto !== 'icmp' && proto !== 'any') {
      throw invalid(
        `firewall.${dirKey}[${ri}].protocol`,
        `unknown protocol "${rule.protocol}" (tcp, udp, icmp or any)`,
      );
    }
    for (let si = 0; si < srcs.length; si++) {
      const src = srcs[si]!;
      for (let di = 0; di < dsts.length; di++) {
        const dst = dsts[di]!;
        if (src.family !== dst.family) continue; // a v4 source never talks to a v6 destination
        const base = src.family === 4 ? 0 : 3;
        if (proto === 'any') out[base + ANY]!.push({ src, dst, proto: 0, portFirst: 0, portLast: 0, mark });
        else if (proto === 'icmp')
          out[base + PROTO]!.push({ src, dst, proto: src.family === 4 ? 1 : 58, portFirst: 0, portLast: 0, mark });
        else {
          const pn = proto === 'tcp' ? 6 : 17;
          const list = out[base + PORTS]!;
          for (let k = 0; k < firsts.length; k++)
            list.push({ src, dst, proto: pn, portFirst: firsts[k]!, portLast: lasts[k]!, mark });
        }
      }
    }
  }
  return out;
}

function portText(b: TupleBox): string {
  return b.portFirst === b.portLast ? String(b.portFirst) : `${b.portFirst}-${b.portLast}`;
}

function elementText(kind: SetKind, b: TupleBox): string {
  const mark = markText(b.mark);
  if (kind === 'any') return `${b.src.text} . ${b.dst.text} : ${mark}`;
  if (kind === 'proto') return `${b.src.text} . ${b.dst.text} . ${PROTO_NAME[b.proto]} : ${mark}`;
  return `${b.src.text} . ${b.dst.text} . ${PROTO_NAME[b.proto]} . ${portText(b)} : ${mark}`;
}

/** An "address:port" or "[v6]:port" with an IP literal host, split; undefined otherwise. */
export function literalEndpoint(text: string): { family: Family; host: string; port: number } | undefined {
  const c = canonicalEndpoint(text);
  if (c === null) return undefined;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(c);
  if (v6) return { family: 6, host: v6[1]!, port: Number(v6[2]) };
  const v4 = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(c);
  return v4 ? { family: 4, host: v4[1]!, port: Number(v4[2]) } : undefined;
}

/**
 * The relay's port maps, one element per forward and family: (sender, sender port, our address,
 * our port) -> where to send it (DNAT), and -> which of our addresses and ports it leaves from
 * (SNAT, looked up by the connection's original tuple). Replies need no entry: conntrack undoes
 * both translations. Every endpoint must be an IP literal of one family per forward.
 */
export function relayMapElements(relay: readonly RelayForward[]): Map<Family, { dnat: string[]; snat: string[] }> {
  const out = new Map<Family, { dnat: string[]; snat: string[] }>([
    [4, { dnat: [], snat: [] }],
    [6, { dnat: [], snat: [] }],
  ]);
  const keys = new Set<string>();
  relay.forEach((r, i) => {
    const parts = (['source', 'listen', 'target', 'snat'] as const).map((field) => {
      const e = literalEndpoint(r[field]);
      if (!e)
        throw invalid(
          `firewall.relay[${i}].${field}`,
          `"${r[field]}" is not an IP address and port (address:port or [v6]:port)`,
        );
      return e;
    });
    const [src, listen, target, snat] = parts as [
      NonNullable<ReturnType<typeof literalEndpoint>>,
      ...NonNullable<ReturnType<typeof literalEndpoint>>[],
    ];
    if (parts.some((p) => p.family !== src.family)) {
      throw invalid(
        `firewall.relay[${i}]`,
        `mixes IPv4 and IPv6 endpoints (${r.source} -> ${r.listen} -> ${r.target} from ${r.snat}); a relay cannot translate between families`,
      );
    }
    const key = `${src.host} . ${src.port} . ${listen!.host} . ${listen!.port}`;
    if (keys.has(key)) throw invalid(`firewall.relay[${i}]`, `a second forward for ${r.source} -> ${r.listen}`);
    keys.add(key);
    const fam = out.get(src.family)!;
    fam.dnat.push(`${key} : ${target!.host} . ${target!.port}`);
    fam.snat.push(`${key} : ${snat!.host} . ${snat!.port}`);
  });
  // The same forwards in any order give the same bytes.
  for (const m of out.values()) {
    m.dnat.sort();
    m.snat.sort();
  }
  return out;
}

/** Renders `table inet crosslink { ... }` for `fw` (absent: deny everything crossing the overlay). */
export function renderFirewall(fw: Firewall | undefined, opts: RenderFirewallOptions): string {
  if (!IFNAME_RE.test(opts.wgInterface)) throw invalid('wgInterface', `invalid interface name "${opts.wgInterface}"`);
  const ifq = `"${opts.wgInterface}"`;
  const sets: string[] = [];
  const chains: string[] = [];
  const judge: string[] = [];

  const cache: PrefixCache = new Map();
  const relay = relayMapElements(fw?.relay ?? []);
  const local = outermost(fw?.localPrefixes ?? [], 'firewall.local_prefixes', cache);
  const masq = outermost(fw?.masquerade ?? [], 'firewall.masquerade', cache);
  for (const fam of [4, 6] as const) {
    const type = fam === 4 ? 'ipv4_addr' : 'ipv6_addr';
    if (local.get(fam)!.length > 0)
      sets.push(
        setBlock(
          `local${fam}`,
          type,
          local.get(fam)!.map((p) => p.text),
        ),
      );
    if (masq.get(fam)!.length > 0)
      sets.push(
        setBlock(
          `masq${fam}`,
          type,
          masq.get(fam)!.map((p) => p.text),
        ),
      );
  }

  const zoneDrops = new ZoneDrops(opts.zones ?? [], cache);
  sets.push(...zoneDrops.sets);
  const marks = new RuleMarks(fw);
  const windowed: Array<{ mark: string; window: RuleWindow; counter: string }> = [];
  const windowOf = (dir: (typeof FIREWALL_DIRECTIONS)[number], ri: number, window: RuleWindow) => ({
    mark: markText(marks.markOf(dir.key, fw![dir.key][ri]!.rule)),
    window,
    counter: dir.counter,
  });
  for (const dir of FIREWALL_DIRECTIONS) {
    const rules = fw ? fw[dir.key] : [];
    const body = ['\t\tct state invalid drop'];
    // Rules without a window first, then each window's (firewall-time.ts: why this order).
    const groups = timeGroups(rules, opts.clockSkewMs);
    const expandedOf = new Map(groups.map((g) => [g, expandRules(rules, g.indices, dir.key, cache, marks)]));
    for (const g of groups) for (const ri of g.indices) if (g.window) windowed.push(windowOf(dir, ri, g.window));
    for (const [group, fam] of groups.flatMap((g) => [[g, 4] as const, [g, 6] as const])) {
      const expanded = expandedOf.get(group)!;
      const addr = fam === 4 ? 'ipv4_addr' : 'ipv6_addr';
      const sel = fam === 4 ? 'ip saddr . ip daddr' : 'ip6 saddr . ip6 daddr';
      const kinds: Array<[SetKind, string, string]> = [
        ['ports', `${addr} . ${addr} . inet_proto . inet_service`, `${sel} . meta l4proto . th dport`],
        ['proto', `${addr} . ${addr} . inet_proto`, `${sel} . meta l4proto`],
        ['any', `${addr} . ${addr}`, sel],
      ];
      for (const [kind, type, match] of kinds) {
        const layers = layerBoxes(expanded[slot(fam, kind)]!);
        layers.forEach((layer, l) => {
          const name = `${dir.set}${fam}_${kind}${group.tag}${l === 0 ? '' : `_${l}`}`;
          sets.push(
            mapBlock(
              name,
              `${type} : mark`,
              layer.map((b) => elementText(kind, b)),
              true,
            ),
          );
          body.push(`\t\t${group.guard}ct mark set ${match} map @${name} goto admitted`);
        });
      }
    }
    // Denied attempts: a rate-limited sample to the drop log, then counted and dropped.
    body.push(
      `\t\tlimit rate ${DROP_LOG_LIMIT} log group ${DROP_LOG_GROUPS[dir.key]} snaplen ${DROP_LOG_SNAPLEN}`,
      ...zoneDrops.rules(dir.key),
    );
    body.push(`\t\tcounter name "${dir.counter}" drop`);
    chains.push('', `\tchain ${dir.chain} {`, ...body, '\t}');
  }

  judge.push(`\t\tiifname ${ifq} jump from_overlay`, `\t\toifname ${ifq} jump to_overlay`);
  for (const fam of [4, 6] as const) {
    if (local.get(fam)!.length === 0) continue;
    const ip = fam === 4 ? 'ip' : 'ip6';
    judge.push(`\t\t${ip} saddr @local${fam} ${ip} daddr @local${fam} jump lan_to_lan`);
  }

  const input = opts.liveness ? livenessInput(opts.liveness, ifq, cache) : [];

  const lines = [`table inet ${CROSSLINK_NFT_TABLE} {`];
  for (const dir of FIREWALL_DIRECTIONS) lines.push(`\tcounter ${dir.counter} {`, '\t}');
  for (const name of zoneDrops.counters) lines.push(`\tcounter ${name} {`, '\t}');
  // Per rule: its flows' first packets ("new") and all their packets ("flows"), by the flow's mark.
  for (const r of marks.list)
    lines.push(
      `\tcounter ${newCounter(r.direction, r.rule)} {`,
      '\t}',
      `\tcounter ${flowsCounter(r.direction, r.rule)} {`,
      '\t}',
    );
  const counted = marks.list.length > 0;
  if (counted)
    lines.push(
      '',
      mapBlock(
        'rule_new',
        'mark : counter',
        marks.list.map((r) => `${markText(r.mark)} : "${newCounter(r.direction, r.rule)}"`),
      ),
      mapBlock(
        'rule_flows',
        'mark : counter',
        marks.list.map((r) => `${markText(r.mark)} : "${flowsCounter(r.direction, r.rule)}"`),
      ),
    );
  if (sets.length > 0) lines.push('', ...sets);
  lines.push(
    '',
    '\tchain forward {',
    // Policy accept: the host's other traffic is not ours to judge; only the jumps below decide.
    '\t\ttype filter hook forward priority filter; policy accept;',
    // A windowed rule's flows are cut outside its window, before anything accepts them.
    ...expiryDrops(windowed),
    ...(counted ? ['\t\tct state established,related ct mark != 0 counter name ct mark map @rule_flows'] : []),
    '\t\tct state established,related accept',
    ...judge,
    '\t}',
    ...chains,
  );
  if (counted)
    lines.push(
      '',
      '\tchain admitted {',
      '\t\tcounter name ct mark map @rule_new',
      '\t\tcounter name ct mark map @rule_flows',
      '\t\taccept',
      '\t}',
    );
  lines.push(...input);
  // Relay: other boxes' WireGuard datagrams, still encrypted, rewritten in the kernel and sent on;
  // they never reach our WireGuard interface, and the forward chain above leaves them alone.
  const nat: string[] = [];
  const dnat: string[] = [];
  for (const fam of [4, 6] as const) {
    const m = relay.get(fam)!;
    if (m.dnat.length === 0) continue;
    const [ip, addr] = fam === 4 ? ['ip', 'ipv4_addr'] : ['ip6', 'ipv6_addr'];
    const type = `${addr} . inet_service . ${addr} . inet_service : ${addr} . inet_service`;
    lines.push('', mapBlock(`relay${fam}_dnat`, type, m.dnat), mapBlock(`relay${fam}_snat`, type, m.snat));
    dnat.push(`\t\tdnat ${ip} to ${ip} saddr . udp sport . ${ip} daddr . udp dport map @relay${fam}_dnat`);
    nat.push(
      `\t\tct status dnat meta l4proto udp snat ${ip} to ct original ${ip} saddr . ct original proto-src . ct original ${ip} daddr . ct original proto-dst map @relay${fam}_snat`,
    );
  }
  if (dnat.length > 0)
    lines.push('', '\tchain relay {', '\t\ttype nat hook prerouting priority dstnat; policy accept;', ...dnat, '\t}');
  const mapTo = mapToParts(fw?.mapTo ?? [], ifq, cache);
  if (mapTo.maps.length > 0)
    lines.push(
      '',
      ...mapTo.maps,
      '',
      '\tchain map_to_in {',
      '\t\ttype nat hook prerouting priority dstnat; policy accept;',
      ...mapTo.dnat,
      '\t}',
    );
  nat.push(...mapTo.snat);
  if (masq.get(4)!.length > 0) nat.push(`\t\tiifname ${ifq} ip daddr @masq4 masquerade`);
  if (masq.get(6)!.length > 0) nat.push(`\t\tiifname ${ifq} ip6 daddr @masq6 masquerade`);
  if (nat.length > 0) {
    lines.push(
      '',
      '\tchain postrouting {',
      '\t\ttype nat hook postrouting priority srcnat; policy accept;',
      ...nat,
      '\t}',
    );
  }
  lines.push('}', '');
  return lines.join('\n');
}
