// Before/after AgentConfigs -> per-agent, human-readable changes for a dry run. Pure.
import type { AgentConfig, FlowRule } from '../../proto/gen/crosslink/v1/agent_pb.js';

export interface AgentConfigDiff {
  agent: string;
  change: 'added' | 'removed' | 'changed';
  /** "+ ..." added, "- ..." removed, "~ ..." changed in place. */
  lines: string[];
}

/** How many prefixes to show of a long list before "(+N more)". */
const SHOWN = 6;

function list(items: readonly string[]): string {
  if (items.length === 0) return '(none)';
  if (items.length <= SHOWN) return items.join(', ');
  return `${items.slice(0, SHOWN).join(', ')} (+${items.length - SHOWN} more)`;
}

function setDelta(before: readonly string[], after: readonly string[]): { added: string[]; removed: string[] } {
  const b = new Set(before);
  const a = new Set(after);
  return { added: after.filter((x) => !b.has(x)), removed: before.filter((x) => !a.has(x)) };
}

function ports(r: FlowRule): string {
  if (r.protocol === 'any' || r.protocol === 'icmp') return r.protocol;
  if (r.ports.length === 0) return `${r.protocol}/all`;
  return r.ports.map((p) => `${r.protocol}/${p.first === p.last ? p.first : `${p.first}-${p.last}`}`).join(',');
}

function ruleKey(dir: string, r: FlowRule): string {
  return `${dir} rule ${r.rule} ${r.protocol}`;
}

function renderRule(dir: string, r: FlowRule): string {
  return `${dir} rule ${r.rule} ${ports(r)}: ${list(r.sources)} -> ${list(r.destinations)}`;
}

function diffRules(dir: string, before: readonly FlowRule[], after: readonly FlowRule[], out: string[]): void {
  const b = new Map(before.map((r) => [ruleKey(dir, r), r]));
  const a = new Map(after.map((r) => [ruleKey(dir, r), r]));
  for (const [k, r] of b) if (!a.has(k)) out.push(`- ${renderRule(dir, r)}`);
  for (const [k, r] of a) {
    const old = b.get(k);
    if (!old) {
      out.push(`+ ${renderRule(dir, r)}`);
      continue;
    }
    const parts: string[] = [];
    if (ports(old) !== ports(r)) parts.push(`ports ${ports(old)} -> ${ports(r)}`);
    const s = setDelta(old.sources, r.sources);
    const d = setDelta(old.destinations, r.destinations);
    if (s.added.length) parts.push(`sources +${list(s.added)}`);
    if (s.removed.length) parts.push(`sources -${list(s.removed)}`);
    if (d.added.length) parts.push(`destinations +${list(d.added)}`);
    if (d.removed.length) parts.push(`destinations -${list(d.removed)}`);
    if (parts.length) out.push(`~ ${dir} rule ${r.rule} ${r.protocol}: ${parts.join('; ')}`);
  }
}

function diffList(what: string, before: readonly string[], after: readonly string[], out: string[]): void {
  const { added, removed } = setDelta(before, after);
  for (const x of removed) out.push(`- ${what} ${x}`);
  for (const x of added) out.push(`+ ${what} ${x}`);
}

/** Describes a whole config as "+" lines (for an added agent) or "-" lines (removed). */
function describe(cfg: AgentConfig, sign: '+' | '-'): string[] {
  const out: string[] = [];
  for (const p of cfg.peers) out.push(`${sign} peer ${p.name} allowed-ips ${list(p.allowedIps)}`);
  for (const r of cfg.routes) out.push(`${sign} route ${r}`);
  for (const s of cfg.localSubnets)
    out.push(
      `${sign} local subnet ${s.name} ${s.prefixes.join(', ')}${s.masquerade ? ' (masquerade)' : ''}${s.gateways.length > 0 ? ` gateway ${s.gateways.join(', ')}` : ''}`,
    );
  for (const [dir, rules] of [
    ['outbound', cfg.firewall?.outbound ?? []],
    ['inbound', cfg.firewall?.inbound ?? []],
    ['local', cfg.firewall?.local ?? []],
  ] as const) {
    for (const r of rules) out.push(`${sign} ${renderRule(dir, r)}`);
  }
  for (const p of cfg.probes)
    out.push(
      `${sign} probe ${p.name} ${p.protocol}${p.port ? `/${p.port}` : ''} ${p.sourcePrefix} -> ${p.target}${p.expectDeny ? ' (expect deny)' : ''}`,
    );
  for (const g of groupTexts(cfg)) out.push(`${sign} serving group ${g}`);
  return out;
}

/** "care-records 10.20.1.0/24: lth-sjuh > lth-sjuh-standby (a candidate)" per serving group. */
function groupTexts(cfg: AgentConfig): string[] {
  return cfg.servingGroups.map(
    (g) => `${g.name} ${list(g.prefixes)}: ${g.candidates.join(' > ')}${g.subnets.length > 0 ? ' (a candidate)' : ''}`,
  );
}

/** Diff of one agent's config; [] when equal. */
export function diffConfig(before: AgentConfig, after: AgentConfig): string[] {
  if (before.contentHash !== '' && before.contentHash === after.contentHash) return [];
  const out: string[] = [];
  if (before.overlayAddress !== after.overlayAddress)
    out.push(`~ overlay address ${before.overlayAddress} -> ${after.overlayAddress}`);
  const bp = new Map(before.peers.map((p) => [p.name, p]));
  const ap = new Map(after.peers.map((p) => [p.name, p]));
  for (const [name, p] of bp) if (!ap.has(name)) out.push(`- peer ${name} allowed-ips ${list(p.allowedIps)}`);
  for (const [name, p] of ap) {
    const old = bp.get(name);
    if (!old) {
      out.push(`+ peer ${name} allowed-ips ${list(p.allowedIps)}`);
      continue;
    }
    const parts: string[] = [];
    const d = setDelta(old.allowedIps, p.allowedIps);
    if (d.added.length) parts.push(`allowed-ips +${list(d.added)}`);
    if (d.removed.length) parts.push(`allowed-ips -${list(d.removed)}`);
    if (old.endpoint !== p.endpoint) parts.push(`endpoint ${old.endpoint || '(none)'} -> ${p.endpoint || '(none)'}`);
    if (old.publicKey !== p.publicKey) parts.push('public key changed');
    if (old.persistentKeepaliveSeconds !== p.persistentKeepaliveSeconds)
      parts.push(`keepalive ${old.persistentKeepaliveSeconds}s -> ${p.persistentKeepaliveSeconds}s`);
    if (parts.length) out.push(`~ peer ${name}: ${parts.join('; ')}`);
  }
  diffList('route', before.routes, after.routes, out);
  const sub = (c: AgentConfig): string[] =>
    c.localSubnets.map(
      (s) =>
        `${s.name} ${s.prefixes.join(', ')}${s.masquerade ? ' (masquerade)' : ''}${s.gateways.length > 0 ? ` gateway ${s.gateways.join(', ')}` : ''} [${s.zone}]`,
    );
  diffList('local subnet', sub(before), sub(after), out);
  diffRules('outbound', before.firewall?.outbound ?? [], after.firewall?.outbound ?? [], out);
  diffRules('inbound', before.firewall?.inbound ?? [], after.firewall?.inbound ?? [], out);
  diffRules('local', before.firewall?.local ?? [], after.firewall?.local ?? [], out);
  diffList('masquerade', before.firewall?.masquerade ?? [], after.firewall?.masquerade ?? [], out);
  const mapTo = (c: AgentConfig): string[] => (c.firewall?.mapTo ?? []).map((m) => `${m.real} as ${m.mapped}`);
  diffList('map-to', mapTo(before), mapTo(after), out);
  const pr = (c: AgentConfig): string[] =>
    c.probes.map(
      (p) =>
        `${p.name} ${p.protocol}${p.port ? `/${p.port}` : ''} ${p.sourcePrefix} -> ${p.target}${p.expectDeny ? ' (expect deny)' : ''}`,
    );
  diffList('probe', pr(before), pr(after), out);
  if (before.probeIntervalSeconds !== after.probeIntervalSeconds)
    out.push(`~ probe interval ${before.probeIntervalSeconds}s -> ${after.probeIntervalSeconds}s`);
  diffList('serving group', groupTexts(before), groupTexts(after), out);
  return out;
}

/** Per-agent changes between two compiles, sorted by agent; agents without changes are left out. */
export function diffConfigs(
  before: ReadonlyMap<string, AgentConfig>,
  after: ReadonlyMap<string, AgentConfig>,
): AgentConfigDiff[] {
  const names = [...new Set([...before.keys(), ...after.keys()])].sort();
  const out: AgentConfigDiff[] = [];
  for (const agent of names) {
    const b = before.get(agent);
    const a = after.get(agent);
    if (b && a) {
      const lines = diffConfig(b, a);
      if (lines.length) out.push({ agent, change: 'changed', lines });
    } else if (a) {
      out.push({ agent, change: 'added', lines: describe(a, '+') });
    } else if (b) {
      out.push({ agent, change: 'removed', lines: describe(b, '-') });
    }
  }
  return out;
}

/** Plain-text rendering: one block per agent. */
export function formatConfigDiffs(diffs: readonly AgentConfigDiff[]): string {
  if (diffs.length === 0) return 'no changes\n';
  return diffs.map((d) => `${d.agent} (${d.change})\n${d.lines.map((l) => `  ${l}`).join('\n')}\n`).join('');
}
