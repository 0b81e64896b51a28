// The inventory side: each agent's parsed facts, and which agent serves each subnet cluster.
import { NOT_ENROLLED } from '../unserved.js';
import { hostPrefixOf, mergeParsed, prefixContains, type ParsedPrefix, type PrefixCache } from '../prefixes.js';
import type { AgentName, Inventory, SubnetName } from '../types.js';
import { cmp, serversOf, type AgentMeta, type CompilerState, type PolicyIndex } from './types.js';

export function buildAgents(
  cache: PrefixCache,
  inventory: Inventory,
  previous?: Map<AgentName, AgentMeta>,
): Map<AgentName, AgentMeta> {
  const out = new Map<AgentName, AgentMeta>();
  for (const a of [...inventory.agents].sort((x, y) => cmp(x.name, y.name))) {
    const identitySig = JSON.stringify([
      a.publicKey,
      a.endpoint,
      a.overlayAddress,
      a.endpoints ?? [],
      a.isRelay === true,
    ]);
    const servingSig = JSON.stringify([[...a.advertised].sort(), a.isHealthy]);
    const old = previous?.get(a.name);
    if (old && old.identitySig === identitySig && old.servingSig === servingSig) {
      out.set(a.name, old);
      continue;
    }
    const advertised: ParsedPrefix[] = [];
    for (const text of a.advertised) {
      const p = cache.lenient(text);
      if (p) advertised.push(p);
    }
    const overlayIp = a.overlayAddress.split('/')[0] ?? '';
    const hostPrefix = hostPrefixOf(overlayIp);
    out.set(a.name, {
      agent: a,
      // Merged: a subnet of four adjacent /24s is one /22 to the compiler, and a box that
      // advertises the four /24s serves it.
      advertised: mergeParsed(advertised),
      hostPrefix,
      host: hostPrefix ? cache.get(hostPrefix) : undefined,
      overlayIp,
      identitySig,
      servingSig,
    });
  }
  return out;
}

/** Sets st.overlayHosts (and its IPv4 numbers) from the agents' overlay addresses, sorted. */
export function buildOverlayHosts(st: CompilerState): void {
  const hosts: { 4: bigint[]; 6: bigint[] } = { 4: [], 6: [] };
  for (const m of st.agents.values()) {
    if (!m.hostPrefix) continue;
    const p = st.cache.get(m.hostPrefix);
    hosts[p.family].push(p.start);
  }
  hosts[4].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  st.overlayHosts4 = hosts[4].map((x) => Number(x));
  hosts[6].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  st.overlayHosts = hosts;
}

/** The index of the first element of sorted `list` that is >= `x`. */
function lowerBound<T extends number | bigint>(list: readonly T[], x: T): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < x)
      lo = mid + 1; // lo <= mid < hi <= length
    else hi = mid;
  }
  return lo;
}

function overlapsOverlay(st: CompilerState, p: ParsedPrefix): boolean {
  // The first overlay host >= start, if any, must be past the end (numbers for IPv4, bigints for IPv6).
  if (p.family === 4) {
    const first = st.overlayHosts4[lowerBound(st.overlayHosts4, p.key)];
    return first !== undefined && first <= p.endKey;
  }
  const first = st.overlayHosts[6][lowerBound(st.overlayHosts[6], p.start)];
  return first !== undefined && first <= p.end;
}

/**
 * A cluster is served by the first agent of its via that is enrolled, healthy and advertises all of
 * it. With more than one such agent able to serve it (healthy or not), it is a serving group: its
 * candidates are those agents, the healthy ones first (each part in via order), and the edges fail
 * over among them by themselves (docs/health.md, "Failover at the edges").
 * A group stays even when the controller judges none of its candidates healthy (it lost their
 * streams, or is cut off from them while they still reach each other): the edges decide on their
 * own echo, so the controller serves it by its first candidate in via order and records why it
 * cannot confirm that (unconfirmedReason). One candidate alone that is unhealthy leaves it unserved.
 */
export function serveCluster(st: CompilerState, idx: PolicyIndex, cluster: string): void {
  const members = idx.clusters.get(cluster) ?? [];
  const prefixes: ParsedPrefix[] = [];
  // The boxes advertise their LANs, so in real space.
  for (const m of members) {
    const info = idx.subnets.get(m);
    for (const p of info?.realPrefixes ?? info?.prefixes ?? []) prefixes.push(p);
  }
  const first = members[0];
  const via = (first !== undefined ? idx.subnets.get(first)?.subnet.via : undefined) ?? [];
  let server: AgentName | undefined;
  const why: string[] = [];
  const healthy: AgentName[] = [];
  const unhealthy: AgentName[] = [];
  const clash = prefixes.find((p) => overlapsOverlay(st, p));
  if (clash) {
    why.push(`${clash.text} overlaps an agent's overlay address`);
  } else {
    for (const a of via) {
      const meta = st.agents.get(a);
      if (!meta) {
        why.push(`${a}${NOT_ENROLLED}`);
        continue;
      }
      const missing = prefixes.find((p) => !meta.advertised.some((o) => prefixContains(o, p)));
      if (!meta.agent.isHealthy) {
        why.push(`${a} is unhealthy`);
        if (!missing) unhealthy.push(a);
      } else if (missing) why.push(`${a} does not advertise ${missing.text}`);
      else {
        healthy.push(a);
        server ??= a;
      }
    }
  }
  const candidates = healthy.length + unhealthy.length > 1 ? [...healthy, ...unhealthy] : null;
  if (candidates) server ??= candidates[0];
  const isUnconfirmed = candidates !== null && healthy.length === 0;
  for (const m of members) {
    if (server) {
      st.served.set(m, server);
      st.unservedReason.delete(m);
    } else {
      st.served.delete(m);
      st.unservedReason.set(m, why.length > 0 ? why.join('; ') : 'via names no agent');
    }
    if (isUnconfirmed) st.unconfirmedReason.set(m, why.join('; '));
    else st.unconfirmedReason.delete(m);
    const before = st.candidates.get(m);
    if (!candidates) st.candidates.delete(m);
    else if (!before || before.join() !== candidates.join()) st.candidates.set(m, candidates);
  }
}

/** Each agent's local subnets: the ones it serves, and the ones it is a candidate of. */
export function buildLocalByAgent(st: CompilerState): Map<AgentName, SubnetName[]> {
  const out = new Map<AgentName, SubnetName[]>();
  for (const s of st.served.keys()) {
    for (const a of serversOf(st, s)) {
      const l = out.get(a);
      if (l) l.push(s);
      else out.set(a, [s]);
    }
  }
  for (const l of out.values()) l.sort(cmp);
  return out;
}
