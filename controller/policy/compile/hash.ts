// The content hash of a config: what the distributor compares to decide whether to push.
import { createHash } from 'node:crypto';
import type { AgentConfig, FlowRule } from '../../../proto/gen/crosslink/v1/agent_pb.js';

const listDigests = new WeakMap<readonly string[], string>();

/**
 * A long list shared by many configs (a group's merged prefixes: frozen, built once per rule) stands
 * in the hashed text as "#" + its own SHA-256, computed once; equal content still gives an equal
 * digest, so the config hash stays a function of content alone.
 */
function list(items: readonly string[]): readonly string[] | string {
  if (items.length < 64 || !Object.isFrozen(items)) return items;
  let d = listDigests.get(items);
  if (d === undefined) {
    d = `#${createHash('sha256').update(JSON.stringify(items)).digest('hex')}`;
    listDigests.set(items, d);
  }
  return d;
}

/**
 * SHA-256 (hex) of the config's canonical content: every field except generation and content_hash,
 * in field-number order, as compact JSON of nested arrays. Lists are already sorted by the compiler,
 * so equal content gives equal text. (Several times faster than hashing the protobuf encoding,
 * which dominated a 10,000-agent compile.)
 */
export function contentHash(cfg: AgentConfig): string {
  const fw = cfg.firewall;
  const flow = (r: FlowRule): unknown[] => [
    r.rule,
    list(r.sources),
    list(r.destinations),
    r.protocol,
    r.ports.map((p) => [p.first, p.last]),
    // A window only when set, so configs without one keep their hash.
    ...(r.notBeforeUnixMs !== 0n || r.notAfterUnixMs !== 0n
      ? [String(r.notBeforeUnixMs), String(r.notAfterUnixMs)]
      : []),
  ];
  const canonical: unknown[] = [
    cfg.agentName,
    cfg.overlayAddress,
    // Paths and relay forwards only when present, so configs without them keep their hash.
    cfg.peers.map((p) =>
      p.paths.length > 0
        ? [
            p.name,
            p.publicKey,
            p.endpoint,
            p.persistentKeepaliveSeconds,
            p.allowedIps,
            p.overlayIp,
            p.paths.map((x) => [x.endpoint, x.relay, x.underlay]),
          ]
        : [p.name, p.publicKey, p.endpoint, p.persistentKeepaliveSeconds, p.allowedIps, p.overlayIp],
    ),
    cfg.routes,
    fw
      ? fw.relay.length > 0
        ? [
            fw.outbound.map(flow),
            fw.inbound.map(flow),
            fw.local.map(flow),
            fw.masquerade,
            fw.localPrefixes,
            fw.relay.map((r) => [r.source, r.listen, r.target, r.snat, r.fromAgent, r.toAgent]),
          ]
        : [fw.outbound.map(flow), fw.inbound.map(flow), fw.local.map(flow), fw.masquerade, fw.localPrefixes]
      : null,
    // Gateways only when present, so configs without one keep the hash they had before the field.
    cfg.localSubnets.map((l) =>
      l.gateways.length > 0
        ? [l.name, l.zone, l.prefixes, l.masquerade, l.gateways]
        : [l.name, l.zone, l.prefixes, l.masquerade],
    ),
    cfg.probes.map((p) => [p.name, p.target, p.protocol, p.port, p.expectDeny, p.sourcePrefix]),
    cfg.probeIntervalSeconds,
  ];
  // Serving groups and liveness only when present, so configs without them keep their hash.
  if (cfg.servingGroups.length > 0) {
    const l = cfg.liveness;
    canonical.push(
      cfg.servingGroups.map((g) => [g.name, g.prefixes, g.candidates, g.subnets]),
      l ? [l.intervalMs, l.multiplier, l.holdDownMs, l.port] : null,
    );
  }
  // Zones only when present (tagged: they may come without serving groups), as above.
  if (cfg.zones.length > 0) canonical.push(['zones', cfg.zones.map((z) => [z.zone, z.prefixes])]);
  // map-to only when present (tagged), as above.
  if (fw && fw.mapTo.length > 0) canonical.push(['map-to', fw.mapTo.map((m) => [m.real, m.mapped])]);
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}
