// Layers of set elements for the firewall renderer (firewall-render.ts). PURE: no I/O.
//
// nftables refuses a concatenated interval set whose elements overlap ("File exists", checked on
// nft 1.0.6 / kernel 6.18), so the tuples are first made overlap-free: port ranges of one
// rule's (source, destination, protocol) are merged, an element contained in another is dropped, and
// elements that still overlap partially go into a second (third, ...) set with its own rule.
import type { ParsedPrefix } from './canonical.js';

/** One element of a set: a box in (source, destination, protocol, destination ports). */
export interface TupleBox {
  src: ParsedPrefix;
  dst: ParsedPrefix;
  /** 0 for the `any` sets. */
  proto: number;
  /** 0..0 for sets without ports. */
  portFirst: number;
  portLast: number;
  /** The ct mark of the rule the box comes from (firewall-render.ts counts flows per rule by it). */
  mark: number;
}

export function contains(outer: ParsedPrefix, inner: ParsedPrefix): boolean {
  return outer.len <= inner.len && outer.startHex <= inner.startHex && inner.endHex <= outer.endHex;
}

export function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The distinct prefixes of `boxes`, ranked in (start, length) order, so comparing ranks compares
 * prefixes; rankOf maps a prefix's canonical text (one per family, address and length) to its rank.
 * And each prefix's parent: the longest other prefix of the same family that contains it (-1: none).
 */
function rankPrefixes(boxes: readonly TupleBox[]): {
  prefixes: ParsedPrefix[];
  rankOf: Map<string, number>;
  parent: Int32Array;
} {
  const rankOf = new Map<string, number>();
  const prefixes: ParsedPrefix[] = [];
  for (let i = 0; i < boxes.length; i++) {
    const { src, dst } = boxes[i]!;
    if (!rankOf.has(src.text)) rankOf.set(src.text, prefixes.push(src));
    if (!rankOf.has(dst.text)) rankOf.set(dst.text, prefixes.push(dst));
  }
  prefixes.sort((a, b) => cmpStr(a.startHex, b.startHex) || a.len - b.len);
  for (let r = 0; r < prefixes.length; r++) rankOf.set(prefixes[r]!.text, r);
  // Prefixes are either nested or disjoint, so in (start, length) order a stack holds the chain of
  // prefixes containing the current one (one stack per family: their hex differs in width).
  const parent = new Int32Array(prefixes.length).fill(-1);
  const stacks = new Map<number, number[]>();
  for (let r = 0; r < prefixes.length; r++) {
    const p = prefixes[r]!;
    let stack = stacks.get(p.startHex.length);
    if (!stack) stacks.set(p.startHex.length, (stack = []));
    while (stack.length > 0 && !contains(prefixes[stack[stack.length - 1]!]!, p)) stack.pop();
    if (stack.length > 0) parent[r] = stack[stack.length - 1]!;
    stack.push(r);
  }
  return { prefixes, rankOf, parent };
}

/** Indices 0..n-1 ordered by (k1, k2, index), as a stable sort by (k1, k2) would order them. When
 *  k1 * n stays exact in a double, a native sort of k1 * n + index (no JavaScript comparator for
 *  10,000 boxes), then the rare runs of equal k1 by k2. */
function sortByKeys(k1: Float64Array, k2: Float64Array): Int32Array {
  const n = k1.length;
  const order = new Int32Array(n);
  let max = 0;
  for (let i = 0; i < n; i++) if (k1[i]! > max) max = k1[i]!;
  if ((max + 1) * n >= Number.MAX_SAFE_INTEGER) {
    const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => k1[a]! - k1[b]! || k2[a]! - k2[b]!);
    order.set(idx);
    return order;
  }
  const packed = new Float64Array(n);
  for (let i = 0; i < n; i++) packed[i] = k1[i]! * n + i;
  packed.sort();
  for (let i = 0; i < n; i++) order[i] = packed[i]! % n;
  for (let s = 0; s < n;) {
    let e = s + 1;
    while (e < n && k1[order[e]!] === k1[order[s]!]) e++;
    if (e - s > 1) order.subarray(s, e).sort((a, b) => k2[a]! - k2[b]! || a - b);
    s = e;
  }
  return order;
}

/**
 * Splits boxes (one family, one set kind) into layers whose elements never overlap, after merging
 * one rule's port ranges per (source, destination, protocol) and dropping boxes contained in another. Prefixes
 * are either nested or disjoint, so the boxes that can overlap a box b are found through b's source
 * ancestors and, among their boxes, b's destination ancestors (a binary search each) and
 * descendants (a range scan) — no all-pairs. Each prefix is a number (its rank), so sorting,
 * grouping and look-ups compare numbers, not strings.
 */
export function layerBoxes(input: readonly TupleBox[]): TupleBox[][] {
  if (input.length === 0) return [];
  const { prefixes, rankOf, parent } = rankPrefixes(input);
  const nPrefixes = prefixes.length;

  // Sort by (source, destination, protocol, first port, last port), then merge the port ranges of
  // each (source, destination, protocol) run; that leaves them in the same order.
  const n0 = input.length;
  const k1 = new Float64Array(n0);
  const k2 = new Float64Array(n0);
  for (let i = 0; i < n0; i++) {
    const b = input[i]!;
    k1[i] = (rankOf.get(b.src.text)! * nPrefixes + rankOf.get(b.dst.text)!) * 256 + b.proto;
    // Then by mark (its 16-bit slot): equal boxes of two rules meet in one order whatever the rules'.
    k2[i] = (b.portFirst * 65536 + b.portLast) * 65536 + (b.mark & 0xffff);
  }
  const sortedIdx = sortByKeys(k1, k2);
  const boxes: TupleBox[] = [];
  const srcOf: number[] = [];
  const dstOf: number[] = [];
  for (let s = 0; s < n0;) {
    const i = sortedIdx[s]!;
    let cur = input[i]!;
    let isCopy = false;
    let e = s + 1;
    // The run's source and destination ranks, from its key.
    const q = Math.floor(k1[i]! / 256);
    const src = Math.floor(q / nPrefixes);
    const dst = q - src * nPrefixes;
    for (; e < n0 && k1[sortedIdx[e]!] === k1[i]; e++) {
      const b = input[sortedIdx[e]!]!;
      // Ranges of two rules stay apart (each counts its own flows); if they overlap, the colouring
      // below puts them in different layers, or drops the one the other holds.
      if (b.portFirst <= cur.portLast + 1 && b.mark === cur.mark) {
        if (b.portLast > cur.portLast) {
          if (!isCopy) cur = { ...cur };
          isCopy = true;
          cur.portLast = b.portLast;
        }
      } else {
        boxes.push(cur);
        srcOf.push(src);
        dstOf.push(dst);
        cur = b;
        isCopy = false;
      }
    }
    boxes.push(cur);
    srcOf.push(src);
    dstOf.push(dst);
    s = e;
  }
  const n = boxes.length;

  // Boxes of one source are a contiguous range, ordered by destination.
  const groupStart = new Int32Array(nPrefixes).fill(-1);
  const groupEnd = new Int32Array(nPrefixes);
  for (let i = 0; i < n; i++) {
    if (groupStart[srcOf[i]!] === -1) groupStart[srcOf[i]!] = i;
    groupEnd[srcOf[i]!] = i + 1;
  }
  /** First box in [lo, hi) whose destination rank is >= rank. */
  const firstDst = (lo: number, hi: number, rank: number): number => {
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (dstOf[mid]! < rank) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  const neighbours: number[][] = boxes.map(() => []);
  const redundant = new Uint8Array(n);
  // A pair may be looked at twice (from either side); both outcomes are idempotent.
  const consider = (i: number, j: number): void => {
    if (j === i) return;
    const a = boxes[j]!;
    const b = boxes[i]!;
    if (a.proto !== b.proto || a.portFirst > b.portLast || b.portFirst > a.portLast) return;
    const aHoldsB =
      contains(a.src, b.src) && contains(a.dst, b.dst) && a.portFirst <= b.portFirst && b.portLast <= a.portLast;
    const bHoldsA =
      contains(b.src, a.src) && contains(b.dst, a.dst) && b.portFirst <= a.portFirst && a.portLast <= b.portLast;
    // Equal boxes (two rules allowing the same tuples, kept apart by their marks): keep the first.
    if (aHoldsB && bHoldsA) redundant[Math.max(i, j)] = 1;
    else if (aHoldsB) redundant[i] = 1;
    else if (bHoldsA) redundant[j] = 1;
    else {
      neighbours[i]!.push(j);
      neighbours[j]!.push(i);
    }
  };
  for (let i = 0; i < n; i++) {
    const dst = prefixes[dstOf[i]!]!;
    for (let s = srcOf[i]!; s !== -1; s = parent[s]!) {
      const gs = groupStart[s]!;
      if (gs === -1) continue; // an ancestor that is no box's source
      const ge = groupEnd[s]!;
      // Destinations that hold b's (itself included).
      for (let d = dstOf[i]!; d !== -1; d = parent[d]!) {
        for (let k = firstDst(gs, ge, d); k < ge && dstOf[k] === d; k++) consider(i, k);
      }
      // Destinations inside b's: from the first that starts where b's does, while they start inside it.
      let lo = gs;
      let hi = ge;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (prefixes[dstOf[mid]!]!.startHex < dst.startHex) lo = mid + 1;
        else hi = mid;
      }
      for (let k = lo; k < ge && prefixes[dstOf[k]!]!.startHex <= dst.endHex; k++) {
        if (prefixes[dstOf[k]!]!.len > dst.len) consider(i, k);
      }
    }
  }

  // Greedy colouring in the deterministic box order: each box takes the first layer none of its
  // overlapping neighbours holds.
  const layerOf = new Int32Array(n).fill(-1);
  const takenBy = new Int32Array(n + 1).fill(-1);
  const layers: TupleBox[][] = [];
  for (let i = 0; i < n; i++) {
    if (redundant[i]) continue;
    for (const j of neighbours[i]!) if (!redundant[j] && layerOf[j]! >= 0) takenBy[layerOf[j]!] = i;
    let l = 0;
    while (takenBy[l] === i) l++;
    layerOf[i] = l;
    (layers[l] ??= []).push(boxes[i]!);
  }
  return layers;
}
