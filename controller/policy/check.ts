// checkPolicy: what `crosslink policy check` does, as a pure function of the text: validate, compile
// against the file's own agents (a synthetic inventory), run the tests, and summarize.
import { createHash } from 'node:crypto';
import type { ErrorDetail } from '../../lib/errors.js';
import { compilePolicy, type PairRoute, type UnservedSubnet } from './compile.js';
import { runPolicyTests, type PolicyTestReport } from './tests.js';
import type { AgentConfig, AgentName, Inventory, InventoryAgent, Policy } from './types.js';
import { parsePolicy } from './validate.js';
import { parsePolicyText } from './parse.js';
import { formatTime } from './validate/window.js';

/** `policy check` warns about rules that expire within this many days (--expiry-warn-days). */
export const DEFAULT_EXPIRY_WARN_DAYS = 14;
const DAY_MS = 86_400_000;

export interface CheckOptions {
  /** Shortest allowed subnet prefix length; default 8. */
  minPrefixLength?: number;
  /** Agents known beyond the file's own (e.g. the controller's live agents). */
  knownAgents?: Iterable<string>;
  /** The checker's clock: with it, a past `not-after` is an error and near ones are warned about. */
  nowMs?: number;
  /** Warn about rules whose not-after is within this many days of nowMs. Default 14. */
  expiryWarnDays?: number;
}

/** A rule with a window that has not ended, soonest end first. */
export interface RuleExpiry {
  rule: string;
  notBeforeMs?: number;
  notAfterMs?: number;
}

export interface CheckSummary {
  /** Valid, compiled, and every test passed. */
  isOk: boolean;
  /** Validation errors (each with path and line). Empty when the document is valid. */
  errors: ErrorDetail[];
  policy?: Policy;
  /** Counts (zero when invalid). */
  agents: number;
  subnets: number;
  groups: number;
  rules: number;
  /** Distinct agent pairs that are WireGuard peers of each other. */
  peerLinks: number;
  tests: PolicyTestReport;
  unserved: readonly UnservedSubnet[];
  /** Peer pairs that share no underlay: relayed (through which relays) or without a path. */
  indirectPairs: readonly PairRoute[];
  configs: Map<AgentName, AgentConfig>;
  /** Warnings (the document stays valid): rules that expire soon, each with its path and line. */
  warnings: ErrorDetail[];
  /** Every rule with a not-before or not-after, by end (none last). */
  windows: RuleExpiry[];
}

/** Deterministic stand-in for a WireGuard public key (32 bytes, base64). Never a real key. */
function syntheticKey(name: string): string {
  return createHash('sha256').update(`crosslink synthetic key ${name}`).digest('base64');
}

/**
 * An inventory made from the policy alone: every agent of the file (or, without an `agents`
 * section, every agent named in a `via`), healthy, advertising exactly the subnets that list it,
 * with a synthetic key, an overlay address from 100.64.0.0/10 in name order and an endpoint under
 * the reserved ".invalid" domain — or, when the policy declares underlays, one endpoint per underlay
 * the agent sits on, from the documentation range 2001:db8::/32 (a relay forwards by address), and
 * every relay of the policy consenting.
 */
export function syntheticInventory(policy: Policy): Inventory {
  const names = new Set<string>(policy.agents.map((a) => a.name));
  for (const s of policy.subnets) for (const a of s.via) names.add(a);
  const advertised = new Map<string, string[]>();
  for (const s of policy.subnets) {
    for (const a of s.via) {
      const l = advertised.get(a) ?? [];
      l.push(...(s.realCidrs ?? s.cidrs)); // boxes advertise their LANs
      advertised.set(a, l);
    }
  }
  const underlayIndex = new Map(policy.underlays.map((u, i) => [u.name, i + 1]));
  const fileAgents = new Map(policy.agents.map((a) => [a.name as string, a]));
  const agents: InventoryAgent[] = [...names].sort().map((name, i) => {
    const n = i + 1;
    const agent: InventoryAgent = {
      name: name as AgentName,
      publicKey: syntheticKey(name),
      endpoint: `${name}.invalid:51820`,
      overlayAddress: `100.64.${(n >> 8) & 255}.${n & 255}/10`,
      advertised: [...new Set(advertised.get(name) ?? [])].sort(),
      isHealthy: true,
    };
    const pa = fileAgents.get(name);
    if (pa && underlayIndex.size > 0) {
      agent.endpoints = pa.underlays.map((u) => ({
        underlay: u,
        endpoint: `[2001:db8:${(underlayIndex.get(u) ?? 0).toString(16)}::${n.toString(16)}]:51820`,
      }));
      agent.endpoint = agent.endpoints[0]?.endpoint ?? '';
      agent.isRelay = pa.isRelay;
    }
    return agent;
  });
  return { agents };
}

export function checkPolicy(text: string, opts: CheckOptions = {}): CheckSummary {
  const empty: CheckSummary = {
    isOk: false,
    errors: [],
    agents: 0,
    subnets: 0,
    groups: 0,
    rules: 0,
    peerLinks: 0,
    tests: { results: [], passed: 0, failed: 0 },
    unserved: [],
    indirectPairs: [],
    configs: new Map(),
    warnings: [],
    windows: [],
  };
  const v = parsePolicy(text, { ...opts, nowMs: opts.nowMs });
  if (!v.policy) return { ...empty, errors: v.errors };
  const policy = v.policy;
  const inventory = syntheticInventory(policy);
  const compiled = compilePolicy(policy, inventory, { isHashed: false }); // nothing is sent: no hashes
  const tests = runPolicyTests(policy);
  const links = new Set<string>();
  for (const [name, cfg] of compiled.configs) {
    for (const p of cfg.peers) links.add(name < p.name ? `${name} ${p.name}` : `${p.name} ${name}`);
  }
  return {
    isOk: tests.failed === 0,
    errors: [],
    policy,
    agents: inventory.agents.length,
    subnets: policy.subnets.length,
    groups: policy.groups.length,
    rules: policy.rules.length,
    peerLinks: links.size,
    tests,
    unserved: compiled.unserved,
    indirectPairs: compiled.indirectPairs,
    configs: compiled.configs,
    ...expiryWarnings(text, policy, opts),
  };
}

/** The rules with a window, and a warning (with its line) for each that ends within the warn days. */
function expiryWarnings(
  text: string,
  policy: Policy,
  opts: CheckOptions,
): { warnings: ErrorDetail[]; windows: RuleExpiry[] } {
  const windows: RuleExpiry[] = [];
  const soon: Array<{ index: number; notAfterMs: number }> = [];
  const horizonMs = (opts.expiryWarnDays ?? DEFAULT_EXPIRY_WARN_DAYS) * DAY_MS;
  policy.rules.forEach((r, index) => {
    if (r.notBeforeMs === undefined && r.notAfterMs === undefined) return;
    windows.push({
      rule: r.name,
      ...(r.notBeforeMs !== undefined ? { notBeforeMs: r.notBeforeMs } : {}),
      ...(r.notAfterMs !== undefined ? { notAfterMs: r.notAfterMs } : {}),
    });
    if (r.notAfterMs !== undefined && opts.nowMs !== undefined && r.notAfterMs - opts.nowMs <= horizonMs)
      soon.push({ index, notAfterMs: r.notAfterMs });
  });
  windows.sort((a, b) => (a.notAfterMs ?? Infinity) - (b.notAfterMs ?? Infinity) || (a.rule < b.rule ? -1 : 1));
  // Lines are looked up (a second, positioned parse) only when there is something to point at.
  const locate = soon.length > 0 ? parsePolicyText(text).locate : undefined;
  const warnings = soon.map(({ index, notAfterMs }): ErrorDetail => {
    const path = ['rules', index, 'not-after'];
    const pos = locate?.(path);
    const left = notAfterMs - (opts.nowMs ?? 0);
    const inText = left < DAY_MS ? `${Math.ceil(left / 3_600_000)} h` : `${Math.floor(left / DAY_MS)} days`;
    return {
      path: `rules[${index}].not-after`,
      ...(pos ? { line: pos.line, column: pos.column } : {}),
      message: `warning: rule "${policy.rules[index]!.name}" expires at ${formatTime(notAfterMs)}, in ${inText}`,
    };
  });
  return { warnings, windows };
}
