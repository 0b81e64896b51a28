// How each pair of agents reaches the other: path views of agents, the policy's relays, and the
// relay forwards each pair through a relay registers on it.
import type { RelayForward } from '../../../proto/gen/crosslink/v1/agent_pb.js';
import { overlaySlot, type PathAgent, type RelayCandidate } from '../paths.js';
import { DEFAULT_UNDERLAY, type AgentName, type InventoryAgent } from '../types.js';
import { cmp, type CompilerState, type PolicyIndex } from './types.js';

export function resetPaths(st: CompilerState): void {
  st.pathAgents = new Map();
  st.relayCandidates = undefined;
}

/** How path selection sees an agent: the policy's underlays for it (else what it announced) and
 *  its announced endpoints on them. A bare HOST:PORT (underlay "default") of a box the policy puts
 *  on exactly one underlay is on that one, so boxes keep working while they are upgraded. */
export function pathAgent(st: CompilerState, idx: PolicyIndex, name: AgentName): PathAgent {
  let pa = st.pathAgents.get(name);
  if (pa) return pa;
  const meta = st.agents.get(name);
  const declared = idx.policyAgents.get(name)?.underlays;
  const announced = meta ? announcedEndpoints(meta.agent) : [];
  const underlays = declared ?? [...new Set(announced.map((e) => e.underlay))].sort();
  const [only] = underlays.length === 1 ? underlays : [];
  const endpoints: Array<{ underlay: string; endpoint: string }> = [];
  for (const e of announced) {
    const u = e.underlay === DEFAULT_UNDERLAY && only !== undefined ? only : e.underlay;
    if (underlays.includes(u) && !endpoints.some((x) => x.underlay === u))
      endpoints.push({ underlay: u, endpoint: e.endpoint });
  }
  endpoints.sort((x, y) => cmp(x.underlay, y.underlay));
  pa = { name, underlays, endpoints, isHealthy: meta?.agent.isHealthy ?? false };
  const slot = meta ? overlaySlot(meta.agent.overlayAddress) : undefined;
  if (slot !== undefined) pa.slot = slot;
  st.pathAgents.set(name, pa);
  return pa;
}

/** The policy's relays, each usable or with the reason it is not. */
export function relaysFor(st: CompilerState, idx: PolicyIndex): RelayCandidate[] {
  if (st.relayCandidates) return st.relayCandidates;
  const out: RelayCandidate[] = [];
  for (const pa of idx.policyAgents.values()) {
    if (!pa.isRelay) continue;
    const meta = st.agents.get(pa.name);
    const agent = pathAgent(st, idx, pa.name);
    if (!meta) out.push({ agent, unusable: 'is not enrolled' });
    else if (meta.agent.isRelay !== true)
      out.push({ agent, unusable: 'has not consented (its agent runs without --relay)' });
    else out.push({ agent });
  }
  st.relayCandidates = out;
  return out;
}

export function computeRelaySig(st: CompilerState, idx: PolicyIndex): string {
  return JSON.stringify(
    relaysFor(st, idx).map((c) => [
      c.agent.name,
      c.unusable ?? '',
      c.agent.underlays,
      c.agent.endpoints,
      c.agent.slot ?? -1,
      c.agent.isHealthy,
    ]),
  );
}

export function register(
  st: CompilerState,
  owner: AgentName,
  relay: AgentName,
  key: string,
  forwards: readonly RelayForward[],
): void {
  let pairs = st.relayPairs.get(relay);
  if (!pairs) st.relayPairs.set(relay, (pairs = new Map<string, RelayForward[]>()));
  pairs.set(key, [...forwards]);
  let list = st.registeredBy.get(owner);
  if (!list) st.registeredBy.set(owner, (list = []));
  list.push({ relay, key });
  st.dirtyRelays.add(relay);
}

export function unregister(st: CompilerState, owner: AgentName): void {
  const list = st.registeredBy.get(owner);
  if (!list) return;
  for (const { relay, key } of list) {
    const pairs = st.relayPairs.get(relay);
    if (pairs?.delete(key)) st.dirtyRelays.add(relay);
    if (pairs && pairs.size === 0) st.relayPairs.delete(relay);
  }
  st.registeredBy.delete(owner);
}

export function forgetAgent(st: CompilerState, name: AgentName): void {
  unregister(st, name);
  if (st.indirectByAgent.delete(name)) st.indirectView = undefined;
}

/** Relays whose pairs changed since the last call, sorted. */
export function takeDirtyRelays(st: CompilerState): AgentName[] {
  const out = [...st.dirtyRelays].filter((r) => st.agents.has(r)).sort(cmp);
  st.dirtyRelays = new Set();
  return out;
}

/** The forwards a relay carries for every pair through it, sorted. */
export function relayForwardsOf(st: CompilerState, name: AgentName): RelayForward[] {
  const relay: RelayForward[] = [];
  for (const forwards of st.relayPairs.get(name)?.values() ?? []) for (const f of forwards) relay.push(f);
  relay.sort((x, y) => cmp(x.listen, y.listen) || cmp(x.source, y.source));
  return relay;
}

/** An inventory agent's endpoints by underlay: `endpoints`, or the bare `endpoint` on "default". */
export function announcedEndpoints(a: InventoryAgent): Array<{ underlay: string; endpoint: string }> {
  if (a.endpoints && a.endpoints.length > 0) return a.endpoints;
  return a.endpoint !== '' ? [{ underlay: DEFAULT_UNDERLAY, endpoint: a.endpoint }] : [];
}
