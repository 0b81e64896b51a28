// Raw document -> validated Policy, or every error at once, each with its path and line.
import type { ErrorDetail } from '../../lib/errors.js';
import { familyMismatch, PolicyEvaluator } from './evaluate.js';
import { didYouMean, isValidName } from './names.js';
import { formatPath, parsePolicyText, type PathSegment, type Position } from './parse.js';
import { parsePortSpec } from './ports.js';
import { containsAddress, parseAddress, parsePrefixStrict, type ParsedPrefix } from './prefixes.js';
import { NameResolver } from './resolve.js';
import { possiblePath } from './paths.js';
import { DEFAULT_UNDERLAY } from './types.js';
import type {
  AgentName, Group, Underlay, Policy, PolicyAgent, PolicyTest, PortSpec, Rule, RuleProbe, Subnet, SubnetName, Zone,
} from './types.js';

export interface ValidateOptions {
  /** Shortest prefix length a subnet may have (both families). Default 8. */
  minPrefixLength?: number;
  /** Agents the controller knows live; `via` may name these as well as the file's own agents. */
  knownAgents?: Iterable<string>;
  /**
   * Relays the policy may name whose enrolled box has not consented (its agent runs without
   * --relay): they carry nothing, so a flow that needs them has no path.
   */
  nonConsentingRelays?: Iterable<string>;
  /** Where a path is in the source text (parsePolicy() supplies it). */
  locate?: (path: readonly PathSegment[], isKey?: boolean) => Position | undefined;
}

export type ValidateResult = { policy: Policy; errors?: undefined } | { policy?: undefined; errors: ErrorDetail[] };

export const DEFAULT_MIN_PREFIX_LENGTH = 8;

const TOP_KEYS = ['version', 'underlays', 'zones', 'agents', 'subnets', 'groups', 'rules', 'tests'];
const ZONE_KEYS = ['description'];
const UNDERLAY_KEYS = ['description'];
const AGENT_KEYS = ['site', 'zones', 'underlays', 'relay', 'description'];
const SUBNET_KEYS = ['cidr', 'zone', 'via', 'masquerade', 'gateway', 'description'];
const GROUP_KEYS = ['members', 'description'];
const RULE_KEYS = ['name', 'from', 'to', 'ports', 'description', 'ticket', 'probes'];
const PROBE_KEYS = ['from', 'to', 'port', 'proto', 'expect'];
const TEST_KEYS = ['name', 'from', 'to', 'port', 'proto', 'expect'];

type Raw = Record<string, unknown>;

function isRecord(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Parse (YAML or JSON) and validate in one go. */
export function parsePolicy(text: string, opts: Omit<ValidateOptions, 'locate'> = {}): ValidateResult {
  const nul = text.indexOf('\u0000');
  if (nul >= 0) {
    const line = text.slice(0, nul).split('\n').length;
    return { errors: [{ path: '', line, message: 'this is not a text file (it holds a NUL byte): a policy is YAML or JSON text' }] };
  }
  const parsed = parsePolicyText(text);
  if (parsed.errors.length > 0) return { errors: limitErrors(parsed.errors) };
  return validatePolicy(parsed.value, { ...opts, locate: parsed.locate });
}

export function validatePolicy(raw: unknown, opts: ValidateOptions = {}): ValidateResult {
  const r = new Validator(opts).run(raw);
  return r.errors === undefined ? r : { errors: limitErrors(r.errors) };
}

/** At most this many errors are listed; a last one says how many more there were. */
export const MAX_ERRORS = 50;
const MAX_MESSAGE_CHARS = 300;

const clip = (s: string): string => (s.length <= MAX_MESSAGE_CHARS ? s : `${s.slice(0, MAX_MESSAGE_CHARS)}… (${s.length - MAX_MESSAGE_CHARS} more characters)`);

/** "3 errors", or "more than 50 errors" for a list limitErrors() cut short. */
export function describeErrorCount(errors: readonly ErrorDetail[]): string {
  if (errors.length > MAX_ERRORS) return `more than ${MAX_ERRORS} errors`;
  return `${errors.length} error${errors.length === 1 ? '' : 's'}`;
}

/** The first MAX_ERRORS errors, each message and path clipped, and a last line counting the rest:
 *  a damaged file must not answer with megabytes. */
export function limitErrors(errors: ErrorDetail[]): ErrorDetail[] {
  const shown = errors.slice(0, MAX_ERRORS).map((e) => (e.message.length > MAX_MESSAGE_CHARS || (e.path ?? '').length > MAX_MESSAGE_CHARS ? { ...e, ...(e.path !== undefined ? { path: clip(e.path) } : {}), message: clip(e.message) } : e));
  if (errors.length > MAX_ERRORS) {
    const more = errors.length - MAX_ERRORS;
    shown.push({ path: '', message: `and ${more} more error${more === 1 ? '' : 's'} (only the first ${MAX_ERRORS} are listed; fix these first)` });
  }
  return shown;
}

class Validator {
  private readonly errors: ErrorDetail[] = [];
  private readonly minPrefixLength: number;

  constructor(private readonly opts: ValidateOptions) {
    this.minPrefixLength = opts.minPrefixLength ?? DEFAULT_MIN_PREFIX_LENGTH;
  }

  private err(path: readonly PathSegment[], message: string, isKey = false): void {
    const pos = this.opts.locate?.(path, isKey);
    const d: ErrorDetail = { path: formatPath(path), message };
    if (pos) {
      d.line = pos.line;
      d.column = pos.column;
    }
    this.errors.push(d);
  }

  /** Checks a map's keys; reports unknown ones (with a suggestion) and missing required ones. */
  private fields(v: unknown, path: PathSegment[], allowed: string[], required: string[], what: string): Raw | undefined {
    if (!isRecord(v)) {
      this.err(path, `${what} must be a map with ${allowed.map((k) => `"${k}"`).join(', ')}; got ${typeName(v)}`);
      return undefined;
    }
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k)) this.err([...path, k], `unknown field "${k}" in ${what}${didYouMean(k, allowed)}`, true);
    }
    for (const k of required) {
      if (v[k] === undefined || v[k] === null) this.err(path, `${what} is missing "${k}"`);
    }
    return v;
  }

  private optString(v: Raw, key: string, path: PathSegment[]): string | undefined {
    const x = v[key];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'string' && typeof x !== 'number') {
      this.err([...path, key], `"${key}" must be text; got ${typeName(x)}`);
      return undefined;
    }
    return String(x);
  }

  /** A string or a list of strings -> list; reports each bad entry. */
  private stringList(x: unknown, path: PathSegment[], what: string): string[] {
    if (x === undefined || x === null) return [];
    if (typeof x === 'string') return [x];
    if (!Array.isArray(x)) {
      this.err(path, `${what} must be a name or a list of names; got ${typeName(x)}`);
      return [];
    }
    const out: string[] = [];
    x.forEach((item, i) => {
      if (typeof item === 'string') out.push(item);
      else this.err([...path, i], `${what} entries must be names; got ${typeName(item)}`);
    });
    return out;
  }

  private namedMap(v: unknown, path: PathSegment[], what: string): Array<[string, unknown]> {
    if (v === undefined || v === null) return [];
    if (!isRecord(v)) {
      this.err(path, `"${path[path.length - 1]}" must be a map of ${what} by name; got ${typeName(v)}`);
      return [];
    }
    const entries = Object.entries(v);
    for (const [name] of entries) {
      if (!isValidName(name)) this.err([...path, name], `${what} name "${name}" is invalid: use lowercase letters, digits and hyphens (1-63 characters)`, true);
    }
    return entries;
  }

  run(raw: unknown): ValidateResult {
    if (raw === undefined || raw === null) {
      this.err([], 'the document is empty; it needs at least "version: 1"');
      return { errors: this.errors };
    }
    const top = this.fields(raw, [], TOP_KEYS, ['version'], 'the policy document');
    if (!top) return { errors: this.errors };
    if (top.version !== undefined && top.version !== 1) this.err(['version'], `version must be 1; got ${JSON.stringify(top.version)}`);

    // --- underlays
    const underlays: Underlay[] = [];
    for (const [name, u] of this.namedMap(top.underlays, ['underlays'], 'underlay')) {
      const p: PathSegment[] = ['underlays', name];
      if (u === null || u === undefined) {
        underlays.push({ name, description: '' });
        continue;
      }
      const f = this.fields(u, p, UNDERLAY_KEYS, [], `underlay "${name}"`);
      underlays.push({ name, description: (f && this.optString(f, 'description', p)) ?? '' });
    }
    const underlayNames = underlays.map((u) => u.name);

    // --- zones
    const zones: Zone[] = [];
    for (const [name, z] of this.namedMap(top.zones, ['zones'], 'zone')) {
      const p: PathSegment[] = ['zones', name];
      if (z === null || z === undefined) {
        zones.push({ name, description: '' });
        continue;
      }
      const f = this.fields(z, p, ZONE_KEYS, [], `zone "${name}"`);
      zones.push({ name, description: (f && this.optString(f, 'description', p)) ?? '' });
    }
    const zoneNames = new Set(zones.map((z) => z.name));
    const checkZone = (zone: string, path: PathSegment[]): void => {
      if (!zoneNames.has(zone)) {
        const hint = zoneNames.size === 0 ? ' (declare it under "zones")' : didYouMean(zone, zoneNames);
        this.err(path, `unknown zone "${zone}"${hint}`);
      }
    };

    // --- agents
    const agents: PolicyAgent[] = [];
    for (const [name, a] of this.namedMap(top.agents, ['agents'], 'agent')) {
      const p: PathSegment[] = ['agents', name];
      const f = this.fields(a, p, AGENT_KEYS, ['zones'], `agent "${name}"`);
      if (!f) continue;
      const zs = this.stringList(f.zones, [...p, 'zones'], 'zones');
      zs.forEach((z, i) => checkZone(z, Array.isArray(f.zones) ? [...p, 'zones', i] : [...p, 'zones']));
      const site = this.optString(f, 'site', p);
      const agentUnderlays = this.agentUnderlays(f, p, name, underlayNames);
      let isRelay = false;
      if (f.relay !== undefined && f.relay !== null) {
        if (typeof f.relay !== 'boolean') this.err([...p, 'relay'], `relay must be true or false; got ${typeName(f.relay)}`);
        else isRelay = f.relay;
      }
      if (isRelay && agentUnderlays.length < 2) {
        this.err([...p, 'relay'], `agent "${name}" is a relay but sits on ${agentUnderlays.length === 0 ? 'no underlay' : `one underlay (${agentUnderlays[0]})`}: a relay joins two underlays; list them under underlays`);
      }
      const agent: PolicyAgent = { name: name as AgentName, zones: [...new Set(zs)].sort(), underlays: agentUnderlays, isRelay };
      if (site !== undefined) agent.site = site;
      agents.push(agent);
    }
    const fileAgents = new Map(agents.map((a) => [a.name as string, a]));
    const knownAgents = new Set<string>(fileAgents.keys());
    for (const a of this.opts.knownAgents ?? []) knownAgents.add(a);
    const isAgentListKnown = top.agents !== undefined || this.opts.knownAgents !== undefined;

    // --- subnets
    const subnets: Subnet[] = [];
    const parsedCidrs = new Map<string, ParsedPrefix[]>();
    const writtenIndex = new Map<ParsedPrefix, number>();
    for (const [name, s] of this.namedMap(top.subnets, ['subnets'], 'subnet')) {
      const p: PathSegment[] = ['subnets', name];
      const f = this.fields(s, p, SUBNET_KEYS, ['cidr', 'zone', 'via'], `subnet "${name}"`);
      if (!f) continue;
      const cidrTexts = this.stringList(f.cidr, [...p, 'cidr'], 'cidr');
      if (Array.isArray(f.cidr)) this.isCidrList.add(name);
      const cidrPath = (i: number): PathSegment[] => (Array.isArray(f.cidr) ? [...p, 'cidr', i] : [...p, 'cidr']);
      const prefixes: ParsedPrefix[] = [];
      cidrTexts.forEach((c, i) => {
        const r = parsePrefixStrict(c);
        if (!r.ok) {
          this.err(cidrPath(i), r.message);
          return;
        }
        if (r.prefix.length === 0) {
          this.err(cidrPath(i), `${r.prefix.text} is the whole ${r.prefix.family === 4 ? 'IPv4' : 'IPv6'} internet: Crosslink links named subnets, it is not an internet gateway`);
          return;
        }
        if (r.prefix.length < this.minPrefixLength) {
          this.err(cidrPath(i), `${r.prefix.text} is shorter than the minimum prefix length /${this.minPrefixLength}: Crosslink links named subnets, it is not an internet gateway`);
          return;
        }
        const dup = prefixes.findIndex((q) => q.family === r.prefix.family && q.start <= r.prefix.end && r.prefix.start <= q.end);
        if (dup >= 0) {
          this.err(cidrPath(i), `${r.prefix.text} overlaps ${prefixes[dup].text}, already listed for this subnet`);
          return;
        }
        prefixes.push(r.prefix);
        writtenIndex.set(r.prefix, i);
      });
      if (Array.isArray(f.cidr) && f.cidr.length === 0) this.err([...p, 'cidr'], 'cidr must list at least one prefix');
      const zone = typeof f.zone === 'string' ? f.zone : undefined;
      if (f.zone !== undefined && f.zone !== null && zone === undefined) this.err([...p, 'zone'], `zone must be a zone name; got ${typeName(f.zone)}`);
      if (zone !== undefined) checkZone(zone, [...p, 'zone']);
      const via = this.stringList(f.via, [...p, 'via'], 'via');
      if (Array.isArray(f.via) && f.via.length === 0) this.err([...p, 'via'], 'via must name at least one agent');
      const viaPath = (i: number): PathSegment[] => (Array.isArray(f.via) ? [...p, 'via', i] : [...p, 'via']);
      const seenVia = new Set<string>();
      via.forEach((a, i) => {
        if (seenVia.has(a)) this.err(viaPath(i), `agent "${a}" is listed twice in via`);
        seenVia.add(a);
        if (isAgentListKnown && !knownAgents.has(a)) {
          this.err(viaPath(i), `unknown agent "${a}"${didYouMean(a, knownAgents)}`);
        } else if (zone !== undefined && zoneNames.has(zone)) {
          const fa = fileAgents.get(a);
          if (fa && !fa.zones.includes(zone)) this.err(viaPath(i), `agent "${a}" sits on zone(s) ${fa.zones.join(', ') || '(none)'}, not on "${zone}"`);
        }
      });
      let masquerade = false;
      if (f.masquerade !== undefined && f.masquerade !== null) {
        if (typeof f.masquerade !== 'boolean') this.err([...p, 'masquerade'], `masquerade must be true or false; got ${typeName(f.masquerade)}`);
        else masquerade = f.masquerade;
      }
      // Virtual gateway: an address inside one of the subnet's prefixes, one per family.
      const gateways: string[] = [];
      const gatewayTexts = f.gateway === undefined || f.gateway === null ? [] : this.stringList(f.gateway, [...p, 'gateway'], 'gateway');
      if (Array.isArray(f.gateway) && f.gateway.length === 0) this.err([...p, 'gateway'], 'gateway must give an address (or be left out)');
      const gatewayPath = (i: number): PathSegment[] => (Array.isArray(f.gateway) ? [...p, 'gateway', i] : [...p, 'gateway']);
      const gatewayFamilies = new Set<number>();
      gatewayTexts.forEach((g, i) => {
        const a = parseAddress(g);
        if (a === undefined) {
          this.err(gatewayPath(i), `gateway "${g}" is not an IP address (write it without a prefix length, e.g. 10.20.1.1)`);
          return;
        }
        if (gatewayFamilies.has(a.family)) {
          this.err(gatewayPath(i), `a subnet has at most one IPv${a.family} gateway; ${a.text} is a second one`);
          return;
        }
        gatewayFamilies.add(a.family);
        const within = prefixes.find((q) => containsAddress(q, a.family, a.value));
        if (within === undefined) {
          this.err(gatewayPath(i), `gateway ${a.text} is not inside the subnet's cidr (${prefixes.map((q) => q.text).join(', ') || 'none'})`);
          return;
        }
        if (a.value === within.start && within.start !== within.end) {
          this.err(gatewayPath(i), `gateway ${a.text} is the network address of ${within.text}; use a host address such as the first one`);
          return;
        }
        if (a.family === 4 && a.value === within.end && within.length < 31) {
          this.err(gatewayPath(i), `gateway ${a.text} is the broadcast address of ${within.text}`);
          return;
        }
        gateways.push(`${a.text}/${within.length}`);
      });
      gateways.sort((x, y) => (x.includes(':') === y.includes(':') ? 0 : x.includes(':') ? 1 : -1));
      prefixes.sort((a, b) => a.family - b.family || (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
      parsedCidrs.set(name, prefixes);
      const subnet: Subnet = { name: name as SubnetName, cidrs: prefixes.map((x) => x.text), zone: zone ?? '', via: via as AgentName[], masquerade };
      if (gateways.length > 0) subnet.gateways = gateways;
      const description = this.optString(f, 'description', p);
      if (description !== undefined) subnet.description = description;
      subnets.push(subnet);
    }
    this.checkOverlaps(subnets, parsedCidrs, writtenIndex);
    const subnetNames = new Set(subnets.map((s) => s.name as string));

    // --- groups
    const groups: Group[] = [];
    for (const [name, g] of this.namedMap(top.groups, ['groups'], 'group')) {
      const p: PathSegment[] = ['groups', name];
      let membersRaw: unknown = g;
      let membersPath = p;
      let description: string | undefined;
      if (isRecord(g)) {
        const f = this.fields(g, p, GROUP_KEYS, ['members'], `group "${name}"`);
        membersRaw = f?.members;
        membersPath = [...p, 'members'];
        if (f) description = this.optString(f, 'description', p);
      }
      const members = this.stringList(membersRaw, membersPath, `group "${name}" members`);
      if (subnetNames.has(name)) this.err(p, `"${name}" is both a subnet and a group; rules could not tell which is meant`, true);
      const group: Group = { name, members };
      if (description !== undefined) group.description = description;
      groups.push(group);
      this.groupPaths.set(name, { path: membersPath, isList: Array.isArray(membersRaw) });
    }
    const groupNames = new Set(groups.map((g) => g.name));
    const refNames = [...subnetNames, ...groupNames];
    for (const g of groups) {
      const gp = this.groupPaths.get(g.name);
      g.members.forEach((m, i) => {
        if (!subnetNames.has(m) && !groupNames.has(m)) {
          const path = gp ? (gp.isList ? [...gp.path, i] : gp.path) : ['groups', g.name];
          this.err(path, `unknown subnet or group "${m}"${didYouMean(m, refNames)}`);
        }
      });
    }
    this.checkCycles(groups);

    // --- rules
    const rules: Rule[] = [];
    const ruleNames = new Map<string, number>();
    const resolver = new NameResolver({ subnets, groups });
    const zoneOf = new Map(subnets.map((s) => [s.name as string, s.zone]));
    if (top.rules !== undefined && top.rules !== null && !Array.isArray(top.rules)) this.err(['rules'], `rules must be a list; got ${typeName(top.rules)}`);
    const rawRules = Array.isArray(top.rules) ? top.rules : [];
    const ruleProbePaths: PathSegment[][][] = [];
    rawRules.forEach((r, ri) => {
      const p: PathSegment[] = ['rules', ri];
      const f = this.fields(r, p, RULE_KEYS, ['name', 'from', 'to', 'ports'], `rule ${ri + 1}`);
      if (!f) return;
      const name = typeof f.name === 'string' ? f.name : '';
      if (f.name !== undefined && typeof f.name !== 'string') this.err([...p, 'name'], `name must be text; got ${typeName(f.name)}`);
      if (name !== '' && !isValidName(name)) this.err([...p, 'name'], `rule name "${name}" is invalid: use lowercase letters, digits and hyphens (1-63 characters)`);
      if (name !== '') {
        const first = ruleNames.get(name);
        if (first !== undefined) this.err([...p, 'name'], `duplicate rule name "${name}" (also rules[${first}])`);
        else ruleNames.set(name, ri);
      }
      const side = (key: 'from' | 'to'): string[] => {
        const list = this.stringList(f[key], [...p, key], key);
        if (Array.isArray(f[key]) && (f[key] as unknown[]).length === 0) this.err([...p, key], `${key} must name at least one subnet or group`);
        list.forEach((n, i) => {
          if (!subnetNames.has(n) && !groupNames.has(n)) {
            this.err(Array.isArray(f[key]) ? [...p, key, i] : [...p, key], `unknown subnet or group "${n}"${didYouMean(n, refNames)}`);
          }
        });
        return list;
      };
      const from = side('from');
      const to = side('to');
      for (const n of new Set(from)) {
        if (to.includes(n)) this.err([...p, 'to'], `rule goes from and to the same ${subnetNames.has(n) ? 'subnet' : 'group'} "${n}": traffic inside a subnet never crosses Crosslink`);
      }
      // ports
      const ports: PortSpec[] = [];
      const portsRaw = f.ports;
      const portList = Array.isArray(portsRaw) ? portsRaw : portsRaw === undefined || portsRaw === null ? [] : [portsRaw];
      if (Array.isArray(portsRaw) && portsRaw.length === 0) this.err([...p, 'ports'], 'ports must list at least one entry (use "any" for all traffic)');
      portList.forEach((x, i) => {
        const r = parsePortSpec(x);
        if (r.ok) ports.push(r.spec);
        else this.err(Array.isArray(portsRaw) ? [...p, 'ports', i] : [...p, 'ports'], r.message);
      });
      const description = this.optString(f, 'description', p);
      const ticket = this.optString(f, 'ticket', p);
      // Governance: any-port access between zones must be approved by a change reference.
      if (ports.some((x) => x.protocol === 'any') && (ticket === undefined || ticket.trim() === '')) {
        const fz = new Set(resolver.resolveAll(from).map((s) => zoneOf.get(s)));
        const tz = new Set(resolver.resolveAll(to).map((s) => zoneOf.get(s)));
        const crossing = [...fz].flatMap((a) => [...tz].filter((b) => b !== a).map((b) => `${a} -> ${b}`));
        if (crossing.length > 0) {
          this.err([...p, 'ports'], `rule crosses zones (${crossing.sort()[0]}) with ports "any": add a "ticket" (the change reference that approved it) or list the ports`);
        }
      }
      // probes (checked against the policy once everything else is valid)
      const probes: RuleProbe[] = [];
      const probePaths: PathSegment[][] = [];
      if (f.probes !== undefined && f.probes !== null && !Array.isArray(f.probes)) this.err([...p, 'probes'], `probes must be a list; got ${typeName(f.probes)}`);
      (Array.isArray(f.probes) ? f.probes : []).forEach((pr, pi) => {
        const pp: PathSegment[] = [...p, 'probes', pi];
        const pf = this.fields(pr, pp, PROBE_KEYS, ['to'], `probe ${pi + 1} of rule "${name}"`);
        if (!pf) return;
        const flow = this.flow(pf, pp, true);
        if (!flow) return;
        const toAddr = typeof pf.to === 'string' ? parseAddress(pf.to) : undefined;
        if (!toAddr) {
          this.err([...pp, 'to'], `probe target must be an IP address (the host the probe connects to); got ${typeName(pf.to)}`);
          return;
        }
        let src: string | undefined;
        const resolvedFrom = resolver.resolveAll(from);
        if (pf.from !== undefined && pf.from !== null) {
          if (typeof pf.from !== 'string' || !resolvedFrom.includes(pf.from as SubnetName)) {
            this.err([...pp, 'from'], `probe "from" must be a subnet of the rule's from (${resolvedFrom.join(', ') || 'none'}); got ${typeName(pf.from)}${typeof pf.from === 'string' ? didYouMean(pf.from, resolvedFrom) : ''}`);
            return;
          }
          src = pf.from;
        } else {
          // First source subnet that has a prefix of the target's family.
          src = resolvedFrom.find((s) => (parsedCidrs.get(s) ?? []).some((x) => x.family === toAddr.family));
          if (src === undefined && resolvedFrom.length > 0) {
            this.err([...pp, 'to'], `no subnet in the rule's from has an IPv${toAddr.family} prefix to probe ${toAddr.text} from`);
            return;
          }
        }
        if (src === undefined) return;
        if (!(parsedCidrs.get(src) ?? []).some((x) => x.family === toAddr.family)) {
          this.err([...pp, 'from'], `subnet "${src}" has no IPv${toAddr.family} prefix to probe ${toAddr.text} from`);
          return;
        }
        const probe: RuleProbe = { from: src as SubnetName, to: toAddr.text, proto: flow.proto === 'any' ? 'icmp' : flow.proto, expect: flow.expect };
        if (flow.port !== undefined) probe.port = flow.port;
        probes.push(probe);
        probePaths.push(pp);
      });
      ruleProbePaths.push(probePaths);
      const rule: Rule = { name, from, to, ports, probes };
      if (description !== undefined) rule.description = description;
      if (ticket !== undefined) rule.ticket = ticket;
      rules.push(rule);
    });

    // --- tests
    const tests: PolicyTest[] = [];
    if (top.tests !== undefined && top.tests !== null && !Array.isArray(top.tests)) this.err(['tests'], `tests must be a list; got ${typeName(top.tests)}`);
    (Array.isArray(top.tests) ? top.tests : []).forEach((t, ti) => {
      const p: PathSegment[] = ['tests', ti];
      const f = this.fields(t, p, TEST_KEYS, ['from', 'to', 'expect'], `test ${ti + 1}`);
      if (!f) return;
      const ends: string[] = [];
      for (const key of ['from', 'to'] as const) {
        const v = f[key];
        if (v === undefined || v === null) continue;
        if (typeof v !== 'string') {
          this.err([...p, key], `${key} must be an IP address or a subnet name; got ${typeName(v)}`);
          continue;
        }
        const addr = parseAddress(v);
        if (addr) ends.push(addr.text);
        else if (subnetNames.has(v)) ends.push(v);
        else {
          const hint = groupNames.has(v) ? ' (a group: tests take an address or one subnet)' : didYouMean(v, subnetNames);
          this.err([...p, key], `"${v}" is neither an IP address nor a subnet name${hint}`);
        }
      }
      const flow = this.flow(f, p, false);
      if (!flow || ends.length !== 2) return;
      const mixed = familyMismatch(ends[0]!, ends[1]!, (n) => {
        const cidrs = parsedCidrs.get(n);
        return cidrs === undefined ? undefined : new Set(cidrs.map((c) => c.family));
      });
      if (mixed !== null) {
        this.err([...p, 'to'], mixed);
        return;
      }
      const test: PolicyTest = { from: ends[0], to: ends[1], expect: flow.expect };
      const name = this.optString(f, 'name', p);
      if (name !== undefined) test.name = name;
      if (flow.proto !== 'any') test.proto = flow.proto;
      if (flow.port !== undefined) test.port = flow.port;
      tests.push(test);
    });

    this.checkPaths(rules, resolver, subnets, fileAgents);

    if (this.errors.length > 0) return { errors: this.sorted() };
    const policy: Policy = {
      version: 1,
      underlays: underlays.sort(byName),
      zones: zones.sort(byName),
      agents: agents.sort(byName),
      subnets: subnets.sort(byName),
      groups: groups.sort(byName),
      rules,
      tests,
    };

    // Probes must agree with the policy itself: a probe the policy refuses would only ever fail.
    const ev = new PolicyEvaluator(policy);
    rules.forEach((rule, ri) => {
      rule.probes.forEach((probe, pi) => {
        const d = ev.evaluate(probe.from, probe.to, probe.proto, probe.port);
        if (d.decision !== probe.expect) {
          const what = probe.proto === 'icmp' ? 'icmp' : `${probe.proto}/${probe.port}`;
          const path = ruleProbePaths[ri]?.[pi] ?? ['rules', ri, 'probes', pi];
          this.err(path, probe.expect === 'allow'
            ? `probe ${what} from ${probe.from} to ${probe.to} expects allow, but the policy denies it: ${d.reason}`
            : `probe ${what} from ${probe.from} to ${probe.to} expects deny, but the policy allows it (${d.reason})`);
        }
      });
    });
    if (this.errors.length > 0) return { errors: this.sorted() };
    return { policy };
  }

  /** An agent's `underlays`: declared names, sorted; the only underlay there is when absent. */
  private agentUnderlays(f: Raw, p: PathSegment[], name: string, declared: readonly string[]): string[] {
    if (f.underlays === undefined || f.underlays === null) {
      if (declared.length === 0) return [DEFAULT_UNDERLAY];
      if (declared.length === 1) return [declared[0]!];
      this.err(p, `agent "${name}" must say which underlays it sits on (underlays: [${declared.join(', ')}] or some of them): the policy declares ${declared.length}`);
      return [];
    }
    const list = this.stringList(f.underlays, [...p, 'underlays'], 'underlays');
    if (Array.isArray(f.underlays) && f.underlays.length === 0) this.err([...p, 'underlays'], 'underlays must name at least one underlay');
    const at = (i: number): PathSegment[] => (Array.isArray(f.underlays) ? [...p, 'underlays', i] : [...p, 'underlays']);
    const out = new Set<string>();
    list.forEach((u, i) => {
      if (out.has(u)) {
        this.err(at(i), `underlay "${u}" is listed twice`);
      } else if (declared.length === 0 && u !== DEFAULT_UNDERLAY) {
        this.err(at(i), `unknown underlay "${u}": declare it under "underlays" first`);
      } else if (declared.length > 0 && !declared.includes(u)) {
        this.err(at(i), `unknown underlay "${u}"${didYouMean(u, declared)} (declared: ${declared.join(', ')})`);
      } else {
        out.add(u);
      }
    });
    // An agent whose every underlay was wrong is left out of the path check (one error, not two).
    if (out.size === 0) return [];
    return [...out].sort();
  }

  /**
   * Every pair of boxes a rule makes peers (any box of a `via`, since a standby may serve) must be
   * able to reach each other: a shared underlay or a relay on one underlay of each. Boxes are
   * grouped by their underlay set first, so a rule between two groups of thousands of boxes checks
   * a handful of set pairs, not every pair.
   */
  private checkPaths(rules: Rule[], resolver: NameResolver, subnets: Subnet[], fileAgents: Map<string, PolicyAgent>): void {
    const refused = new Set(this.opts.nonConsentingRelays ?? []);
    const relays = [...fileAgents.values()].filter((a) => a.isRelay && a.underlays.length >= 2 && !refused.has(a.name));
    const refusing = [...fileAgents.values()].filter((a) => a.isRelay && refused.has(a.name));
    const viaOf = new Map(subnets.map((s) => [s.name as string, s.via]));
    const verdicts = new Map<string, string | undefined>();
    rules.forEach((rule, ri) => {
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
      const from = side(rule.from);
      const to = side(rule.to);
      const reported = new Set<string>();
      for (const [ka, a] of from) {
        for (const [kb, b] of to) {
          if (a.name === b.name) continue;
          const key = `${ka}|${kb}`;
          if (!verdicts.has(key)) {
            let why = possiblePath(a, b, relays);
            const wouldServe = refusing.filter((r) => possiblePath(a, b, [r]) === undefined).map((r) => r.name);
            if (why !== undefined && wouldServe.length > 0) {
              why = `${a.name} (${a.underlays.join(', ')}) and ${b.name} (${b.underlays.join(', ')}) to reach each other, but they share no underlay and the relay${wouldServe.length > 1 ? 's' : ''} that would join them (${wouldServe.join(', ')}) ha${wouldServe.length > 1 ? 've' : 's'} not consented: start ${wouldServe.length > 1 ? 'their agents' : 'its agent'} with --relay`;
            }
            verdicts.set(key, why);
          }
          const why = verdicts.get(key);
          if (why !== undefined && !reported.has(key)) {
            reported.add(key);
            this.err(['rules', ri], `rule "${rule.name}" needs ${why}`);
          }
        }
      }
    });
  }

  private readonly isCidrList = new Set<string>();
  private readonly groupPaths = new Map<string, { path: PathSegment[]; isList: boolean }>();

  /** proto/port/expect of a test or probe. */
  private flow(f: Raw, p: PathSegment[], isProbe: boolean): { proto: 'tcp' | 'udp' | 'icmp' | 'any'; port?: number; expect: 'allow' | 'deny' } | undefined {
    let ok = true;
    let expect: 'allow' | 'deny' = 'allow';
    if (f.expect !== undefined && f.expect !== null) {
      if (f.expect === 'allow' || f.expect === 'deny') expect = f.expect;
      else {
        this.err([...p, 'expect'], `expect must be "allow" or "deny"; got ${typeName(f.expect)}`);
        ok = false;
      }
    }
    let proto: 'tcp' | 'udp' | 'icmp' | 'any' | undefined;
    if (f.proto !== undefined && f.proto !== null) {
      if (f.proto === 'tcp' || f.proto === 'udp' || f.proto === 'icmp') proto = f.proto;
      else {
        this.err([...p, 'proto'], `proto must be tcp, udp or icmp; got ${typeName(f.proto)}`);
        ok = false;
      }
    }
    let port: number | undefined;
    if (f.port !== undefined && f.port !== null) {
      if (typeof f.port === 'number' && Number.isInteger(f.port) && f.port >= 1 && f.port <= 65535) port = f.port;
      else {
        this.err([...p, 'port'], `port must be a number 1-65535; got ${typeName(f.port)}`);
        ok = false;
      }
    }
    if (!ok) return undefined;
    if (proto === 'icmp' && port !== undefined) {
      this.err([...p, 'port'], 'icmp has no port');
      return undefined;
    }
    if ((proto === 'tcp' || proto === 'udp') && port === undefined) {
      this.err(p, `${proto} needs a port`);
      return undefined;
    }
    if (proto === undefined) proto = port !== undefined ? 'tcp' : isProbe ? 'icmp' : 'any';
    return port === undefined ? { proto, expect } : { proto, port, expect };
  }

  /**
   * Overlapping subnets are allowed only when they are in the same zone and have the same `via`
   * (they then always move together). Prefixes nest or are disjoint, so a sweep with a stack of the
   * enclosing prefixes finds every overlapping pair in O(n log n + pairs).
   */
  private checkOverlaps(subnets: Subnet[], parsed: Map<string, ParsedPrefix[]>, writtenIndex: Map<ParsedPrefix, number>): void {
    const bySubnet = new Map(subnets.map((s) => [s.name as string, s]));
    const items: Array<{ p: ParsedPrefix; subnet: string; index: number }> = [];
    for (const s of subnets) (parsed.get(s.name) ?? []).forEach((p) => items.push({ p, subnet: s.name, index: writtenIndex.get(p) ?? 0 }));
    items.sort((a, b) => a.p.family - b.p.family || (a.p.start < b.p.start ? -1 : a.p.start > b.p.start ? 1 : a.p.length - b.p.length) || (a.subnet < b.subnet ? -1 : 1));
    const stack: typeof items = [];
    const reported = new Set<string>();
    for (const it of items) {
      while (stack.length > 0) {
        const top = stack[stack.length - 1];
        if (top.p.family === it.p.family && top.p.end >= it.p.start) break;
        stack.pop();
      }
      for (const outer of stack) {
        if (outer.subnet === it.subnet) continue;
        const a = bySubnet.get(outer.subnet) as Subnet;
        const b = bySubnet.get(it.subnet) as Subnet;
        const key = `${a.name}\u0000${b.name}`;
        if (reported.has(key)) continue;
        let why: string | undefined;
        if (a.zone !== b.zone) why = `they are in different zones (${a.zone}, ${b.zone})`;
        else if (a.via.join(',') !== b.via.join(',')) why = `they are served by different agents (via ${a.via.join(', ')} vs ${b.via.join(', ')})`;
        if (why) {
          reported.add(key);
          const cidrPath: PathSegment[] = this.isCidrList.has(b.name) ? ['subnets', b.name, 'cidr', it.index] : ['subnets', b.name, 'cidr'];
          this.err(cidrPath, `${it.p.text} of subnet "${b.name}" overlaps ${outer.p.text} of subnet "${a.name}" and ${why}: the overlay cannot route overlapping space`);
        }
      }
      stack.push(it);
    }
  }

  private checkCycles(groups: Group[]): void {
    const members = new Map(groups.map((g) => [g.name, g.members]));
    const state = new Map<string, 1 | 2>(); // 1 visiting, 2 done
    const reported = new Set<string>();
    const visit = (name: string, trail: string[]): void => {
      const s = state.get(name);
      if (s === 2) return;
      if (s === 1) {
        const cycle = [...trail.slice(trail.indexOf(name)), name];
        const key = [...cycle.slice(0, -1)].sort().join(',');
        if (!reported.has(key)) {
          reported.add(key);
          const gp = this.groupPaths.get(cycle[0]);
          this.err(gp?.path ?? ['groups', cycle[0]], `groups form a cycle: ${cycle.join(' -> ')}`);
        }
        return;
      }
      state.set(name, 1);
      for (const m of members.get(name) ?? []) if (members.has(m)) visit(m, [...trail, name]);
      state.set(name, 2);
    };
    for (const g of [...groups].sort(byName)) visit(g.name, []);
  }

  private sorted(): ErrorDetail[] {
    // Document order: by line when known, then by path; stable otherwise.
    return this.errors
      .map((e, i) => ({ e, i }))
      .sort((a, b) => (a.e.line ?? Infinity) - (b.e.line ?? Infinity) || (a.e.column ?? 0) - (b.e.column ?? 0) || a.i - b.i)
      .map((x) => x.e);
  }
}

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

