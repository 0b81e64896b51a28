// The underlays, zones and agents sections.
import { didYouMean } from '../names.js';
import type { PathSegment } from '../parse.js';
import { DEFAULT_UNDERLAY, type AgentName, type PolicyAgent, type Underlay, type Zone } from '../types.js';
import { typeName, type Checker, type Raw } from './checker.js';

const ZONE_KEYS = ['description'];
const UNDERLAY_KEYS = ['description'];
const AGENT_KEYS = ['site', 'zones', 'underlays', 'relay', 'description'];

/** Underlays or zones: a map of names to nothing or { description }. */
function describedNames(
  c: Checker,
  raw: unknown,
  section: 'underlays' | 'zones',
): Array<{ name: string; description: string }> {
  const what = section === 'underlays' ? 'underlay' : 'zone';
  const out: Array<{ name: string; description: string }> = [];
  for (const [name, u] of c.namedMap(raw, [section], what)) {
    const p: PathSegment[] = [section, name];
    if (u === null || u === undefined) {
      out.push({ name, description: '' });
      continue;
    }
    const f = c.fields(u, p, section === 'underlays' ? UNDERLAY_KEYS : ZONE_KEYS, [], `${what} "${name}"`);
    out.push({ name, description: (f && c.optString(f, 'description', p)) ?? '' });
  }
  return out;
}

export function checkUnderlays(c: Checker, raw: unknown): Underlay[] {
  return describedNames(c, raw, 'underlays');
}

export function checkZones(c: Checker, raw: unknown): Zone[] {
  return describedNames(c, raw, 'zones');
}

/** Reports a zone the policy does not declare. */
export type ZoneCheck = (zone: string, path: PathSegment[]) => void;

export function zoneChecker(c: Checker, zoneNames: ReadonlySet<string>): ZoneCheck {
  return (zone, path) => {
    if (!zoneNames.has(zone)) {
      const hint = () => (zoneNames.size === 0 ? ' (declare it under "zones")' : didYouMean(zone, zoneNames));
      c.err(path, () => `unknown zone "${zone}"${hint()}`);
    }
  };
}

export function checkAgents(
  c: Checker,
  raw: unknown,
  checkZone: ZoneCheck,
  underlayNames: readonly string[],
): PolicyAgent[] {
  const agents: PolicyAgent[] = [];
  for (const [name, a] of c.namedMap(raw, ['agents'], 'agent')) {
    const p: PathSegment[] = ['agents', name];
    const f = c.fields(a, p, AGENT_KEYS, ['zones'], `agent "${name}"`);
    if (!f) continue;
    const zs = c.stringList(f.zones, [...p, 'zones'], 'zones');
    zs.forEach((z, i) => checkZone(z, Array.isArray(f.zones) ? [...p, 'zones', i] : [...p, 'zones']));
    const site = c.optString(f, 'site', p);
    const agentUnderlays = checkAgentUnderlays(c, f, p, name, underlayNames);
    let isRelay = false;
    if (f.relay !== undefined && f.relay !== null) {
      if (typeof f.relay !== 'boolean') c.err([...p, 'relay'], `relay must be true or false; got ${typeName(f.relay)}`);
      else isRelay = f.relay;
    }
    if (isRelay && agentUnderlays.length < 2) {
      c.err(
        [...p, 'relay'],
        `agent "${name}" is a relay but sits on ${agentUnderlays.length === 0 ? 'no underlay' : `one underlay (${agentUnderlays[0]})`}: a relay joins two underlays; list them under underlays`,
      );
    }
    const agent: PolicyAgent = {
      name: name as AgentName,
      zones: [...new Set(zs)].sort(),
      underlays: agentUnderlays,
      isRelay,
    };
    if (site !== undefined) agent.site = site;
    agents.push(agent);
  }
  return agents;
}

/** An agent's `underlays`: declared names, sorted; the only underlay there is when absent. */
function checkAgentUnderlays(
  c: Checker,
  f: Raw,
  p: PathSegment[],
  name: string,
  declared: readonly string[],
): string[] {
  if (f.underlays === undefined || f.underlays === null) {
    const [only] = declared;
    if (declared.length === 0) return [DEFAULT_UNDERLAY];
    if (declared.length === 1 && only !== undefined) return [only];
    c.err(
      p,
      `agent "${name}" must say which underlays it sits on (underlays: [${declared.join(', ')}] or some of them): the policy declares ${declared.length}`,
    );
    return [];
  }
  const list = c.stringList(f.underlays, [...p, 'underlays'], 'underlays');
  if (Array.isArray(f.underlays) && f.underlays.length === 0)
    c.err([...p, 'underlays'], 'underlays must name at least one underlay');
  const at = (i: number): PathSegment[] => (Array.isArray(f.underlays) ? [...p, 'underlays', i] : [...p, 'underlays']);
  const out = new Set<string>();
  list.forEach((u, i) => {
    if (out.has(u)) {
      c.err(at(i), `underlay "${u}" is listed twice`);
    } else if (declared.length === 0 && u !== DEFAULT_UNDERLAY) {
      c.err(at(i), `unknown underlay "${u}": declare it under "underlays" first`);
    } else if (declared.length > 0 && !declared.includes(u)) {
      c.err(at(i), () => `unknown underlay "${u}"${didYouMean(u, declared)} (declared: ${declared.join(', ')})`);
    } else {
      out.add(u);
    }
  });
  // An agent whose every underlay was wrong is left out of the path check (one error, not two).
  if (out.size === 0) return [];
  return [...out].sort();
}
