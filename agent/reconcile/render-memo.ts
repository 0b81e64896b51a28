// Rendering 10,000 tuples takes 100-600 ms here (and validating them again 100 ms more), and most
// new configs (a peer joins, a route moves) carry the same firewall as the last one. So the
// renderer is remembered for the last input: an equal Firewall message for the same interface
// gives the same text without rendering again, and `isRendered` tells desiredState() that this
// firewall has been validated already (it is only ever rendered after it validated). Pure: no I/O.
//
// "Equal" is checked by walking the message's fields alongside a flat list of strings and numbers
// kept from the last render: 1-2 ms for 10,000 rules, where the wire bytes (toBinary, reflection
// over every field) took 50-150 ms a config. Unknown fields are not compared: the renderer never
// reads them. Should the schema gain a field the walk does not know, the memo falls back to
// comparing wire bytes (and render-memo.test.ts fails, as a reminder to extend the walk).
import { toBinary, type DescMessage } from '@bufbuild/protobuf';
import {
  FirewallSchema,
  FlowRuleSchema,
  PortRangeSchema,
  PrefixMappingSchema,
  RelayForwardSchema,
  type Firewall,
  type FlowRule,
  type PrefixMapping,
  type RelayForward,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { FirewallRenderer, FirewallRenderOptions } from './desired.js';

type Flat = Array<string | number>;

const hasFields = (schema: DescMessage, names: string[]): boolean =>
  schema.fields.length === names.length && schema.fields.every((f, i) => f.localName === names[i]);

/** True when flattenFirewall() covers every field of the schema (so it may stand in for the bytes). */
export const isFirewallWalkComplete =
  hasFields(FirewallSchema, ['outbound', 'inbound', 'local', 'masquerade', 'localPrefixes', 'relay', 'mapTo']) &&
  hasFields(PrefixMappingSchema, ['real', 'mapped']) &&
  hasFields(FlowRuleSchema, [
    'rule',
    'sources',
    'destinations',
    'protocol',
    'ports',
    'notBeforeUnixMs',
    'notAfterUnixMs',
  ]) &&
  hasFields(RelayForwardSchema, ['source', 'listen', 'target', 'snat', 'fromAgent', 'toAgent']) &&
  hasFields(PortRangeSchema, ['first', 'last']);

function pushStrings(out: Flat, list: readonly string[]): void {
  out.push(list.length);
  for (let i = 0; i < list.length; i++) out.push(list[i]!);
}

function pushRules(out: Flat, rules: readonly FlowRule[]): void {
  out.push(rules.length);
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    out.push(r.rule, r.protocol);
    pushStrings(out, r.sources);
    pushStrings(out, r.destinations);
    out.push(r.ports.length);
    for (let j = 0; j < r.ports.length; j++) out.push(r.ports[j]!.first, r.ports[j]!.last);
    out.push(Number(r.notBeforeUnixMs), Number(r.notAfterUnixMs));
  }
}

function pushRelay(out: Flat, list: readonly RelayForward[]): void {
  out.push(list.length);
  for (let i = 0; i < list.length; i++) {
    const f = list[i]!;
    out.push(f.source, f.listen, f.target, f.snat, f.fromAgent, f.toAgent);
  }
}

/** Every field of `fw` in a fixed order, with each list's length before its items (so two
 *  different messages never give the same list). */
export function flattenFirewall(fw: Firewall): Flat {
  const out: Flat = [];
  pushRules(out, fw.outbound);
  pushRules(out, fw.inbound);
  pushRules(out, fw.local);
  pushStrings(out, fw.masquerade);
  pushStrings(out, fw.localPrefixes);
  pushRelay(out, fw.relay);
  out.push(fw.mapTo.length);
  for (const m of fw.mapTo) out.push(m.real, m.mapped);
  return out;
}

/** True when `fw` flattens to `flat` (the walk of flattenFirewall(), without building a list). */
export function matchesFlat(flat: Flat, fw: Firewall): boolean {
  let at = 0;
  const strings = (list: readonly string[]): boolean => {
    if (flat[at++] !== list.length) return false;
    for (let i = 0; i < list.length; i++) if (flat[at++] !== list[i]) return false;
    return true;
  };
  const rules = (list: readonly FlowRule[]): boolean => {
    if (flat[at++] !== list.length) return false;
    for (let i = 0; i < list.length; i++) {
      const r = list[i]!;
      if (flat[at++] !== r.rule || flat[at++] !== r.protocol || !strings(r.sources) || !strings(r.destinations))
        return false;
      if (flat[at++] !== r.ports.length) return false;
      for (let j = 0; j < r.ports.length; j++)
        if (flat[at++] !== r.ports[j]!.first || flat[at++] !== r.ports[j]!.last) return false;
      if (flat[at++] !== Number(r.notBeforeUnixMs) || flat[at++] !== Number(r.notAfterUnixMs)) return false;
    }
    return true;
  };
  const relay = (list: readonly RelayForward[]): boolean => {
    if (flat[at++] !== list.length) return false;
    for (let i = 0; i < list.length; i++) {
      const f = list[i]!;
      if (flat[at++] !== f.source || flat[at++] !== f.listen || flat[at++] !== f.target) return false;
      if (flat[at++] !== f.snat || flat[at++] !== f.fromAgent || flat[at++] !== f.toAgent) return false;
    }
    return true;
  };
  const mapTo = (list: readonly PrefixMapping[]): boolean => {
    if (flat[at++] !== list.length) return false;
    for (const m of list) if (flat[at++] !== m.real || flat[at++] !== m.mapped) return false;
    return true;
  };
  return (
    rules(fw.outbound) &&
    rules(fw.inbound) &&
    rules(fw.local) &&
    strings(fw.masquerade) &&
    strings(fw.localPrefixes) &&
    relay(fw.relay) &&
    mapTo(fw.mapTo) &&
    at === flat.length
  );
}

/** What is kept of the last rendered message: its flat walk, or (schema not covered) its bytes. */
type Key = { kind: 'flat'; flat: Flat } | { kind: 'bytes'; bytes: Uint8Array };

const keyOf = (fw: Firewall): Key =>
  isFirewallWalkComplete
    ? { kind: 'flat', flat: flattenFirewall(fw) }
    : { kind: 'bytes', bytes: toBinary(FirewallSchema, fw) };

const matchesKey = (key: Key, fw: Firewall): boolean =>
  key.kind === 'flat' ? matchesFlat(key.flat, fw) : Buffer.compare(key.bytes, toBinary(FirewallSchema, fw)) === 0;

/** The render options as one string: equal options, equal text (the liveness part is small). */
function optionsKey(opts: FirewallRenderOptions): string {
  const l = opts.liveness;
  const skew = opts.clockSkewMs ? `|skew ${opts.clockSkewMs}` : '';
  const key =
    l === undefined
      ? `${opts.wgInterface}${skew}`
      : `${opts.wgInterface}|${l.port}|${l.overlayPrefixes.join(',')}|${l.lanPrefixes.join(',')}${skew}`;
  const zones = opts.zones ?? [];
  return zones.length === 0 ? key : `${key}|${zones.map((z) => `${z.zone}=${z.prefixes.join(',')}`).join(';')}`;
}

export function memoizeFirewallRenderer(render: FirewallRenderer): FirewallRenderer {
  // The key is taken when the next message is compared, not at the render: on a fresh agent the
  // render is on the critical path of the first apply, and the walk cold costs 5-8 ms there.
  let last: { options: string; key: Key | null; rendered: Firewall | null; ruleset: string } | null = null;
  // The message last found equal: isRendered() and the render that follows ask about the same one.
  let matched: Firewall | null = null;
  const isRendered = (fw: Firewall, opts: FirewallRenderOptions): boolean => {
    if (last === null || last.options !== optionsKey(opts)) return false;
    if (matched !== fw) {
      if (last.key === null) {
        last.key = keyOf(last.rendered!);
        last.rendered = null;
      }
      matched = matchesKey(last.key, fw) ? fw : null;
    }
    return matched === fw;
  };
  const memo: FirewallRenderer = (fw, opts) => {
    if (isRendered(fw, opts)) return last!.ruleset;
    // A throwing render leaves the last good entry in place.
    const ruleset = render(fw, opts);
    last = { options: optionsKey(opts), key: null, rendered: fw, ruleset };
    matched = fw;
    return ruleset;
  };
  memo.isRendered = isRendered;
  return memo;
}
