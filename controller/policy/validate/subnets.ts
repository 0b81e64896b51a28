// The subnets section: prefixes, zone, via, masquerade and gateway of each subnet, then the
// overlaps between subnets.
import { didYouMean } from '../names.js';
import type { PathSegment } from '../parse.js';
import { containsAddress, parseAddress, parsePrefixStrict, type ParsedPrefix } from '../prefixes.js';
import type { AgentName, PolicyAgent, Subnet, SubnetName } from '../types.js';
import { typeName, type Checker, type Raw } from './checker.js';
import type { ZoneCheck } from './agents.js';
import { checkMapTo, checkRealSpace, type RealSide } from './map-to.js';

const SUBNET_KEYS = ['cidr', 'map-to', 'zone', 'via', 'masquerade', 'gateway', 'description'];

/** What the subnets section checks against. */
export interface SubnetContext {
  minPrefixLength: number;
  checkZone: ZoneCheck;
  zoneNames: ReadonlySet<string>;
  fileAgents: ReadonlyMap<string, PolicyAgent>;
  knownAgents: ReadonlySet<string>;
  /** The document or the controller lists the agents, so `via` can be checked against them. */
  isAgentListKnown: boolean;
}

export interface SubnetSection {
  subnets: Subnet[];
  /** Each subnet's prefixes as the overlay knows them (mapped where mapped), sorted. */
  parsedCidrs: Map<string, ParsedPrefix[]>;
}

export function checkSubnets(c: Checker, raw: unknown, ctx: SubnetContext): SubnetSection {
  const subnets: Subnet[] = [];
  const parsedCidrs = new Map<string, ParsedPrefix[]>();
  // Where each prefix was written (its index in a cidr list), and which subnets wrote a list.
  const writtenIndex = new Map<ParsedPrefix, number>();
  const isCidrList = new Set<string>();
  const mappedNames = new Set<string>();
  const realSides: RealSide[] = [];
  for (const [name, s] of c.namedMap(raw, ['subnets'], 'subnet')) {
    const p: PathSegment[] = ['subnets', name];
    const f = c.fields(s, p, SUBNET_KEYS, ['cidr', 'zone', 'via'], `subnet "${name}"`);
    if (!f) continue;
    if (Array.isArray(f.cidr)) isCidrList.add(name);
    const errorsBefore = c.errors.length;
    const real = checkCidrs(c, f, p, ctx.minPrefixLength, writtenIndex);
    const map = checkMapTo(c, f, p, real, c.errors.length === errorsBefore);
    const zone = typeof f.zone === 'string' ? f.zone : undefined;
    if (f.zone !== undefined && f.zone !== null && zone === undefined)
      c.err([...p, 'zone'], `zone must be a zone name; got ${typeName(f.zone)}`);
    if (zone !== undefined) ctx.checkZone(zone, [...p, 'zone']);
    const via = checkVia(c, f, p, zone, ctx);
    let masquerade = false;
    if (f.masquerade !== undefined && f.masquerade !== null) {
      if (typeof f.masquerade !== 'boolean')
        c.err([...p, 'masquerade'], `masquerade must be true or false; got ${typeName(f.masquerade)}`);
      else masquerade = f.masquerade;
    }
    // Gateways live on the LAN, so in real space.
    const gateways = checkGateways(c, f, p, real);
    // Mapped: the overlay sees the mapped prefixes; pairs stay together, sorted by mapped prefix.
    const pairs = map ? map.mapped.map((m, i) => ({ m, r: map.real[i]! })) : real.map((r) => ({ m: r, r }));
    if (map) map.mapped.forEach((m, i) => writtenIndex.set(m, i));
    pairs.sort((a, b) => a.m.family - b.m.family || (a.m.start < b.m.start ? -1 : a.m.start > b.m.start ? 1 : 0));
    const prefixes = pairs.map((x) => x.m);
    parsedCidrs.set(name, prefixes);
    if (map) mappedNames.add(name);
    realSides.push({ name, via, real, mapped: map?.mapped ?? [] });
    const subnet: Subnet = {
      name: name as SubnetName,
      cidrs: prefixes.map((x) => x.text),
      zone: zone ?? '',
      via: via as AgentName[],
      masquerade,
    };
    if (map) subnet.realCidrs = pairs.map((x) => x.r.text);
    if (gateways.length > 0) subnet.gateways = gateways;
    const description = c.optString(f, 'description', p);
    if (description !== undefined) subnet.description = description;
    subnets.push(subnet);
  }
  checkOverlaps(c, subnets, parsedCidrs, writtenIndex, isCidrList, mappedNames);
  if (mappedNames.size > 0) checkRealSpace(c, realSides);
  return { subnets, parsedCidrs };
}

/** A subnet's prefixes, in written order; records where each was written. */
function checkCidrs(
  c: Checker,
  f: Raw,
  p: PathSegment[],
  minPrefixLength: number,
  writtenIndex: Map<ParsedPrefix, number>,
): ParsedPrefix[] {
  const cidrTexts = c.stringList(f.cidr, [...p, 'cidr'], 'cidr');
  const cidrPath = (i: number): PathSegment[] => (Array.isArray(f.cidr) ? [...p, 'cidr', i] : [...p, 'cidr']);
  const prefixes: ParsedPrefix[] = [];
  cidrTexts.forEach((text, i) => {
    const r = parsePrefixStrict(text);
    if (!r.ok) {
      c.err(cidrPath(i), r.message);
      return;
    }
    if (r.prefix.length === 0) {
      c.err(
        cidrPath(i),
        `${r.prefix.text} is the whole ${r.prefix.family === 4 ? 'IPv4' : 'IPv6'} internet: Crosslink links named subnets, it is not an internet gateway`,
      );
      return;
    }
    if (r.prefix.length < minPrefixLength) {
      c.err(
        cidrPath(i),
        `${r.prefix.text} is shorter than the minimum prefix length /${minPrefixLength}: Crosslink links named subnets, it is not an internet gateway`,
      );
      return;
    }
    const dup = prefixes.find(
      (q) => q.family === r.prefix.family && q.start <= r.prefix.end && r.prefix.start <= q.end,
    );
    if (dup) {
      c.err(cidrPath(i), `${r.prefix.text} overlaps ${dup.text}, already listed for this subnet`);
      return;
    }
    prefixes.push(r.prefix);
    writtenIndex.set(r.prefix, i);
  });
  if (Array.isArray(f.cidr) && f.cidr.length === 0) c.err([...p, 'cidr'], 'cidr must list at least one prefix');
  return prefixes;
}

function checkVia(c: Checker, f: Raw, p: PathSegment[], zone: string | undefined, ctx: SubnetContext): string[] {
  const via = c.stringList(f.via, [...p, 'via'], 'via');
  if (Array.isArray(f.via) && f.via.length === 0) c.err([...p, 'via'], 'via must name at least one agent');
  const viaPath = (i: number): PathSegment[] => (Array.isArray(f.via) ? [...p, 'via', i] : [...p, 'via']);
  const seenVia = new Set<string>();
  via.forEach((a, i) => {
    if (seenVia.has(a)) c.err(viaPath(i), `agent "${a}" is listed twice in via`);
    seenVia.add(a);
    if (ctx.isAgentListKnown && !ctx.knownAgents.has(a)) {
      c.err(viaPath(i), () => `unknown agent "${a}"${didYouMean(a, ctx.knownAgents)}`);
    } else if (zone !== undefined && ctx.zoneNames.has(zone)) {
      const fa = ctx.fileAgents.get(a);
      if (fa && !fa.zones.includes(zone))
        c.err(viaPath(i), `agent "${a}" sits on zone(s) ${fa.zones.join(', ') || '(none)'}, not on "${zone}"`);
    }
  });
  return via;
}

/** Virtual gateway: an address inside one of the subnet's prefixes, one per family ("ADDR/LEN", IPv4 first). */
function checkGateways(c: Checker, f: Raw, p: PathSegment[], prefixes: readonly ParsedPrefix[]): string[] {
  const gateways: string[] = [];
  const gatewayTexts =
    f.gateway === undefined || f.gateway === null ? [] : c.stringList(f.gateway, [...p, 'gateway'], 'gateway');
  if (Array.isArray(f.gateway) && f.gateway.length === 0)
    c.err([...p, 'gateway'], 'gateway must give an address (or be left out)');
  const gatewayPath = (i: number): PathSegment[] =>
    Array.isArray(f.gateway) ? [...p, 'gateway', i] : [...p, 'gateway'];
  const gatewayFamilies = new Set<number>();
  gatewayTexts.forEach((g, i) => {
    const a = parseAddress(g);
    if (a === undefined) {
      c.err(gatewayPath(i), `gateway "${g}" is not an IP address (write it without a prefix length, e.g. 10.20.1.1)`);
      return;
    }
    if (gatewayFamilies.has(a.family)) {
      c.err(gatewayPath(i), `a subnet has at most one IPv${a.family} gateway; ${a.text} is a second one`);
      return;
    }
    gatewayFamilies.add(a.family);
    const within = prefixes.find((q) => containsAddress(q, a.family, a.value));
    if (within === undefined) {
      c.err(
        gatewayPath(i),
        `gateway ${a.text} is not inside the subnet's cidr (${prefixes.map((q) => q.text).join(', ') || 'none'})`,
      );
      return;
    }
    if (a.value === within.start && within.start !== within.end) {
      c.err(
        gatewayPath(i),
        `gateway ${a.text} is the network address of ${within.text}; use a host address such as the first one`,
      );
      return;
    }
    if (a.family === 4 && a.value === within.end && within.length < 31) {
      c.err(gatewayPath(i), `gateway ${a.text} is the broadcast address of ${within.text}`);
      return;
    }
    gateways.push(`${a.text}/${within.length}`);
  });
  return gateways.sort((x, y) => (x.includes(':') === y.includes(':') ? 0 : x.includes(':') ? 1 : -1));
}

/**
 * Overlapping subnets (in overlay space: mapped prefixes where mapped) are allowed only when they
 * are in the same zone and have the same `via` (they then always move together). Prefixes nest or are disjoint, so a sweep with a stack of the
 * enclosing prefixes finds every overlapping pair in O(n log n + pairs).
 */
function checkOverlaps(
  c: Checker,
  subnets: Subnet[],
  parsed: Map<string, ParsedPrefix[]>,
  writtenIndex: Map<ParsedPrefix, number>,
  isCidrList: ReadonlySet<string>,
  mappedNames: ReadonlySet<string>,
): void {
  const items: Array<{ p: ParsedPrefix; subnet: Subnet; index: number }> = [];
  for (const s of subnets)
    (parsed.get(s.name) ?? []).forEach((p) => items.push({ p, subnet: s, index: writtenIndex.get(p) ?? 0 }));
  items.sort(
    (a, b) =>
      a.p.family - b.p.family ||
      (a.p.start < b.p.start ? -1 : a.p.start > b.p.start ? 1 : a.p.length - b.p.length) ||
      (a.subnet.name < b.subnet.name ? -1 : 1),
  );
  const stack: typeof items = [];
  const reported = new Set<string>();
  for (const it of items) {
    for (let top = stack.at(-1); top !== undefined; top = stack.at(-1)) {
      if (top.p.family === it.p.family && top.p.end >= it.p.start) break;
      stack.pop();
    }
    for (const outer of stack) {
      if (outer.subnet.name === it.subnet.name) continue;
      const a = outer.subnet;
      const b = it.subnet;
      const key = `${a.name}\u0000${b.name}`;
      if (reported.has(key)) continue;
      let why: string | undefined;
      if (a.zone !== b.zone) why = `they are in different zones (${a.zone}, ${b.zone})`;
      else if (a.via.join(',') !== b.via.join(','))
        why = `they are served by different agents (via ${a.via.join(', ')} vs ${b.via.join(', ')})`;
      if (why) {
        reported.add(key);
        const isMapped = mappedNames.has(b.name);
        const field = isMapped ? 'map-to' : 'cidr';
        const cidrPath: PathSegment[] =
          isCidrList.has(b.name) || (isMapped && it.index > 0)
            ? ['subnets', b.name, field, it.index]
            : ['subnets', b.name, field];
        const what = (s: Subnet, t: string): string =>
          `${mappedNames.has(s.name) ? `map-to ${t}` : t} of subnet "${s.name}"`;
        const hint =
          mappedNames.has(a.name) || mappedNames.has(b.name)
            ? 'choose a map-to prefix no other subnet uses'
            : `give one of them (or both) \`map-to: <an unused prefix of the same length>\` so the rest of the overlay knows it by a unique prefix`;
        c.err(
          cidrPath,
          `${what(b, it.p.text)} overlaps ${what(a, outer.p.text)} and ${why}: the overlay cannot route overlapping space; ${hint}`,
        );
      }
    }
    stack.push(it);
  }
}
