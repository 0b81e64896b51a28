// One agent's config, composed from its sections: firewall rules, peers and routes, relay forwards,
// local subnets (with masquerade) and probes.
import { create } from '@bufbuild/protobuf';
import {
  AgentConfigSchema,
  LivenessSchema,
  ServingGroupSchema,
  type AgentConfig,
  type LocalSubnet,
  type PrefixMapping,
  type Probe,
  type ServingGroup,
  type ZonePrefixes,
} from '../../../proto/gen/crosslink/v1/agent_pb.js';
import { mergePrefixes, PrefixCache } from '../prefixes.js';
import type { AgentName, SubnetName } from '../types.js';
import { firewallOf, mergedOf, ownMergedOf, type PeerSubnets } from './firewall.js';
import { contentHash } from './hash.js';
import { peersOf } from './peers.js';
import { relayForwardsOf } from './relays.js';
import { cmp, type CompilerState, type PolicyIndex } from './types.js';

export function buildAgent(st: CompilerState, idx: PolicyIndex, name: AgentName): AgentConfig {
  const meta = st.agents.get(name);
  if (!meta) throw new Error(`compile: ${name} is not in the inventory`); // callers build inventory agents only
  const local = st.localByAgent.get(name) ?? [];
  const fw = firewallOf(st, idx, name, local);
  const { peers, routes, sentToGroups } = peersOf(st, idx, name, fw.peerSubnets);
  const servingGroups = servingGroupsOf(st, idx, local, sentToGroups);
  const cfg = create(AgentConfigSchema, {
    agentName: name,
    overlayAddress: meta.agent.overlayAddress,
    peers,
    routes,
    firewall: {
      outbound: fw.outbound,
      inbound: fw.inbound,
      local: fw.local,
      masquerade: ownMergedOf(
        idx,
        local.filter((s) => idx.subnets.get(s)?.subnet.masquerade),
      ) as string[],
      localPrefixes: ownMergedOf(idx, local) as string[],
      relay: relayForwardsOf(st, name),
      mapTo: mapToOf(idx, local),
    },
    localSubnets: localSubnetsOf(idx, local),
    // Path probes run on the box that serves now, not on a standby (its replies would go to the primary).
    probes: probesOf(
      idx,
      local.filter((s) => st.served.get(s) === name),
    ),
    probeIntervalSeconds: st.probeInterval,
    servingGroups,
    zones: zonesOf(idx, local, fw.peerSubnets),
  });
  if (servingGroups.length > 0) cfg.liveness = create(LivenessSchema, st.liveness);
  if (st.isHashed) cfg.contentHash = contentHash(cfg);
  return cfg;
}

/**
 * The serving groups of a config, one per cluster, sorted by name: the groups it may serve (with
 * its local subnets of each) and the ones it sends to (with the prefixes it sends to).
 */
function servingGroupsOf(
  st: CompilerState,
  idx: PolicyIndex,
  local: readonly SubnetName[],
  sentTo: ReadonlySet<SubnetName> | undefined,
): ServingGroup[] {
  const byCluster = new Map<string, { subnets: SubnetName[]; isCandidate: boolean }>();
  const add = (s: SubnetName, isCandidate: boolean): void => {
    const cluster = idx.subnets.get(s)?.cluster;
    if (cluster === undefined || !st.candidates.has(s)) return;
    const g = byCluster.get(cluster);
    if (g) g.subnets.push(s);
    else byCluster.set(cluster, { subnets: [s], isCandidate });
  };
  for (const s of local) add(s, true);
  for (const s of sentTo ?? []) add(s, false);
  const out: ServingGroup[] = [];
  for (const [cluster, g] of byCluster) {
    const subnets = g.subnets.sort(cmp);
    out.push(
      create(ServingGroupSchema, {
        name: cluster,
        // A group the box may serve is its own LAN (adverts, gateway): real prefixes for a mapped one.
        prefixes: (g.isCandidate ? ownMergedOf(idx, subnets) : mergedOf(idx, subnets)) as string[],
        candidates: [...(st.candidates.get(subnets[0]!) ?? [])],
        subnets: g.isCandidate ? subnets : [],
      }),
    );
  }
  return out.sort((a, b) => cmp(a.name, b.name));
}

/** The zones of the box's own subnets and its peers' (every subnet a flow of this box can come from
 *  or go to), each with those subnets' prefixes merged, sorted by zone. */
const mergePrefixTexts = (texts: readonly string[]): string[] => mergePrefixes(new PrefixCache(), texts);

function zonesOf(idx: PolicyIndex, local: readonly SubnetName[], peerSubnets: PeerSubnets): ZonePrefixes[] {
  const byZone = new Map<string, Set<SubnetName>>();
  const add = (s: SubnetName): void => {
    const zone = idx.subnets.get(s)?.subnet.zone;
    if (zone === undefined) return;
    const names = byZone.get(zone);
    if (names) names.add(s);
    else byZone.set(zone, new Set([s]));
  };
  for (const s of local) add(s);
  for (const subnets of peerSubnets.values()) for (const s of subnets) add(s);
  // The box's forward chain sees its own mapped subnets by their real prefixes, others by their mapped ones.
  const own = new Set(local);
  return [...byZone.keys()].sort(cmp).map((zone) => {
    const names = [...byZone.get(zone)!].sort(cmp);
    const isOwnMapped = names.some((n) => own.has(n) && idx.subnets.get(n)?.realPrefixes);
    return {
      $typeName: 'crosslink.v1.ZonePrefixes' as const,
      zone,
      prefixes: (isOwnMapped
        ? mergePrefixTexts([
            ...ownMergedOf(
              idx,
              names.filter((n) => own.has(n)),
            ),
            ...mergedOf(
              idx,
              names.filter((n) => !own.has(n)),
            ),
          ])
        : mergedOf(idx, names)) as string[],
    };
  });
}

/** The 1:1 translations of the box's mapped subnets, sorted by real prefix. */
function mapToOf(idx: PolicyIndex, local: readonly SubnetName[]): PrefixMapping[] {
  const out: PrefixMapping[] = [];
  for (const s of local) {
    const sub = idx.subnets.get(s)?.subnet;
    sub?.realCidrs?.forEach((real, i) =>
      out.push({ $typeName: 'crosslink.v1.PrefixMapping', real, mapped: sub.cidrs[i]! }),
    );
  }
  return out.sort((a, b) => cmp(a.real, b.real));
}

function localSubnetsOf(idx: PolicyIndex, local: readonly SubnetName[]): LocalSubnet[] {
  const out: LocalSubnet[] = [];
  for (const s of local) {
    const sub = idx.subnets.get(s)?.subnet;
    if (sub)
      out.push({
        $typeName: 'crosslink.v1.LocalSubnet',
        name: s,
        zone: sub.zone,
        prefixes: sub.realCidrs ?? sub.cidrs,
        masquerade: sub.masquerade,
        gateways: sub.gateways ?? [],
      });
  }
  return out;
}

/** The probes whose source is one of the agent's subnets, each from that subnet's prefix of the target's family. */
function probesOf(idx: PolicyIndex, local: readonly SubnetName[]): Probe[] {
  const probes: Probe[] = [];
  for (const s of local) {
    for (const { name, probe } of idx.probesBySubnet.get(s) ?? []) {
      const family = probe.to.includes(':') ? 6 : 4;
      // Sent from the box's real address on that LAN; a mapped one leaves translated like its hosts'.
      const info = idx.subnets.get(s);
      const source = (info?.realPrefixes ?? info?.prefixes)?.find((p) => p.family === family);
      probes.push({
        $typeName: 'crosslink.v1.Probe',
        name,
        target: probe.to,
        protocol: probe.proto,
        port: probe.port ?? 0,
        expectDeny: probe.expect === 'deny',
        sourcePrefix: source?.text ?? '',
      });
    }
  }
  return probes.sort((a, b) => cmp(a.name, b.name));
}
