// `crosslink trace --live`: which boxes a live test flow crosses and what each is asked to watch
// (proto TraceRequest), and the per-box answer put together. PURE: the controller's trace
// (controller/policy/trace.ts) and the deployed peer entry in, requests and the table out.
import { containsAddress, parseAddress, PrefixCache } from '../policy/prefixes.js';
import type { EvalProtocol } from '../policy/evaluate.js';
import type { Policy } from '../policy/types.js';
import type { TraceResult } from '../policy/trace.js';

export type LiveRole = 'source' | 'relay' | 'destination';

export interface LiveRequest {
  agent: string;
  role: LiveRole;
  sourcePrefix: string;
  target: string;
  protocol: 'tcp' | 'udp' | 'icmp';
  port: number;
  sourcePort: number;
  peerA: string;
  peerB: string;
}

export type LivePlan = { requests: LiveRequest[] } | { notRun: string };

/** One box's answer, as GET /v1/trace?live=true shows it. */
export interface LiveBox {
  agent: string;
  role: LiveRole;
  /** sent | admitted | dropped | forwarded | not-seen | error (the box's), or no-answer. */
  verdict: string;
  rule: string | null;
  direction: string | null;
  packets: number;
  bytes: number;
  replyPackets: number;
  replyBytes: number;
  detail: string;
}

/** The most specific prefix of `subnet` that holds `address`, or null. */
function prefixOf(policy: Policy, subnet: string, address: string): string | null {
  const addr = parseAddress(address);
  const s = policy.subnets.find((x) => x.name === subnet);
  if (!addr || !s) return null;
  const cache = new PrefixCache();
  let best: { text: string; length: number } | null = null;
  for (const c of s.cidrs) {
    const p = cache.get(c);
    if (containsAddress(p, addr.family, addr.value) && (best === null || p.length > best.length))
      best = { text: c, length: p.length };
  }
  return best?.text ?? null;
}

/**
 * The boxes a live test of `r` crosses, in path order, each with what to watch. The source box
 * sends from its own address in the source subnet's prefix (as path probes do): the flow the boxes
 * judge is that address's, to the real destination. Not run (with the reason) when no box serves
 * an end, the two boxes are not peers (nothing of the flow would cross the overlay), or the
 * protocol is "any" (a test packet needs one).
 */
export function planLiveTrace(
  policy: Policy,
  r: Pick<TraceResult, 'from' | 'to' | 'proto' | 'port' | 'path'>,
  peer: (a: string, b: string) => { endpoint: string; relays: Array<{ relay: string; endpoint: string }> } | null,
  sourcePort: number,
): LivePlan {
  const proto: EvalProtocol = r.proto;
  if (proto === 'any') return { notRun: 'a live test sends one protocol: give --proto tcp, udp or icmp' };
  for (const e of [r.from, r.to]) {
    if (e.subnet === null) return { notRun: `${e.address} is in no subnet of the policy: no box would carry it` };
    if (e.servedBy === null) return { notRun: `nobody serves subnet ${e.subnet}: ${e.unserved ?? 'unserved'}` };
  }
  const a = r.from.servedBy!;
  const b = r.to.servedBy!;
  const sourcePrefix = prefixOf(policy, r.from.subnet!, r.from.address);
  if (sourcePrefix === null) return { notRun: `no prefix of subnet ${r.from.subnet} holds ${r.from.address}` };
  const common = {
    sourcePrefix,
    target: r.to.address,
    protocol: proto,
    port: proto === 'icmp' ? 0 : (r.port ?? 0),
    sourcePort: proto === 'icmp' ? 0 : sourcePort,
    peerA: '',
    peerB: '',
  };
  if (a === b) return { requests: [{ ...common, agent: a, role: 'source' }] };
  const p = peer(a, b);
  if (p === null)
    return {
      notRun: `${a} has no peer ${b} in its config: no rule allows any flow between the two boxes, so nothing of this flow crosses the overlay (${a} drops it on its LAN side)`,
    };
  const relay = p.relays.find((x) => x.endpoint === p.endpoint)?.relay ?? p.relays[0]?.relay ?? null;
  const requests: LiveRequest[] = [{ ...common, agent: a, role: 'source' }];
  if (relay !== null) requests.push({ ...common, agent: relay, role: 'relay', peerA: a, peerB: b });
  requests.push({ ...common, agent: b, role: 'destination' });
  return { requests };
}

/** The per-box table: answers in path order, a box that did not answer in time as "no-answer". */
export function liveBoxes(
  requests: readonly LiveRequest[],
  answers: ReadonlyMap<string, Omit<LiveBox, 'agent' | 'role'>>,
  unreachable: ReadonlyMap<string, string>,
  windowMs: number,
): LiveBox[] {
  return requests.map((q) => {
    const a = answers.get(q.agent);
    if (a) return { agent: q.agent, role: q.role, ...a };
    return {
      agent: q.agent,
      role: q.role,
      verdict: 'no-answer',
      rule: null,
      direction: null,
      packets: 0,
      bytes: 0,
      replyPackets: 0,
      replyBytes: 0,
      detail: unreachable.get(q.agent) ?? `no answer within ${windowMs} ms of the window's end`,
    };
  });
}
