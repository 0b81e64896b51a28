// What a new policy document changes, at the level the engineer wrote it: underlays, zones, agents,
// subnets, groups, rules and tests added, removed or changed (with the fields that changed). It
// needs no agent: a dry run shows it whether the boxes are connected or not, beside the per-box
// config diff (diff.ts). Pure.
import { formatPortSpec } from './ports.js';
import { DEFAULT_UNDERLAY, type Policy, type Rule } from './types.js';

type Fields = Record<string, string>;

/** One entity's fields as short text, in a fixed order; empty values left out. */
type Describe<T> = (x: T) => Fields;

const joined = (xs: readonly string[] | undefined): string => (xs ?? []).join(', ');

const SECTIONS: Array<{ kind: string; items: (p: Policy) => Array<{ name: string; fields: Fields }> }> = [
  section(
    'underlay',
    (p) => p.underlays,
    (u) => ({ description: u.description }),
  ),
  section(
    'zone',
    (p) => p.zones,
    (z) => ({ description: z.description }),
  ),
  section(
    'agent',
    (p) => p.agents,
    (a) => ({
      zones: joined(a.zones),
      underlays: a.underlays.join(', ') === DEFAULT_UNDERLAY ? '' : joined(a.underlays),
      relay: a.isRelay ? 'yes' : '',
      site: a.site ?? '',
    }),
  ),
  section(
    'subnet',
    (p) => p.subnets,
    (s) => ({
      // A mapped subnet: its written (real) prefixes, and what the overlay knows them by.
      cidr: joined(s.realCidrs ?? s.cidrs),
      'map-to': s.realCidrs ? joined(s.cidrs) : '',
      zone: s.zone,
      via: joined(s.via),
      gateway: joined(s.gateways),
      masquerade: s.masquerade ? 'yes' : '',
      description: s.description ?? '',
    }),
  ),
  section(
    'group',
    (p) => p.groups,
    (g) => ({ members: joined(g.members), description: g.description ?? '' }),
  ),
  section('rule', (p) => p.rules, ruleFields),
];

function section<T extends { name: string }>(kind: string, list: (p: Policy) => readonly T[], describe: Describe<T>) {
  return { kind, items: (p: Policy) => list(p).map((x) => ({ name: x.name, fields: describe(x) })) };
}

function ruleFields(r: Rule): Fields {
  return {
    from: joined(r.from),
    to: joined(r.to),
    ports: r.ports.map(formatPortSpec).join(', '),
    ticket: r.ticket ?? '',
    description: r.description ?? '',
    'not-before': r.notBeforeMs !== undefined ? new Date(r.notBeforeMs).toISOString() : '',
    'not-after': r.notAfterMs !== undefined ? new Date(r.notAfterMs).toISOString() : '',
    probes: r.probes
      .map((p) => `${p.proto}${p.port !== undefined ? `/${p.port}` : ''} ${p.from} -> ${p.to} expect ${p.expect}`)
      .join('; '),
  };
}

/** "from a -> to b, ports tcp/443" (the fields that are set). */
function summary(f: Fields): string {
  return Object.entries(f)
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `${k} ${v}`)
    .join('; ');
}

const show = (v: string): string => (v === '' ? '(none)' : v);

/**
 * Lines "+ KIND NAME: fields", "- KIND NAME" and "~ KIND NAME: field old -> new; ...", in the
 * order underlays, zones, agents, subnets, groups, rules (each by name), then tests. `before` null:
 * there is no policy yet (everything is added). Empty: the two documents mean the same.
 */
export function diffPolicies(before: Policy | null, after: Policy): string[] {
  const out: string[] = [];
  for (const s of SECTIONS) {
    const old = new Map((before ? s.items(before) : []).map((x) => [x.name, x.fields]));
    const now = new Map(s.items(after).map((x) => [x.name, x.fields]));
    const names = [...new Set([...old.keys(), ...now.keys()])].sort();
    for (const name of names) {
      const a = old.get(name);
      const b = now.get(name);
      if (a === undefined && b !== undefined) out.push(`+ ${s.kind} ${name}${summary(b) ? `: ${summary(b)}` : ''}`);
      else if (a !== undefined && b === undefined) out.push(`- ${s.kind} ${name}`);
      else if (a !== undefined && b !== undefined) {
        const changed = Object.keys(b)
          .filter((k) => a[k] !== b[k])
          .map((k) => `${k} ${show(a[k] ?? '')} -> ${show(b[k]!)}`);
        if (changed.length > 0) out.push(`~ ${s.kind} ${name}: ${changed.join('; ')}`);
      }
    }
  }
  // Rule order matters only for which rule a flow is reported under; say so when it changed.
  if (before) {
    const common = new Set(after.rules.map((r) => r.name));
    const oldOrder = before.rules.map((r) => r.name).filter((n) => common.has(n));
    const keep = new Set(oldOrder);
    const newOrder = after.rules.map((r) => r.name).filter((n) => keep.has(n));
    if (oldOrder.join('\n') !== newOrder.join('\n')) out.push(`~ rule order: ${newOrder.join(', ')}`);
  }
  const test = (t: Policy['tests'][number]): string =>
    `${t.name ? `"${t.name}" ` : ''}${t.from} -> ${t.to} ${t.proto ?? (t.port !== undefined ? 'tcp' : 'any')}${t.port !== undefined ? `/${t.port}` : ''} expect ${t.expect}`;
  const oldTests = new Set((before?.tests ?? []).map(test));
  const newTests = new Set(after.tests.map(test));
  for (const x of newTests) if (!oldTests.has(x)) out.push(`+ test ${x}`);
  for (const x of oldTests) if (!newTests.has(x)) out.push(`- test ${x}`);
  return out;
}
