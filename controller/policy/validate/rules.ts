// The rules section: name, from/to, ports (with the zone-crossing governance check) and probes;
// then, once the document is whole, the paths each rule needs and the probes' verdicts.
import { PolicyEvaluator } from '../evaluate.js';
import { didYouMean, isValidName } from '../names.js';
import type { PathSegment } from '../parse.js';
import { possiblePath } from '../paths.js';
import { parsePortSpec } from '../ports.js';
import { parseAddress, type ParsedPrefix } from '../prefixes.js';
import type { NameResolver } from '../resolve.js';
import type { Policy, PolicyAgent, PortSpec, Rule, RuleProbe, Subnet, SubnetName } from '../types.js';
import { typeName, type Checker, type Raw } from './checker.js';
import { checkWindow } from './window.js';

const RULE_KEYS = ['name', 'from', 'to', 'ports', 'description', 'ticket', 'probes', 'not-before', 'not-after'];
const PROBE_KEYS = ['from', 'to', 'port', 'proto', 'expect'];

/** What the rules section checks against. */
export interface RuleContext {
  subnetNames: ReadonlySet<string>;
  groupNames: ReadonlySet<string>;
  resolver: NameResolver;
  zoneOf: ReadonlyMap<string, string>;
  parsedCidrs: ReadonlyMap<string, ParsedPrefix[]>;
  /** The checker's clock (`policy check`): a `not-after` at or before it is an error. Absent: not checked. */
  nowMs?: number;
}

export interface RuleSection {
  rules: Rule[];
  /** Where each rule's probes were written, by rule and probe index. */
  probePaths: PathSegment[][][];
}

export function checkRules(c: Checker, raw: unknown, ctx: RuleContext): RuleSection {
  const rules: Rule[] = [];
  const probePaths: PathSegment[][][] = [];
  const ruleNames = new Map<string, number>();
  const refNames = [...ctx.subnetNames, ...ctx.groupNames];
  c.list(raw, ['rules'], 'rules').forEach((r, ri) => {
    const p: PathSegment[] = ['rules', ri];
    const f = c.fields(r, p, RULE_KEYS, ['name', 'from', 'to', 'ports'], `rule ${ri + 1}`);
    if (!f) return;
    const name = typeof f.name === 'string' ? f.name : '';
    if (f.name !== undefined && typeof f.name !== 'string')
      c.err([...p, 'name'], `name must be text; got ${typeName(f.name)}`);
    if (name !== '' && !isValidName(name))
      c.err(
        [...p, 'name'],
        `rule name "${name}" is invalid: use lowercase letters, digits and hyphens (1-63 characters)`,
      );
    if (name !== '') {
      const first = ruleNames.get(name);
      if (first !== undefined) c.err([...p, 'name'], `duplicate rule name "${name}" (also rules[${first}])`);
      else ruleNames.set(name, ri);
    }
    const side = (key: 'from' | 'to'): string[] => {
      const list = c.stringList(f[key], [...p, key], key);
      if (Array.isArray(f[key]) && (f[key] as unknown[]).length === 0)
        c.err([...p, key], `${key} must name at least one subnet or group`);
      list.forEach((n, i) => {
        if (!ctx.subnetNames.has(n) && !ctx.groupNames.has(n)) {
          c.err(
            Array.isArray(f[key]) ? [...p, key, i] : [...p, key],
            () => `unknown subnet or group "${n}"${didYouMean(n, refNames)}`,
          );
        }
      });
      return list;
    };
    const from = side('from');
    const to = side('to');
    for (const n of new Set(from)) {
      if (to.includes(n))
        c.err(
          [...p, 'to'],
          `rule goes from and to the same ${ctx.subnetNames.has(n) ? 'subnet' : 'group'} "${n}": traffic inside a subnet never crosses Crosslink`,
        );
    }
    const ports = checkPorts(c, f, p);
    const description = c.optString(f, 'description', p);
    const ticket = c.optString(f, 'ticket', p);
    checkTicket(c, p, ports, ticket, from, to, ctx);
    const probes = checkProbes(c, f, p, name, from, ctx);
    probePaths.push(probes.paths);
    const rule: Rule = { name, from, to, ports, probes: probes.probes };
    if (description !== undefined) rule.description = description;
    if (ticket !== undefined) rule.ticket = ticket;
    Object.assign(rule, checkWindow(c, f, p, name, ctx.nowMs));
    rules.push(rule);
  });
  return { rules, probePaths };
}

function checkPorts(c: Checker, f: Raw, p: PathSegment[]): PortSpec[] {
  const ports: PortSpec[] = [];
  const portsRaw = f.ports;
  const portList = Array.isArray(portsRaw) ? portsRaw : portsRaw === undefined || portsRaw === null ? [] : [portsRaw];
  if (Array.isArray(portsRaw) && portsRaw.length === 0)
    c.err([...p, 'ports'], 'ports must list at least one entry (use "any" for all traffic)');
  portList.forEach((x, i) => {
    const r = parsePortSpec(x);
    if (r.ok) ports.push(r.spec);
    else c.err(Array.isArray(portsRaw) ? [...p, 'ports', i] : [...p, 'ports'], r.message);
  });
  return ports;
}

/** Governance: any-port access between zones must be approved by a change reference. */
function checkTicket(
  c: Checker,
  p: PathSegment[],
  ports: PortSpec[],
  ticket: string | undefined,
  from: string[],
  to: string[],
  ctx: RuleContext,
): void {
  if (!ports.some((x) => x.protocol === 'any') || (ticket !== undefined && ticket.trim() !== '')) return;
  const fz = new Set(ctx.resolver.resolveAll(from).map((s) => ctx.zoneOf.get(s)));
  const tz = new Set(ctx.resolver.resolveAll(to).map((s) => ctx.zoneOf.get(s)));
  const crossing = [...fz].flatMap((a) => [...tz].filter((b) => b !== a).map((b) => `${a} -> ${b}`));
  if (crossing.length > 0) {
    c.err(
      [...p, 'ports'],
      `rule crosses zones (${crossing.sort()[0]}) with ports "any": add a "ticket" (the change reference that approved it) or list the ports`,
    );
  }
}

/** A rule's probes (checked against the policy once everything else is valid: checkProbeVerdicts). */
function checkProbes(
  c: Checker,
  f: Raw,
  p: PathSegment[],
  name: string,
  from: string[],
  ctx: RuleContext,
): { probes: RuleProbe[]; paths: PathSegment[][] } {
  const probes: RuleProbe[] = [];
  const paths: PathSegment[][] = [];
  c.list(f.probes, [...p, 'probes'], 'probes').forEach((pr, pi) => {
    const pp: PathSegment[] = [...p, 'probes', pi];
    const pf = c.fields(pr, pp, PROBE_KEYS, ['to'], `probe ${pi + 1} of rule "${name}"`);
    if (!pf) return;
    const flow = c.flow(pf, pp, true);
    if (!flow) return;
    const toAddr = typeof pf.to === 'string' ? parseAddress(pf.to) : undefined;
    if (!toAddr) {
      c.err(
        [...pp, 'to'],
        `probe target must be an IP address (the host the probe connects to); got ${typeName(pf.to)}`,
      );
      return;
    }
    const hasFamily = (s: string): boolean => (ctx.parsedCidrs.get(s) ?? []).some((x) => x.family === toAddr.family);
    let src: string | undefined;
    const resolvedFrom = ctx.resolver.resolveAll(from);
    if (pf.from !== undefined && pf.from !== null) {
      if (typeof pf.from !== 'string' || !resolvedFrom.includes(pf.from as SubnetName)) {
        c.err(
          [...pp, 'from'],
          () =>
            `probe "from" must be a subnet of the rule's from (${resolvedFrom.join(', ') || 'none'}); got ${typeName(pf.from)}${typeof pf.from === 'string' ? didYouMean(pf.from, resolvedFrom) : ''}`,
        );
        return;
      }
      src = pf.from;
    } else {
      // First source subnet that has a prefix of the target's family.
      src = resolvedFrom.find(hasFamily);
      if (src === undefined && resolvedFrom.length > 0) {
        c.err(
          [...pp, 'to'],
          `no subnet in the rule's from has an IPv${toAddr.family} prefix to probe ${toAddr.text} from`,
        );
        return;
      }
    }
    if (src === undefined) return;
    if (!hasFamily(src)) {
      c.err([...pp, 'from'], `subnet "${src}" has no IPv${toAddr.family} prefix to probe ${toAddr.text} from`);
      return;
    }
    const probe: RuleProbe = {
      from: src as SubnetName,
      to: toAddr.text,
      proto: flow.proto === 'any' ? 'icmp' : flow.proto,
      expect: flow.expect,
    };
    if (flow.port !== undefined) probe.port = flow.port;
    probes.push(probe);
    paths.push(pp);
  });
  return { probes, paths };
}

/**
 * Every pair of boxes a rule makes peers (any box of a `via`, since a standby may serve) must be
 * able to reach each other: a shared underlay or a relay on one underlay of each. Boxes are
 * grouped by their underlay set first, so a rule between two groups of thousands of boxes checks
 * a handful of set pairs, not every pair.
 */
export function checkPaths(
  c: Checker,
  rules: Rule[],
  resolver: NameResolver,
  subnets: Subnet[],
  fileAgents: ReadonlyMap<string, PolicyAgent>,
  nonConsentingRelays?: Iterable<string>,
): void {
  const refused = new Set(nonConsentingRelays ?? []);
  const relays = [...fileAgents.values()].filter((a) => a.isRelay && a.underlays.length >= 2 && !refused.has(a.name));
  const refusing = [...fileAgents.values()].filter((a) => a.isRelay && refused.has(a.name));
  const viaOf = new Map(subnets.map((s) => [s.name as string, s.via]));
  const verdicts = new Map<string, string | undefined>();
  /** One agent per underlay set among the `via`s of a rule's side. */
  const side = (names: string[]): Map<string, PolicyAgent> => {
    const bySet = new Map<string, PolicyAgent>();
    for (const s of resolver.resolveAll(names)) {
      for (const a of viaOf.get(s) ?? []) {
        const agent = fileAgents.get(a);
        // Agents known only live (not in the file) are checked against their endpoints at apply.
        if (!agent || agent.underlays.length === 0) continue;
        const k = agent.underlays.join(',');
        if (!bySet.has(k)) bySet.set(k, agent);
      }
    }
    return bySet;
  };
  const verdict = (a: PolicyAgent, b: PolicyAgent): string | undefined => {
    const why = possiblePath(a, b, relays);
    const wouldServe = refusing.filter((r) => possiblePath(a, b, [r]) === undefined).map((r) => r.name);
    if (why === undefined || wouldServe.length === 0) return why;
    return `${a.name} (${a.underlays.join(', ')}) and ${b.name} (${b.underlays.join(', ')}) to reach each other, but they share no underlay and the relay${wouldServe.length > 1 ? 's' : ''} that would join them (${wouldServe.join(', ')}) ha${wouldServe.length > 1 ? 've' : 's'} not consented: start ${wouldServe.length > 1 ? 'their agents' : 'its agent'} with --relay`;
  };
  rules.forEach((rule, ri) => {
    const from = side(rule.from);
    const to = side(rule.to);
    const reported = new Set<string>();
    for (const [ka, a] of from) {
      for (const [kb, b] of to) {
        if (a.name === b.name) continue;
        const key = `${ka}|${kb}`;
        if (!verdicts.has(key)) verdicts.set(key, verdict(a, b));
        const why = verdicts.get(key);
        if (why !== undefined && !reported.has(key)) {
          reported.add(key);
          c.err(['rules', ri], `rule "${rule.name}" needs ${why}`);
        }
      }
    }
  });
}

/** Probes must agree with the policy itself: a probe the policy refuses would only ever fail. */
export function checkProbeVerdicts(c: Checker, policy: Policy, probePaths: PathSegment[][][]): void {
  const ev = new PolicyEvaluator(policy);
  policy.rules.forEach((rule, ri) => {
    rule.probes.forEach((probe, pi) => {
      const d = ev.evaluate(probe.from, probe.to, probe.proto, probe.port);
      if (d.decision !== probe.expect) {
        const what = probe.proto === 'icmp' ? 'icmp' : `${probe.proto}/${probe.port}`;
        const path = probePaths[ri]?.[pi] ?? ['rules', ri, 'probes', pi];
        c.err(
          path,
          probe.expect === 'allow'
            ? `probe ${what} from ${probe.from} to ${probe.to} expects allow, but the policy denies it: ${d.reason}`
            : `probe ${what} from ${probe.from} to ${probe.to} expects deny, but the policy allows it (${d.reason})`,
        );
      }
    });
  });
}
