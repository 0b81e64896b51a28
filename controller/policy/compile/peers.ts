// An agent's peers: for each, the subnets it carries (its allowed IPs and this agent's routes) and
// how to reach it — direct on a shared underlay, through relays, or no path (recorded for status).
import type { Peer, PeerPath } from '../../../proto/gen/crosslink/v1/agent_pb.js';
import { choosePath, pairKey, type PairPath } from '../paths.js';
import { mergeParsed, type ParsedPrefix } from '../prefixes.js';
import type { AgentName, SubnetName } from '../types.js';
import type { PeerSubnets } from './firewall.js';
import { pathAgent, register, relaysFor, unregister } from './relays.js';
import { cmp, type CompilerState, type PolicyIndex } from './types.js';

/** Agent `name`'s peers and routes; registers the relay forwards of its pairs (as their first agent)
 *  and records the pairs that do not peer directly. */
export function peersOf(
  st: CompilerState,
  idx: PolicyIndex,
  name: AgentName,
  peerSubnets: PeerSubnets,
): { peers: Peer[]; routes: string[]; sentToGroups: ReadonlySet<SubnetName> | undefined } {
  const peers: Peer[] = [];
  const routePrefixes: ParsedPrefix[] = [];
  /** Grouped subnets this box sends to (not a candidate of). */
  let groups: Set<SubnetName> | undefined;
  unregister(st, name);
  let indirect: Map<AgentName, PairPath> | undefined;
  const self = pathAgent(st, idx, name);
  for (const [peerName, subnets] of [...peerSubnets].sort((x, y) => cmp(x[0], y[0]))) {
    const pm = st.agents.get(peerName);
    // Peers come from served subnets, and only inventory agents serve.
    if (!pm) throw new Error(`compile: peer ${peerName} of ${name} is not in the inventory`);
    // A serving group's prefixes are in no peer's allowed IPs: the box gives them to the candidate
    // it sees alive (serving_groups). They are routed, unless this box is a candidate itself.
    const subnetPrefixes: ParsedPrefix[] = [];
    for (const s of subnets) {
      const group = st.candidates.get(s);
      const own = idx.subnets.get(s)?.prefixes ?? [];
      if (!group) {
        for (const p of own) {
          subnetPrefixes.push(p);
          routePrefixes.push(p);
        }
      } else if (!group.includes(name)) {
        for (const p of own) routePrefixes.push(p);
        (groups ??= new Set()).add(s);
      }
    }
    if (pm.host) subnetPrefixes.push(pm.host);
    const other = pathAgent(st, idx, peerName);
    const path = choosePath(self, other, relaysFor(st, idx));
    let endpoint = '';
    let paths: PeerPath[] = [];
    if (path.kind === 'direct') {
      endpoint = other.endpoints.find((e) => e.underlay === path.underlay)?.endpoint ?? '';
    } else {
      (indirect ??= new Map()).set(peerName, path);
      if (path.kind === 'relay') {
        const isA = name < peerName;
        paths = path.hops.map((h) => ({
          $typeName: 'crosslink.v1.PeerPath',
          endpoint: isA ? h.endpointForA : h.endpointForB,
          relay: h.relay,
          underlay: isA ? h.underlayA : h.underlayB,
        }));
        endpoint = paths[0]?.endpoint ?? '';
        if (isA) for (const h of path.hops) register(st, name, h.relay, pairKey(name, peerName), h.forwards);
      }
    }
    peers.push({
      $typeName: 'crosslink.v1.Peer',
      name: peerName,
      publicKey: pm.agent.publicKey,
      endpoint,
      persistentKeepaliveSeconds: st.keepalive,
      allowedIps: mergeParsed(subnetPrefixes).map((p) => p.text),
      overlayIp: pm.overlayIp,
      paths,
    });
  }
  if (indirect) st.indirectByAgent.set(name, indirect);
  else st.indirectByAgent.delete(name);
  st.indirectView = undefined;
  return { peers, routes: mergeParsed(routePrefixes).map((p) => p.text), sentToGroups: groups };
}
