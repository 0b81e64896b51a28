// Serving groups (issue 14): the subnets with more than one box that may serve them, as this box
// must handle them. Pure: parsed from the AgentConfig once, and applied to a DesiredState for the
// current failover view (which candidate gets each group's prefixes, which groups' gateways this
// box holds) without going back to the controller.
import type { ErrorDetail } from '../../lib/errors.js';
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { strictCanonicalPrefix, strictInterfaceAddress } from '../host/canonical.js';
import { livenessSettings, type LivenessSettings } from '../liveness/settings.js';

export type { LivenessSettings };

export interface FailoverGroup {
  name: string;
  /** Canonical prefixes that move together, sorted. */
  prefixes: string[];
  /** Agent names in serving order. */
  candidates: string[];
  /** This box's place in `candidates`; -1 when it only sends to the group. */
  rank: number;
  /** On a candidate: the virtual gateway addresses of the group's local subnets (canonical). */
  gateways: string[];
}

export interface FailoverPlan {
  self: string;
  groups: FailoverGroup[];
  liveness: LivenessSettings;
  /** Every peer by name: its key (for allowed IPs) and overlay address (for the echo). */
  peers: ReadonlyMap<string, { publicKey: string; address: string }>;
}

/** Which candidate carries each group this box sends to, and which groups' gateways it holds. */
export interface FailoverView {
  active: ReadonlyMap<string, string>;
  held: ReadonlySet<string>;
  /** False while a candidate box still listens after starting (decide.ts): its gateways are not
   *  decided yet, so the box does not report its config applied. */
  isSettled: boolean;
}

/**
 * The config's serving groups, checked. Errors (path named) go into `errors`; the gateways of the
 * local subnets a group names are returned in `groupedGateways` so the caller leaves them out of the
 * gateways it always holds. Null when the config has no groups.
 */
export function failoverPlanOf(
  config: AgentConfig,
  errors: ErrorDetail[],
  groupedGateways: Set<string>,
): FailoverPlan | null {
  if (config.servingGroups.length === 0) return null;
  const peers = new Map<string, { publicKey: string; address: string }>();
  for (const p of config.peers) peers.set(p.name, { publicKey: p.publicKey, address: p.overlayIp });
  const localByName = new Map(config.localSubnets.map((s) => [s.name, s]));
  const groups: FailoverGroup[] = [];
  config.servingGroups.forEach((g, i) => {
    const at = `serving_groups[${i}]`;
    const prefixes: string[] = [];
    g.prefixes.forEach((p, j) => {
      const c = strictCanonicalPrefix(p);
      if (c === null) errors.push({ path: `${at}.prefixes[${j}]`, message: `"${p}" is not a prefix` });
      else prefixes.push(c);
    });
    if (g.candidates.length === 0) errors.push({ path: `${at}.candidates`, message: 'names no agent' });
    g.candidates.forEach((c, j) => {
      if (c !== config.agentName && !peers.has(c))
        errors.push({ path: `${at}.candidates[${j}]`, message: `"${c}" is not one of this box's peers` });
    });
    const rank = g.candidates.indexOf(config.agentName);
    const gateways: string[] = [];
    g.subnets.forEach((name, j) => {
      const s = localByName.get(name);
      if (!s) {
        errors.push({ path: `${at}.subnets[${j}]`, message: `"${name}" is not in local_subnets` });
        return;
      }
      for (const gw of s.gateways) {
        const c = strictInterfaceAddress(gw);
        if (c !== null) {
          gateways.push(c);
          groupedGateways.add(c);
        }
      }
    });
    groups.push({ name: g.name, prefixes: prefixes.sort(), candidates: [...g.candidates], rank, gateways });
  });
  const liveness = livenessSettings(config.liveness);
  if (liveness.port > 65535) errors.push({ path: 'liveness.port', message: `${liveness.port} is above 65535` });
  return { self: config.agentName, groups, liveness, peers };
}

/**
 * The peer that gets a group's prefixes: on a sending box the candidate the view names (the first
 * before any view); on a candidate box that does not hold the gateway, the candidate that does
 * (the group's traffic to this box's other subnets then comes from it through the tunnel).
 */
export function activeOf(plan: FailoverPlan, g: FailoverGroup, view: FailoverView | null): string | undefined {
  if (g.rank >= 0 && view?.held.has(g.name)) return undefined; // on this box's own LAN
  const name = view?.active.get(g.name) ?? g.candidates[0];
  return name === plan.self ? undefined : name;
}

/** The peers (public key) that get each group's prefixes under `view`. */
export function extraAllowedIps(plan: FailoverPlan, view: FailoverView | null): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const g of plan.groups) {
    const name = activeOf(plan, g, view);
    const key = name === undefined ? undefined : plan.peers.get(name)?.publicKey;
    if (key === undefined) continue;
    const l = out.get(key);
    if (l) l.push(...g.prefixes);
    else out.set(key, [...g.prefixes]);
  }
  return out;
}

/** The group gateways this box holds under `view` (none before the first view). */
export function heldGateways(plan: FailoverPlan, view: FailoverView | null): string[] {
  if (!view) return [];
  return plan.groups.filter((g) => g.rank >= 0 && view.held.has(g.name)).flatMap((g) => g.gateways);
}

/** A short text that changes whenever the view changes anything this plan applies. */
export function viewKey(plan: FailoverPlan, view: FailoverView | null): string {
  if (!view) return '-';
  const parts: string[] = [];
  for (const g of plan.groups)
    parts.push(`${g.name}${view.held.has(g.name) ? ':H' : ''}>${activeOf(plan, g, view) ?? ''}`);
  return parts.join(',') + (view.isSettled ? '' : '~');
}
