// The random policies of the compiler's property tests (fast-check): agents, subnets with standbys
// (serving groups of two and three), nested subnets, groups, rules, health, two underlays and relays;
// and the prefix helpers their oracles use.
import fc from 'fast-check';
import { parsePrefixStrict, type ParsedPrefix } from './prefixes.js';
import type { Inventory, Policy } from './types.js';
import { validatePolicy } from './validate.js';

export const PORTS = ['tcp/443', 'udp/53', 'tcp/8000-8100', 'icmp', 'any', 'tcp'] as const;

export const arbSpec = fc.record({
  agentCount: fc.integer({ min: 2, max: 6 }),
  subnets: fc.array(
    fc.record({
      agent: fc.nat(),
      standby: fc.option(fc.nat(), { nil: undefined }),
      // A third box in via: serving groups of three, reordered by health flips.
      standby2: fc.option(fc.nat(), { nil: undefined, freq: 3 }),
      zone: fc.constantFrom('n3', 'psn'),
      length: fc.integer({ min: 16, max: 28 }),
      hasV6: fc.boolean(),
      isNested: fc.boolean(),
      isMasquerade: fc.boolean(),
    }),
    { minLength: 2, maxLength: 9 },
  ),
  groups: fc.array(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), { maxLength: 3 }),
  rules: fc.array(
    fc.record({
      from: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
      to: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
      ports: fc.subarray([...PORTS], { minLength: 1, maxLength: 3 }),
    }),
    { minLength: 1, maxLength: 8 },
  ),
  unhealthy: fc.array(fc.nat(), { maxLength: 2 }),
  notAdvertising: fc.array(fc.nat(), { maxLength: 1 }),
  // Two underlays with no route between them: each agent on one or both; some of those on both
  // relay (agent 0 always sits on both and relays, so every pair has a path).
  isTwoUnderlays: fc.boolean(),
  underlayOf: fc.array(fc.constantFrom('n3-wan', 'psn-wan', 'both'), { minLength: 6, maxLength: 6 }),
  isRelay: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
  isRefusing: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
});
export type Spec = typeof arbSpec extends fc.Arbitrary<infer T> ? T : never;

export interface World {
  policy: Policy;
  inventory: Inventory;
  raw: Record<string, unknown>;
}

/** The element at `i` modulo the length (the specs pick by any number); throws on an empty list. */
export function at<T>(list: readonly T[], i: number): T {
  const x = list[i % list.length];
  if (x === undefined) throw new Error(`pick ${i} from an empty list`);
  return x;
}

export function build(spec: Spec): World {
  const n = spec.agentCount;
  const agentNames = Array.from({ length: n }, (_, i) => `a${i}`);
  const subnets: Record<string, { cidr: string[]; zone: string; via: string[]; masquerade: boolean }> = {};
  const region: Array<{ base: number; length: number; isNested: boolean }> = [];
  spec.subnets.forEach((s, i) => {
    const prev = region[i - 1];
    const prevName = `s${i - 1}`;
    if (s.isNested && prev && !prev.isNested && prev.length <= 28) {
      // A subnet inside the previous one: same zone and via, as validation requires.
      const p = subnets[prevName];
      if (!p) throw new Error(`${prevName} was built before s${i}`);
      subnets[`s${i}`] = {
        cidr: [`10.${prev.base}.0.0/${prev.length + 2}`],
        zone: p.zone,
        via: p.via,
        masquerade: s.isMasquerade,
      };
      region.push({ base: prev.base, length: prev.length + 2, isNested: true });
      return;
    }
    const via = [at(agentNames, s.agent)];
    if (s.standby !== undefined && s.standby % n !== s.agent % n) via.push(at(agentNames, s.standby));
    const third = s.standby2 !== undefined ? at(agentNames, s.standby2) : undefined;
    if (via.length === 2 && third !== undefined && !via.includes(third)) via.push(third);
    const cidr = [`10.${i}.0.0/${s.length}`];
    if (s.hasV6) cidr.push(`fd00:${i}::/64`);
    subnets[`s${i}`] = { cidr, zone: s.zone, via, masquerade: s.isMasquerade };
    region.push({ base: i, length: s.length, isNested: false });
  });
  const subnetNames = Object.keys(subnets);
  const groups: Record<string, string[]> = {};
  spec.groups.forEach((members, j) => {
    groups[`g${j}`] = [...new Set(members.map((m) => (j > 0 && m % 3 === 0 ? `g${m % j}` : at(subnetNames, m))))];
  });
  const names = [...subnetNames, ...Object.keys(groups)];
  const rules: unknown[] = [];
  spec.rules.forEach((r, k) => {
    const from = [...new Set(r.from.map((x) => names[x % names.length]))];
    const to = [...new Set(r.to.map((x) => names[x % names.length]))].filter((x) => !from.includes(x));
    if (to.length > 0) rules.push({ name: `r${k}`, from, to, ports: r.ports, ticket: 'CHG-1' });
  });
  const underlaysOf = (i: number): string[] =>
    i === 0 || spec.underlayOf[i] === 'both' ? ['n3-wan', 'psn-wan'] : [spec.underlayOf[i]!];
  const agents = Object.fromEntries(
    agentNames.map((a, i) => [
      a,
      spec.isTwoUnderlays
        ? {
            zones: ['n3', 'psn'],
            underlays: underlaysOf(i),
            ...(underlaysOf(i).length === 2 && (i === 0 || spec.isRelay[i]) ? { relay: true } : {}),
          }
        : { zones: ['n3', 'psn'] },
    ]),
  );
  const raw = {
    version: 1,
    ...(spec.isTwoUnderlays ? { underlays: { 'n3-wan': {}, 'psn-wan': {} } } : {}),
    zones: { n3: {}, psn: {} },
    agents,
    subnets,
    groups,
    rules,
  };
  const v = validatePolicy(raw);
  if (!v.policy) throw new Error(`generator made an invalid policy: ${JSON.stringify(v.errors)}`);
  const unhealthy = new Set(spec.unhealthy.map((x) => agentNames[x % n]));
  const notAdvertising = new Set(spec.notAdvertising.map((x) => agentNames[x % n]));
  const inventory: Inventory = {
    agents: agentNames.map((name, i) => ({
      name: name as never,
      publicKey: `key-${name}`,
      endpoint: `${name}.invalid:51820`,
      overlayAddress: `100.64.0.${i + 1}/10`,
      advertised: notAdvertising.has(name)
        ? []
        : v.policy.subnets.filter((s) => s.via.includes(name as never)).flatMap((s) => s.cidrs),
      isHealthy: !unhealthy.has(name),
      ...(spec.isTwoUnderlays
        ? {
            endpoints: underlaysOf(i).map((u) => ({
              underlay: u,
              endpoint: `10.255.${u === 'n3-wan' ? 1 : 2}.${i + 1}:51820`,
            })),
            // Agent 0 always consents; the others may refuse (their pairs fall back to agent 0).
            isRelay: i === 0 || !spec.isRefusing[i],
          }
        : {}),
    })),
  };
  return { policy: v.policy, inventory, raw };
}

export const P = (text: string): ParsedPrefix => {
  const r = parsePrefixStrict(text);
  if (!r.ok) throw new Error(`bad prefix in output: ${text}`);
  return r.prefix;
};
export const containsAddr = (texts: readonly string[], addr: ParsedPrefix): boolean =>
  texts.some((x) => {
    const p = P(x);
    return p.family === addr.family && p.start <= addr.start && addr.end <= p.end;
  });

/** Independent group expansion, for the oracle. */
export function expand(policy: Policy, names: string[]): Set<string> {
  const out = new Set<string>();
  const walk = (n: string): void => {
    if (policy.subnets.some((s) => s.name === n)) out.add(n);
    else for (const m of policy.groups.find((g) => g.name === n)?.members ?? []) walk(m);
  };
  names.forEach(walk);
  return out;
}

export function hostOf(prefixText: string): ParsedPrefix {
  const p = P(prefixText);
  const v = p.end > p.start ? p.start + 1n : p.start;
  return { ...p, start: v, end: v, length: p.family === 4 ? 32 : 128, text: '' };
}

export function addressText(p: ParsedPrefix): string {
  if (p.family === 4) {
    const n = Number(p.start);
    return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const hex = p.start.toString(16).padStart(32, '0');
  return hex.match(/.{4}/g)!.join(':');
}
