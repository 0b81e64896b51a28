// A subnet's `map-to`: the prefixes the rest of the overlay knows it by, each translated 1:1 to
// and from one of its real prefixes by its own serving box (docs/policy.md, "Overlapping address
// space: map-to"). Pure.
import type { PathSegment } from '../parse.js';
import { parsePrefixStrict, prefixesOverlap, type ParsedPrefix } from '../prefixes.js';
import type { Checker, Raw } from './checker.js';

/** A mapped subnet's real prefixes and the prefixes they map to, pair by pair in written order. */
export interface MapToPairs {
  real: ParsedPrefix[];
  mapped: ParsedPrefix[];
}

/**
 * Reads `map-to` (a prefix, or a list with one entry per `cidr` entry in the same order). Each
 * mapped prefix must have its real prefix's family and length. `real` is the subnet's prefixes in
 * written order; `isCidrClean` says every `cidr` entry parsed (else pairing is meaningless).
 */
export function checkMapTo(
  c: Checker,
  f: Raw,
  p: PathSegment[],
  real: readonly ParsedPrefix[],
  isCidrClean: boolean,
): MapToPairs | undefined {
  const raw = f['map-to'];
  if (raw === undefined || raw === null) return undefined;
  const texts = c.stringList(raw, [...p, 'map-to'], 'map-to');
  const path = (i: number): PathSegment[] => (Array.isArray(raw) ? [...p, 'map-to', i] : [...p, 'map-to']);
  if (!isCidrClean) return undefined;
  if (texts.length !== real.length) {
    c.err(
      [...p, 'map-to'],
      `map-to must give one prefix per cidr entry, in the same order: ${real.length} cidr, ${texts.length} map-to`,
    );
    return undefined;
  }
  const mapped: ParsedPrefix[] = [];
  let ok = true;
  texts.forEach((text, i) => {
    const r = parsePrefixStrict(text);
    const from = real[i]!;
    if (!r.ok) {
      c.err(path(i), `map-to: ${r.message}`);
      ok = false;
    } else if (r.prefix.family !== from.family || r.prefix.length !== from.length) {
      c.err(
        path(i),
        `map-to ${r.prefix.text} must have the family and length of ${from.text} (a 1:1 translation): write an IPv${from.family} /${from.length}`,
      );
      ok = false;
    } else if (mapped.some((q) => prefixesOverlap(q, r.prefix))) {
      c.err(path(i), `map-to ${r.prefix.text} overlaps another map-to prefix of this subnet`);
      ok = false;
    } else mapped.push(r.prefix);
  });
  return ok ? { real: [...real], mapped } : undefined;
}

/** One subnet as the real-space check sees it. */
export interface RealSide {
  name: string;
  via: readonly string[];
  /** Its real prefixes. */
  real: readonly ParsedPrefix[];
  /** Its mapped prefixes (empty: not mapped). */
  mapped: readonly ParsedPrefix[];
}

/**
 * What the overlay-space overlap check cannot see: a mapped prefix landing on another subnet's real
 * LAN (its hosts would think the mapped space is on their own wire), and two subnets with
 * overlapping real space on one box (it could not tell their hosts apart). Quadratic in mapped
 * subnets only, which are few.
 */
export function checkRealSpace(c: Checker, sides: readonly RealSide[]): void {
  const mapped = sides.filter((s) => s.mapped.length > 0);
  for (const m of mapped) {
    for (const o of sides) {
      if (o.name === m.name) continue;
      for (const mp of m.mapped) {
        const hit = o.real.find((r) => prefixesOverlap(r, mp));
        if (hit && o.mapped.length > 0)
          c.err(
            ['subnets', m.name, 'map-to'],
            `map-to ${mp.text} of subnet "${m.name}" overlaps ${hit.text}, the real space of subnet "${o.name}": its hosts could not reach the mapped space; choose an unused prefix`,
          );
      }
      if (o.name < m.name && o.mapped.length > 0) continue; // each mapped pair once
      const shared = m.via.find((a) => o.via.includes(a));
      const clash = m.real.find((r) => o.real.some((q) => prefixesOverlap(q, r)));
      if (shared !== undefined && clash !== undefined)
        c.err(
          ['subnets', m.name, 'via'],
          `subnet "${m.name}" (${clash.text}) and subnet "${o.name}" overlap in real space and agent "${shared}" serves both: one box cannot tell their hosts apart; serve them from different boxes`,
        );
    }
  }
}
