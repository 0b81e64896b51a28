// Inputs for the diagram tests: a policy compiled against its synthetic inventory (the real compiler
// gives the serving map and pair paths, so the tests do not invent them), plus a made-up health
// snapshot; and generated policies of any size over three zones.
import { readFileSync } from 'node:fs';
import { syntheticInventory } from '../policy/check.js';
import { compilePolicy } from '../policy/compile.js';
import { pairPathJson } from '../policy/paths.js';
import type { Policy } from '../policy/types.js';
import { parsePolicy, validatePolicy } from '../policy/validate.js';
import { linkName } from '../health/types.js';
import type { DiagramInput } from './model.js';
import type { DiagramState } from './types.js';

export const AT_MS = 1_700_000_000_000;

export function leedsPolicy(): Policy {
  const r = parsePolicy(readFileSync(new URL('../../examples/leeds.yaml', import.meta.url), 'utf8'));
  if (!r.policy) throw new Error(`examples/leeds.yaml: ${JSON.stringify(r.errors)}`);
  return r.policy;
}

export interface FixtureOptions {
  version?: number;
  /** Boxes of the policy that have not enrolled (left out of the inventory). */
  notEnrolled?: readonly string[];
  /** Enrolled and then revoked. */
  revoked?: readonly string[];
  /** Agent and link states by name (default ok). */
  states?: Readonly<Record<string, DiagramState>>;
  /** No health snapshot yet. */
  isHealthMissing?: boolean;
}

export function compiledInput(policy: Policy, o: FixtureOptions = {}): DiagramInput {
  const skip = new Set([...(o.notEnrolled ?? []), ...(o.revoked ?? [])]);
  const inventory = { agents: syntheticInventory(policy).agents.filter((a) => !skip.has(a.name)) };
  const result = compilePolicy(policy, inventory, { isHashed: false });
  const stateOf = (name: string): DiagramState => o.states?.[name] ?? 'ok';
  const reasonOf = (name: string, s: DiagramState): string =>
    s === 'ok' ? 'handshake 12 s ago' : s === 'down' ? `no handshake for 310 s (${name})` : `made up: ${s}`;
  const links = new Map<string, [string, string]>();
  for (const [name, cfg] of result.configs)
    for (const p of cfg.peers) links.set(linkName(name, p.name), name < p.name ? [name, p.name] : [p.name, name]);
  const agents = inventory.agents.map((a) => a.name as string);
  return {
    atMs: AT_MS,
    policy,
    policyVersion: o.version ?? 7,
    agents: [
      ...inventory.agents.map((a) => ({
        name: a.name,
        underlays: (a.endpoints ?? []).map((e) => e.underlay),
        isRelay: a.isRelay ?? false,
        isRevoked: false,
      })),
      ...(o.revoked ?? []).map((name) => ({ name, underlays: [], isRelay: false, isRevoked: true })),
    ],
    health: o.isHealthMissing
      ? null
      : {
          agents: agents.sort().map((name) => ({
            name,
            state: stateOf(name),
            reason: reasonOf(name, stateOf(name)),
            isConnected: stateOf(name) !== 'down',
          })),
          links: [...links]
            .sort((x, y) => (x[0] < y[0] ? -1 : 1))
            .map(([name, agents]) => ({ name, agents, state: stateOf(name), reason: reasonOf(name, stateOf(name)) })),
        },
    indirectPaths: result.indirectPairs.map((p) => pairPathJson(p.a, p.b, p.path)),
    servingAgent: (s) => result.servedBy.get(s as never) ?? null,
    unserved: result.unserved.map((u) => ({ subnet: u.subnet, reason: u.reason })),
  };
}

const ZONES = ['red', 'green', 'blue'];

/**
 * n boxes over three zones and three underlays: by index, in red, green, blue, red+green,
 * green+blue, red+blue (on both WANs; the first ten of each pair relays) or no zone. Each box with a zone serves one /24 and sends to three others' (i+1,
 * i+7, i+31 among boxes with a subnet, or the `offsets` given): about 3n links, some across WANs (relayed).
 */
export function generatedPolicy(n: number, offsets: readonly number[] = [1, 7, 31]): Policy {
  const name = (i: number) => `box-${String(i).padStart(4, '0')}`;
  const [red, green, blue] = ZONES as [string, string, string];
  const zonesOf = (i: number): string[] =>
    [[red], [green], [blue], [red, green], [green, blue], [red, blue], []][i % 7]!;
  const agents: Record<string, unknown> = {};
  const subnets: Record<string, unknown> = {};
  const served: number[] = [];
  for (let i = 0; i < n; i++) {
    const zones = zonesOf(i);
    const wans = zones.length === 0 ? ['wan-red'] : zones.map((z) => `wan-${z}`);
    agents[name(i)] = {
      site: `site ${i}`,
      zones,
      underlays: wans,
      ...(zones.length > 1 && i < 70 ? { relay: true } : {}),
    };
    if (zones.length === 0) continue;
    subnets[`lan-${i}`] = { cidr: `10.${(i >> 8) & 255}.${i & 255}.0/24`, zone: zones[0], via: [name(i)] };
    served.push(i);
  }
  const rules = served.map((i, k) => ({
    name: `r-${i}`,
    from: `lan-${i}`,
    to: offsets.map((d) => `lan-${served[(k + d) % served.length]!}`),
    ports: 'tcp/443',
  }));
  const r = validatePolicy({
    version: 1,
    underlays: Object.fromEntries(ZONES.map((z) => [`wan-${z}`, { description: `${z} WAN` }])),
    zones: Object.fromEntries(ZONES.map((z) => [z, { description: `${z} zone` }])),
    agents,
    subnets,
    rules,
  });
  if (!r.policy) throw new Error(`generated policy: ${JSON.stringify(r.errors?.slice(0, 3))}`);
  return r.policy;
}
