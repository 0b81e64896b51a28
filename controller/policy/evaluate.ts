// What-if: would the policy allow a new connection from `src` to `dst`? Policy-level only (it does not
// look at which agent serves what); the compiler turns the same decisions into per-box firewalls.
import { CrosslinkError } from '../../lib/errors.js';
import { didYouMean } from './names.js';
import { formatPortSpec, portSpecMatches } from './ports.js';
import { containsAddress, parseAddress, prefixContains, type ParsedPrefix, PrefixCache } from './prefixes.js';
import { NameResolver } from './resolve.js';
import type { Policy, Rule } from './types.js';

export type EvalProtocol = 'tcp' | 'udp' | 'icmp' | 'any';

export interface Decision {
  decision: 'allow' | 'deny';
  /** The first rule (in document order) that allows the flow. */
  rule?: string;
  /** One line for a human. */
  reason: string;
}

interface Endpoint {
  label: string;
  /** Subnets the endpoint belongs to. */
  subnets: Set<string>;
  isAddress: boolean;
  family?: 4 | 6;
  value?: bigint;
}

interface ResolvedRule {
  rule: Rule;
  from: Set<string>;
  to: Set<string>;
}

/** Built once per policy; evaluate() is then cheap. */
export class PolicyEvaluator {
  private readonly rules: ResolvedRule[];
  private readonly subnetPrefixes: Array<{ name: string; prefixes: ParsedPrefix[] }>;
  private readonly subnetNames: Set<string>;
  /** The address families of each subnet's prefixes. */
  private readonly families: Map<string, Set<4 | 6>>;

  constructor(private readonly policy: Policy) {
    const resolver = new NameResolver(policy);
    const cache = new PrefixCache();
    this.rules = policy.rules.map((rule) => ({
      rule,
      from: new Set(resolver.resolveAll(rule.from)),
      to: new Set(resolver.resolveAll(rule.to)),
    }));
    this.subnetPrefixes = policy.subnets.map((s) => ({ name: s.name, prefixes: s.cidrs.map((c) => cache.get(c)) }));
    this.subnetNames = new Set(policy.subnets.map((s) => s.name));
    this.families = new Map(this.subnetPrefixes.map((s) => [s.name, new Set(s.prefixes.map((p) => p.family))]));
  }

  /** Throws CrosslinkError(invalid_request) if `text` is neither an address nor a subnet name. */
  endpoint(text: string): Endpoint {
    const addr = parseAddress(text);
    if (addr) {
      const subnets = new Set<string>();
      for (const s of this.subnetPrefixes)
        if (s.prefixes.some((p) => containsAddress(p, addr.family, addr.value))) subnets.add(s.name);
      const label = subnets.size > 0 ? `${addr.text} (${[...subnets].sort().join(', ')})` : addr.text;
      return { label, subnets, isAddress: true, family: addr.family, value: addr.value };
    }
    if (this.subnetNames.has(text)) {
      // A named subnet also belongs to any subnet that contains it whole (same-agent supernets).
      const own = this.subnetPrefixes.find((s) => s.name === text);
      const subnets = new Set<string>([text]);
      if (own) {
        for (const s of this.subnetPrefixes) {
          if (s.name !== text && own.prefixes.every((p) => s.prefixes.some((o) => prefixContains(o, p))))
            subnets.add(s.name);
        }
      }
      return { label: text, subnets, isAddress: false };
    }
    throw new CrosslinkError(
      'invalid_request',
      `"${text}" is neither an IP address nor a subnet of the policy${didYouMean(text, this.subnetNames)}`,
    );
  }

  evaluate(src: string, dst: string, proto: EvalProtocol, port?: number): Decision {
    const s = this.endpoint(src);
    const d = this.endpoint(dst);
    const mixed = familyMismatch(src, dst, (name) => this.families.get(name));
    if (mixed !== null) throw new CrosslinkError('invalid_request', mixed);
    const what = proto === 'any' ? 'any traffic' : proto === 'icmp' || port === undefined ? proto : `${proto}/${port}`;
    if (s.subnets.size === 0) return { decision: 'deny', reason: `${s.label} is not in any subnet of the policy` };
    if (d.subnets.size === 0) return { decision: 'deny', reason: `${d.label} is not in any subnet of the policy` };
    if (this.isSameSubnet(s, d)) {
      return {
        decision: 'deny',
        reason: `${s.label} and ${d.label} are in the same subnet: the traffic does not cross Crosslink`,
      };
    }
    let nearMiss: ResolvedRule | undefined;
    for (const r of this.rules) {
      const fromHit = firstCommon(r.from, s.subnets);
      const toHit = firstCommon(r.to, d.subnets);
      if (fromHit === undefined || toHit === undefined) continue;
      if (r.rule.ports.some((p) => portSpecMatches(p, proto, port))) {
        return {
          decision: 'allow',
          rule: r.rule.name,
          reason: `allowed by rule "${r.rule.name}" (${r.rule.ports.map(formatPortSpec).join(', ')} from ${fromHit} to ${toHit})`,
        };
      }
      nearMiss ??= r;
    }
    const hint = nearMiss
      ? `; rule "${nearMiss.rule.name}" allows only ${nearMiss.rule.ports.map(formatPortSpec).join(', ')} between them`
      : '';
    return { decision: 'deny', reason: `no rule allows ${what} from ${s.label} to ${d.label}${hint}` };
  }

  private isSameSubnet(s: Endpoint, d: Endpoint): boolean {
    if (!s.isAddress && !d.isAddress) return s.label === d.label;
    // An address pair inside one subnet never reaches the box.
    if (s.isAddress && d.isAddress && s.family === d.family) {
      for (const sub of this.subnetPrefixes) {
        if (
          sub.prefixes.some(
            (p) =>
              containsAddress(p, s.family as 4 | 6, s.value as bigint) &&
              containsAddress(p, d.family as 4 | 6, d.value as bigint),
          )
        )
          return true;
      }
      return false;
    }
    // Address vs. subnet name: the address is inside that named subnet.
    const [addr, named] = s.isAddress ? [s, d] : [d, s];
    return addr.subnets.has(named.label);
  }
}

const familyOf = (text: string): 4 | 6 | undefined => parseAddress(text)?.family;

/**
 * Why no flow can go from `from` to `to` (each an address or a subnet name) because their address
 * families differ, or null. A packet is IPv4 or IPv6 end to end: an IPv6 source never reaches an
 * IPv4 destination, so "allow" would be a wrong answer. `familiesOf(name)`: the families of a
 * named subnet's prefixes (undefined: not a subnet; then nothing is said here).
 */
export function familyMismatch(
  from: string,
  to: string,
  familiesOf: (subnet: string) => ReadonlySet<4 | 6> | undefined,
): string | null {
  const fa = familyOf(from);
  const ta = familyOf(to);
  if (fa !== undefined && ta !== undefined) {
    return fa === ta ? null : `a flow cannot mix IPv${fa} and IPv${ta}: from ${from} is IPv${fa}, to ${to} is IPv${ta}`;
  }
  if (fa !== undefined || ta !== undefined) {
    const [family, addr, name, side] = fa !== undefined ? [fa, from, to, 'to'] : [ta!, to, from, 'from'];
    const fams = familiesOf(name);
    if (fams === undefined || fams.has(family)) return null;
    return `a flow cannot mix IPv4 and IPv6: ${addr} is IPv${family}, and ${side} subnet "${name}" has no IPv${family} prefix`;
  }
  const ff = familiesOf(from);
  const tf = familiesOf(to);
  if (ff === undefined || tf === undefined || [...ff].some((f) => tf.has(f))) return null;
  return `subnets "${from}" (IPv${[...ff].join('/IPv')}) and "${to}" (IPv${[...tf].join('/IPv')}) share no address family: no flow can go between them`;
}

function firstCommon(a: Set<string>, b: Set<string>): string | undefined {
  let best: string | undefined;
  const [small, big] = a.size <= b.size ? [a, b] : [b, a];
  for (const x of small) if (big.has(x) && (best === undefined || x < best)) best = x;
  return best;
}

const evaluators = new WeakMap<Policy, PolicyEvaluator>();

/** Evaluates one flow. `src`/`dst` are addresses or subnet names. Throws invalid_request on an unknown name. */
export function evaluate(policy: Policy, src: string, dst: string, proto: EvalProtocol, port?: number): Decision {
  let ev = evaluators.get(policy);
  if (!ev) {
    ev = new PolicyEvaluator(policy);
    evaluators.set(policy, ev);
  }
  return ev.evaluate(src, dst, proto, port);
}
