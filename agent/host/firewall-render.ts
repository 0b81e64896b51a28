// Renders the compiled Firewall message into the nftables ruleset of Crosslink's own table.
// PURE: no I/O. The same input gives the same bytes.
//
// Layout (GUIDE §6: sets, never one rule per tuple): a `forward` base chain with policy ACCEPT, so
// the host's other traffic is never judged here; it sends only traffic that enters or leaves the
// WireGuard interface, or that goes between two of the box's local prefixes, into one of three
// chains. Each of those looks the packet up in concatenated interval sets and drops the rest into a
// named counter, one per direction.
//
// nftables refuses a concatenated interval set whose elements overlap ("File exists", checked on
// nft 1.0.6 / kernel 6.18), so the tuples are first made overlap-free: port ranges of one
// (source, destination, protocol) are merged, an element contained in another is dropped, and
// elements that still overlap partially go into a second (third, ...) set with its own rule.
import type { Firewall, FlowRule } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { CrosslinkError } from '../../lib/errors.js';
import { CROSSLINK_NFT_TABLE } from './ports.js';
import { maskHex, parsePrefix, type ParsedPrefix } from './canonical.js';

export interface RenderFirewallOptions {
  /** The WireGuard interface whose traffic is judged, e.g. "crosslink0". */
  wgInterface: string;
}

/** Per-direction names: chain, named drop counter and set-name prefix. */
export const FIREWALL_DIRECTIONS = [
  { key: 'outbound', chain: 'to_overlay', counter: 'dropped_outbound', set: 'out' },
  { key: 'inbound', chain: 'from_overlay', counter: 'dropped_inbound', set: 'in' },
  { key: 'local', chain: 'lan_to_lan', counter: 'dropped_local', set: 'lan' },
] as const;

type Family = 4 | 6;
/** Protocol numbers as nft reads them (names: tcp, udp, icmp, icmpv6). */
const PROTO_NAME: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmpv6' };

/** One element of a set: a box in (source, destination, protocol, destination ports). */
export interface TupleBox {
  src: ParsedPrefix;
  dst: ParsedPrefix;
  /** 0 for the `any` sets. */
  proto: number;
  /** 0..0 for sets without ports. */
  portFirst: number;
  portLast: number;
}

type SetKind = 'ports' | 'proto' | 'any';

const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

function invalid(path: string, message: string): CrosslinkError {
  return new CrosslinkError('config_invalid', `${path}: ${message}`, [{ path, message }]);
}

function parseAt(text: string, path: string): ParsedPrefix {
  try {
    return parsePrefix(text);
  } catch (e) {
    throw new CrosslinkError('config_invalid', `${path}: invalid prefix "${text}"`, [{ path, message: `invalid prefix "${text}"` }], { cause: e });
  }
}

/** Expands the rules of one direction into boxes, keyed by family and set kind. */
function expandRules(rules: readonly FlowRule[], dirKey: string): Map<string, TupleBox[]> {
  const out = new Map<string, TupleBox[]>();
  const push = (fam: Family, kind: SetKind, box: TupleBox): void => {
    const k = `${fam}_${kind}`;
    let list = out.get(k);
    if (!list) out.set(k, (list = []));
    list.push(box);
  };
  rules.forEach((rule, ri) => {
    const path = `firewall.${dirKey}[${ri}]`;
    const srcs = rule.sources.map((s, i) => parseAt(s, `${path}.sources[${i}]`));
    const dsts = rule.destinations.map((s, i) => parseAt(s, `${path}.destinations[${i}]`));
    const proto = rule.protocol.toLowerCase();
    let ranges: Array<[number, number]> = [];
    if (proto === 'tcp' || proto === 'udp') {
      ranges = rule.ports.map((p, i) => {
        const last = p.last === 0 ? p.first : p.last;
        if (p.first < 0 || p.first > 65535 || last > 65535 || last < p.first) {
          throw invalid(`${path}.ports[${i}]`, `invalid port range ${p.first}-${p.last}`);
        }
        return [p.first, last] as [number, number];
      });
      if (ranges.length === 0) ranges = [[0, 65535]];
    } else if (proto !== 'icmp' && proto !== 'any') {
      throw invalid(`${path}.protocol`, `unknown protocol "${rule.protocol}" (tcp, udp, icmp or any)`);
    }
    for (const src of srcs) {
      for (const dst of dsts) {
        if (src.family !== dst.family) continue; // a v4 source never talks to a v6 destination
        const fam = src.family;
        if (proto === 'any') push(fam, 'any', { src, dst, proto: 0, portFirst: 0, portLast: 0 });
        else if (proto === 'icmp') push(fam, 'proto', { src, dst, proto: fam === 4 ? 1 : 58, portFirst: 0, portLast: 0 });
        else {
          const pn = proto === 'tcp' ? 6 : 17;
          for (const [first, last] of ranges) push(fam, 'ports', { src, dst, proto: pn, portFirst: first, portLast: last });
        }
      }
    }
  });
  return out;
}

function contains(outer: ParsedPrefix, inner: ParsedPrefix): boolean {
  return outer.len <= inner.len && outer.startHex <= inner.startHex && inner.endHex <= outer.endHex;
}

function boxOrder(a: TupleBox, b: TupleBox): number {
  return (
    cmpStr(a.src.startHex, b.src.startHex) || a.src.len - b.src.len ||
    cmpStr(a.dst.startHex, b.dst.startHex) || a.dst.len - b.dst.len ||
    a.proto - b.proto || a.portFirst - b.portFirst || a.portLast - b.portLast
  );
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function prefixKey(p: ParsedPrefix): string {
  return `${p.startHex}/${p.len}`;
}

/** Merges port ranges per (src, dst, proto) and drops exact duplicates. */
function mergePorts(boxes: readonly TupleBox[]): TupleBox[] {
  const groups = new Map<string, TupleBox[]>();
  for (const b of boxes) {
    const k = `${prefixKey(b.src)}|${prefixKey(b.dst)}|${b.proto}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(b);
  }
  const out: TupleBox[] = [];
  for (const g of groups.values()) {
    g.sort((a, b) => a.portFirst - b.portFirst || a.portLast - b.portLast);
    let cur = { ...g[0] };
    for (let i = 1; i < g.length; i++) {
      const b = g[i];
      if (b.portFirst <= cur.portLast + 1) cur.portLast = Math.max(cur.portLast, b.portLast);
      else {
        out.push(cur);
        cur = { ...b };
      }
    }
    out.push(cur);
  }
  return out;
}

interface SrcGroup {
  byDst: Map<string, TupleBox[]>;
  /** Distinct destination prefix lengths, for ancestor look-ups. */
  dstLens: number[];
  /** Distinct destinations ordered by (start, len), for descendant range scans. */
  dsts: ParsedPrefix[];
}

function lowerBound(dsts: readonly ParsedPrefix[], startHex: string): number {
  let lo = 0;
  let hi = dsts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (dsts[mid].startHex < startHex) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Splits boxes (one family, one set kind) into layers whose elements never overlap, after dropping
 * boxes contained in another. Prefixes are either nested or disjoint, so the boxes that can overlap
 * a box b are found through b's source ancestors (a stack sweep) and, in each of their groups,
 * b's destination ancestors (hash look-ups by length) and descendants (a range scan) — no all-pairs.
 */
export function layerBoxes(input: readonly TupleBox[]): TupleBox[][] {
  const boxes = mergePorts(input).sort(boxOrder);
  if (boxes.length === 0) return [];
  // Source groups and each distinct source's ancestor-or-self chain.
  const groups = new Map<string, SrcGroup>();
  const srcs: ParsedPrefix[] = [];
  for (const b of boxes) {
    const k = prefixKey(b.src);
    let g = groups.get(k);
    if (!g) {
      groups.set(k, (g = { byDst: new Map(), dstLens: [], dsts: [] }));
      srcs.push(b.src);
    }
    const dk = prefixKey(b.dst);
    let list = g.byDst.get(dk);
    if (!list) {
      g.byDst.set(dk, (list = []));
      g.dsts.push(b.dst);
      if (!g.dstLens.includes(b.dst.len)) g.dstLens.push(b.dst.len);
    }
    list.push(b);
  }
  for (const g of groups.values()) g.dsts.sort((a, b) => cmpStr(a.startHex, b.startHex) || a.len - b.len);
  const ancestors = new Map<string, string[]>();
  const stack: ParsedPrefix[] = [];
  for (const s of srcs) {
    // srcs is in (start, len) order because boxes are.
    while (stack.length > 0 && !contains(stack[stack.length - 1], s)) stack.pop();
    stack.push(s);
    ancestors.set(prefixKey(s), stack.map(prefixKey));
  }

  const index = new Map<TupleBox, number>();
  boxes.forEach((b, i) => index.set(b, i));
  const neighbours: number[][] = boxes.map(() => []);
  const redundant = new Uint8Array(boxes.length);
  const seen = new Set<string>();
  const consider = (i: number, a: TupleBox): void => {
    const j = index.get(a)!;
    if (j === i) return;
    const b = boxes[i];
    if (a.proto !== b.proto || a.portFirst > b.portLast || b.portFirst > a.portLast) return;
    const key = i < j ? `${i},${j}` : `${j},${i}`;
    if (seen.has(key)) return;
    seen.add(key);
    const aHoldsB = contains(a.src, b.src) && contains(a.dst, b.dst) && a.portFirst <= b.portFirst && b.portLast <= a.portLast;
    const bHoldsA = contains(b.src, a.src) && contains(b.dst, a.dst) && b.portFirst <= a.portFirst && a.portLast <= b.portLast;
    if (aHoldsB) redundant[i] = 1;
    else if (bHoldsA) redundant[j] = 1;
    else {
      neighbours[i].push(j);
      neighbours[j].push(i);
    }
  };
  boxes.forEach((b, i) => {
    for (const sk of ancestors.get(prefixKey(b.src))!) {
      const g = groups.get(sk)!;
      for (const len of g.dstLens) {
        if (len > b.dst.len) continue;
        const list = g.byDst.get(`${maskHex(b.dst.startHex, len)}/${len}`);
        if (list) for (const a of list) consider(i, a);
      }
      for (let k = lowerBound(g.dsts, b.dst.startHex); k < g.dsts.length && g.dsts[k].startHex <= b.dst.endHex; k++) {
        const d = g.dsts[k];
        if (d.len > b.dst.len) for (const a of g.byDst.get(prefixKey(d))!) consider(i, a);
      }
    }
  });

  // Greedy colouring in the deterministic box order: each box takes the first layer none of its
  // overlapping neighbours holds.
  const layerOf = new Int32Array(boxes.length).fill(-1);
  const layers: TupleBox[][] = [];
  boxes.forEach((b, i) => {
    if (redundant[i]) return;
    const taken = new Set<number>();
    for (const j of neighbours[i]) if (!redundant[j] && layerOf[j] >= 0) taken.add(layerOf[j]);
    let l = 0;
    while (taken.has(l)) l++;
    layerOf[i] = l;
    (layers[l] ??= []).push(b);
  });
  return layers;
}

/** Keeps only the outermost prefixes (an nft interval set refuses overlapping intervals). */
function outermost(prefixes: readonly string[], path: string): Map<Family, ParsedPrefix[]> {
  const parsed = prefixes.map((p, i) => parseAt(p, `${path}[${i}]`));
  parsed.sort((a, b) => a.family - b.family || cmpStr(a.startHex, b.startHex) || a.len - b.len);
  const out = new Map<Family, ParsedPrefix[]>([[4, []], [6, []]]);
  for (const p of parsed) {
    const list = out.get(p.family)!;
    const last = list[list.length - 1];
    if (last && contains(last, p)) continue;
    list.push(p);
  }
  return out;
}

function portText(b: TupleBox): string {
  return b.portFirst === b.portLast ? String(b.portFirst) : `${b.portFirst}-${b.portLast}`;
}

function elementText(kind: SetKind, b: TupleBox): string {
  if (kind === 'any') return `${b.src.text} . ${b.dst.text}`;
  if (kind === 'proto') return `${b.src.text} . ${b.dst.text} . ${PROTO_NAME[b.proto]}`;
  return `${b.src.text} . ${b.dst.text} . ${PROTO_NAME[b.proto]} . ${portText(b)}`;
}

function setBlock(name: string, type: string, elements: readonly string[]): string[] {
  const lines = [`\tset ${name} {`, `\t\ttype ${type}`, '\t\tflags interval'];
  if (elements.length > 0) {
    lines.push('\t\telements = {');
    elements.forEach((e, i) => lines.push(`\t\t\t${e}${i < elements.length - 1 ? ',' : ''}`));
    lines.push('\t\t}');
  }
  lines.push('\t}');
  return lines;
}

/** Renders `table inet crosslink { ... }` for `fw` (absent: deny everything crossing the overlay). */
export function renderFirewall(fw: Firewall | undefined, opts: RenderFirewallOptions): string {
  if (!IFNAME_RE.test(opts.wgInterface)) throw invalid('wgInterface', `invalid interface name "${opts.wgInterface}"`);
  const ifq = `"${opts.wgInterface}"`;
  const sets: string[] = [];
  const chains: string[] = [];
  const judge: string[] = [];

  const local = outermost(fw?.localPrefixes ?? [], 'firewall.local_prefixes');
  const masq = outermost(fw?.masquerade ?? [], 'firewall.masquerade');
  for (const fam of [4, 6] as const) {
    const type = fam === 4 ? 'ipv4_addr' : 'ipv6_addr';
    if (local.get(fam)!.length > 0) sets.push(...setBlock(`local${fam}`, type, local.get(fam)!.map((p) => p.text)));
    if (masq.get(fam)!.length > 0) sets.push(...setBlock(`masq${fam}`, type, masq.get(fam)!.map((p) => p.text)));
  }

  for (const dir of FIREWALL_DIRECTIONS) {
    const rules = fw ? fw[dir.key] : [];
    const expanded = expandRules(rules, dir.key);
    const body = ['\t\tct state invalid drop'];
    for (const fam of [4, 6] as const) {
      const addr = fam === 4 ? 'ipv4_addr' : 'ipv6_addr';
      const sel = fam === 4 ? 'ip saddr . ip daddr' : 'ip6 saddr . ip6 daddr';
      const kinds: Array<[SetKind, string, string]> = [
        ['ports', `${addr} . ${addr} . inet_proto . inet_service`, `${sel} . meta l4proto . th dport`],
        ['proto', `${addr} . ${addr} . inet_proto`, `${sel} . meta l4proto`],
        ['any', `${addr} . ${addr}`, sel],
      ];
      for (const [kind, type, match] of kinds) {
        const layers = layerBoxes(expanded.get(`${fam}_${kind}`) ?? []);
        layers.forEach((layer, l) => {
          const name = `${dir.set}${fam}_${kind}${l === 0 ? '' : `_${l}`}`;
          sets.push(...setBlock(name, type, layer.map((b) => elementText(kind, b))));
          body.push(`\t\t${match} @${name} accept`);
        });
      }
    }
    body.push(`\t\tcounter name "${dir.counter}" drop`);
    chains.push('', `\tchain ${dir.chain} {`, ...body, '\t}');
  }

  judge.push(`\t\tiifname ${ifq} jump from_overlay`, `\t\toifname ${ifq} jump to_overlay`);
  for (const fam of [4, 6] as const) {
    if (local.get(fam)!.length === 0) continue;
    const ip = fam === 4 ? 'ip' : 'ip6';
    judge.push(`\t\t${ip} saddr @local${fam} ${ip} daddr @local${fam} jump lan_to_lan`);
  }

  const lines = [`table inet ${CROSSLINK_NFT_TABLE} {`];
  for (const dir of FIREWALL_DIRECTIONS) lines.push(`\tcounter ${dir.counter} {`, '\t}');
  if (sets.length > 0) lines.push('', ...sets);
  lines.push(
    '',
    '\tchain forward {',
    // Policy accept: the host's other traffic is not ours to judge; only the jumps below decide.
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t\tct state established,related accept',
    ...judge,
    '\t}',
    ...chains,
  );
  const nat: string[] = [];
  if (masq.get(4)!.length > 0) nat.push(`\t\tiifname ${ifq} ip daddr @masq4 masquerade`);
  if (masq.get(6)!.length > 0) nat.push(`\t\tiifname ${ifq} ip6 daddr @masq6 masquerade`);
  if (nat.length > 0) {
    lines.push('', '\tchain postrouting {', '\t\ttype nat hook postrouting priority srcnat; policy accept;', ...nat, '\t}');
  }
  lines.push('}', '');
  return lines.join('\n');
}
