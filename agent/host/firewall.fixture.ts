// Firewall messages for tests: a compact way to write FlowRules, and a generator for N tuples.
import { create } from '@bufbuild/protobuf';
import {
  FirewallSchema,
  FlowRuleSchema,
  PortRangeSchema,
  type Firewall,
  type FlowRule,
} from '../../proto/gen/crosslink/v1/agent_pb.js';

export function flow(
  rule: string,
  sources: string[],
  destinations: string[],
  protocol: string,
  ports: Array<number | [number, number]> = [],
): FlowRule {
  return create(FlowRuleSchema, {
    rule,
    sources,
    destinations,
    protocol,
    ports: ports.map((p) =>
      typeof p === 'number'
        ? create(PortRangeSchema, { first: p, last: p })
        : create(PortRangeSchema, { first: p[0], last: p[1] }),
    ),
  });
}

export function firewall(
  parts: Partial<Pick<Firewall, 'outbound' | 'inbound' | 'local' | 'masquerade' | 'localPrefixes' | 'relay' | 'mapTo'>>,
): Firewall {
  return create(FirewallSchema, parts);
}

/** `n` distinct non-overlapping tcp tuples split over outbound and inbound (distinct /32 sources
 *  over 100 destination /24s, as in GUIDE §6), plus `extra` rules. */
export function manyTuples(n: number, extra: Partial<Pick<Firewall, 'outbound' | 'inbound'>> = {}): Firewall {
  const outbound: FlowRule[] = [...(extra.outbound ?? [])];
  const inbound: FlowRule[] = [...(extra.inbound ?? [])];
  for (let i = 0; i < n; i++) {
    const src = `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    const dst = `10.${50 + ((i % 100) >> 8)}.${i % 100}.0/24`;
    const rule = flow(`r${i}`, [src], [dst], 'tcp', [443]);
    (i % 2 === 0 ? outbound : inbound).push(rule);
  }
  return firewall({ outbound, inbound, localPrefixes: ['10.50.0.0/16'] });
}
