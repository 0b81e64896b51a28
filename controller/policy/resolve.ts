// Group expansion: rules and groups name subnets or groups; this turns every name into the sorted
// list of subnet names it stands for. Done once per policy (memoized), never per agent.
import type { Policy, SubnetName } from './types.js';

export class NameResolver {
  private readonly subnets: Set<string>;
  private readonly groups: Map<string, string[]>;
  private readonly memo = new Map<string, SubnetName[]>();

  constructor(policy: Pick<Policy, 'subnets' | 'groups'>) {
    this.subnets = new Set(policy.subnets.map((s) => s.name));
    this.groups = new Map(policy.groups.map((g) => [g.name, g.members]));
  }

  isSubnet(name: string): boolean {
    return this.subnets.has(name);
  }

  isGroup(name: string): boolean {
    return this.groups.has(name);
  }

  /** Subnet names a subnet or group name stands for, sorted, unique. Unknown names and cycles give []. */
  resolve(name: string): SubnetName[] {
    const hit = this.memo.get(name);
    if (hit) return hit;
    const out = new Set<string>();
    this.collect(name, out, new Set());
    const list = [...out].sort() as SubnetName[];
    this.memo.set(name, list);
    return list;
  }

  /** Union of several names, sorted, unique. */
  resolveAll(names: readonly string[]): SubnetName[] {
    const [only] = names;
    if (names.length === 1 && only !== undefined) return this.resolve(only);
    const out = new Set<string>();
    for (const n of names) for (const s of this.resolve(n)) out.add(s);
    return [...out].sort() as SubnetName[];
  }

  private collect(name: string, out: Set<string>, visiting: Set<string>): void {
    if (this.subnets.has(name)) {
      out.add(name);
      return;
    }
    const members = this.groups.get(name);
    if (!members || visiting.has(name)) return;
    const memo = this.memo.get(name);
    if (memo) {
      for (const s of memo) out.add(s);
      return;
    }
    visiting.add(name);
    for (const m of members) this.collect(m, out, visiting);
    visiting.delete(name);
  }
}
