// The groups section: members by name (a list, or { members, description }), unknown members, cycles.
import { didYouMean } from '../names.js';
import type { PathSegment } from '../parse.js';
import type { Group } from '../types.js';
import { byName, isRecord, type Checker } from './checker.js';

const GROUP_KEYS = ['members', 'description'];

type GroupPaths = Map<string, { path: PathSegment[]; isList: boolean }>;

export function checkGroups(c: Checker, raw: unknown, subnetNames: ReadonlySet<string>): Group[] {
  const groups: Group[] = [];
  const groupPaths: GroupPaths = new Map();
  for (const [name, g] of c.namedMap(raw, ['groups'], 'group')) {
    const p: PathSegment[] = ['groups', name];
    let membersRaw: unknown = g;
    let membersPath = p;
    let description: string | undefined;
    if (isRecord(g)) {
      const f = c.fields(g, p, GROUP_KEYS, ['members'], `group "${name}"`);
      membersRaw = f?.members;
      membersPath = [...p, 'members'];
      if (f) description = c.optString(f, 'description', p);
    }
    const members = c.stringList(membersRaw, membersPath, `group "${name}" members`);
    if (subnetNames.has(name))
      c.err(p, `"${name}" is both a subnet and a group; rules could not tell which is meant`, true);
    const group: Group = { name, members };
    if (description !== undefined) group.description = description;
    groups.push(group);
    groupPaths.set(name, { path: membersPath, isList: Array.isArray(membersRaw) });
  }
  const groupNames = new Set(groups.map((g) => g.name));
  const refNames = [...subnetNames, ...groupNames];
  for (const g of groups) {
    const gp = groupPaths.get(g.name);
    g.members.forEach((m, i) => {
      if (!subnetNames.has(m) && !groupNames.has(m)) {
        const path = gp ? (gp.isList ? [...gp.path, i] : gp.path) : ['groups', g.name];
        c.err(path, () => `unknown subnet or group "${m}"${didYouMean(m, refNames)}`);
      }
    });
  }
  checkCycles(c, groups, groupPaths);
  return groups;
}

function checkCycles(c: Checker, groups: Group[], groupPaths: GroupPaths): void {
  const members = new Map(groups.map((g) => [g.name, g.members]));
  const state = new Map<string, 1 | 2>(); // 1 visiting, 2 done
  const reported = new Set<string>();
  const visit = (name: string, trail: string[]): void => {
    const s = state.get(name);
    if (s === 2) return;
    if (s === 1) {
      // name is on the trail (it is being visited): the cycle runs from there back to it.
      const cycle = [...trail.slice(trail.indexOf(name)), name];
      const key = [...cycle.slice(0, -1)].sort().join(',');
      if (!reported.has(key)) {
        reported.add(key);
        c.err(groupPaths.get(name)?.path ?? ['groups', name], `groups form a cycle: ${cycle.join(' -> ')}`);
      }
      return;
    }
    state.set(name, 1);
    for (const m of members.get(name) ?? []) if (members.has(m)) visit(m, [...trail, name]);
    state.set(name, 2);
  };
  for (const g of [...groups].sort(byName)) visit(g.name, []);
}
