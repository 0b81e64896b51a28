// Doctor checks for what on the box would fight the agent: routes that would take overlay traffic,
// and other nftables tables whose forward chains drop it.
import { contains, parsePrefix as parseLib, type Prefix } from '../../lib/prefix.js';
import { CROSSLINK_NFT_TABLE, CROSSLINK_RT_PROTO } from '../host/ports.js';
import { firstLine, parseJsonList } from './command-output.js';
import type { CheckResult, DoctorDeps, DoctorInput } from './types.js';

export interface ObservedRoute {
  dst: string;
  dev?: string;
  protocol?: string;
  type?: string;
}

/** A route's destination ("10.0.0.0/8", or a bare address for a host route); null for "default". */
function parsePrefix(p: string): Prefix | null {
  if (p === 'default') return null;
  const r = parseLib(p, true);
  return r.ok ? r.prefix : null;
}

/** Routes not Crosslink's, off its interface, equal to or inside a prefix the agent routes into the
 *  overlay: they would win over (or collide with) the agent's route. A wider route (the default,
 *  a /8 summary) is no conflict: the agent's more specific route wins. */
export function findRouteConflicts(
  routes: ObservedRoute[],
  overlayRoutes: string[],
  interfaceName: string,
): Array<{ route: ObservedRoute; overlay: string }> {
  const wanted = overlayRoutes.flatMap((o) => {
    const p = parsePrefix(o);
    return p ? [{ text: o, p }] : [];
  });
  const out: Array<{ route: ObservedRoute; overlay: string }> = [];
  for (const r of routes) {
    if (r.protocol === String(CROSSLINK_RT_PROTO) || r.dev === interfaceName) continue;
    if (r.type && !['unicast', 'blackhole', 'unreachable', 'prohibit'].includes(r.type)) continue;
    const p = parsePrefix(r.dst);
    if (!p) continue;
    for (const o of wanted) {
      if (contains(o.p, p)) {
        out.push({ route: r, overlay: o.text });
        break;
      }
    }
  }
  return out;
}

export function judgeRouteConflicts(
  conflicts: ReturnType<typeof findRouteConflicts>,
  overlayRoutes: string[],
): CheckResult {
  const check = 'route conflicts';
  if (overlayRoutes.length === 0)
    return { check, verdict: 'OK', finding: 'no saved config yet: nothing routed into the overlay to compare' };
  if (conflicts.length === 0)
    return {
      check,
      verdict: 'OK',
      finding: `none of this box's routes overlaps the ${overlayRoutes.length} overlay prefix(es)`,
    };
  const list = conflicts
    .map(
      (c) =>
        `${c.route.dst}${c.route.dev ? ` dev ${c.route.dev}` : ` ${c.route.type ?? ''}`}${c.route.protocol ? ` proto ${c.route.protocol}` : ''} (inside overlay ${c.overlay})`,
    )
    .join('; ');
  return {
    check,
    verdict: 'FAIL',
    finding: `${conflicts.length} route(s) would take traffic meant for the overlay: ${list}`,
    fix: 'remove those routes (or the static config that adds them), or ask the policy owner why a remote subnet is also reachable locally',
  };
}

export async function checkRoutes(input: DoctorInput, deps: DoctorDeps): Promise<CheckResult> {
  const [v4, v6] = await Promise.all([
    deps.run(['ip', '-json', 'route', 'show', 'table', 'main']),
    deps.run(['ip', '-json', '-6', 'route', 'show', 'table', 'main']),
  ]);
  if (v4.exitCode !== 0)
    return {
      check: 'route conflicts',
      verdict: 'WARN',
      finding: `cannot list routes: ${firstLine(v4.stderr)}`,
      fix: 'run as root; check iproute2',
    };
  const routes = [
    ...parseJsonList<ObservedRoute>(v4.stdout),
    ...(v6.exitCode === 0 ? parseJsonList<ObservedRoute>(v6.stdout) : []),
  ];
  return judgeRouteConflicts(findRouteConflicts(routes, input.overlayRoutes, input.interfaceName), input.overlayRoutes);
}

interface NftChain {
  family: string;
  table: string;
  name: string;
  hook?: string;
  policy?: string;
}
interface NftRule {
  family: string;
  table: string;
  chain: string;
  expr?: unknown[];
}

/** Base chains on the forward hook with policy drop, in tables other than Crosslink's; `isOpened`
 *  when the chain already has an accept rule naming our interface. */
export function findForwardDropChains(
  rulesetJson: string,
  interfaceName: string,
): Array<NftChain & { isOpened: boolean }> {
  let items: Array<{ chain?: NftChain; rule?: NftRule }>;
  try {
    items = (JSON.parse(rulesetJson) as { nftables?: Array<{ chain?: NftChain; rule?: NftRule }> }).nftables ?? [];
  } catch {
    return [];
  }
  const rules = items.flatMap((i) => (i.rule ? [i.rule] : []));
  return items
    .flatMap((i) => (i.chain ? [i.chain] : []))
    .filter(
      (c) => c.hook === 'forward' && c.policy === 'drop' && !(c.family === 'inet' && c.table === CROSSLINK_NFT_TABLE),
    )
    .map((c) => ({
      ...c,
      isOpened: rules.some(
        (r) =>
          r.family === c.family &&
          r.table === c.table &&
          r.chain === c.name &&
          JSON.stringify(r.expr ?? []).includes(JSON.stringify(interfaceName)) &&
          JSON.stringify(r.expr ?? []).includes('"accept"'),
      ),
    }))
    .sort((a, b) => `${a.family} ${a.table} ${a.name}`.localeCompare(`${b.family} ${b.table} ${b.name}`));
}

export function judgeFirewall(chains: ReturnType<typeof findForwardDropChains>, interfaceName: string): CheckResult {
  const check = 'firewall conflicts';
  const blocking = chains.filter((c) => !c.isOpened);
  if (blocking.length === 0) {
    return {
      check,
      verdict: 'OK',
      finding:
        chains.length === 0
          ? 'no other table drops forwarded traffic by default'
          : `other forward chains with policy drop accept ${interfaceName}: ${chains.map((c) => `${c.family} ${c.table} ${c.name}`).join(', ')}`,
    };
  }
  const names = blocking.map((c) => `${c.family} ${c.table} ${c.name}`);
  const first = blocking[0]!;
  return {
    check,
    verdict: 'WARN',
    finding: `forward chain(s) with policy drop outside Crosslink's table will drop overlay traffic (every table's forward hook must accept a packet): ${names.join(', ')}`,
    fix: `let the overlay through each, e.g. nft insert rule ${first.family} ${first.table} ${first.name} iifname "${interfaceName}" accept; nft insert rule ${first.family} ${first.table} ${first.name} oifname "${interfaceName}" accept (for Docker/iptables: iptables -I DOCKER-USER -i ${interfaceName} -j ACCEPT and -o ${interfaceName}); Crosslink's own table still filters`,
  };
}

export async function checkFirewall(input: DoctorInput, deps: DoctorDeps): Promise<CheckResult> {
  const r = await deps.run(['nft', '-j', 'list', 'ruleset']);
  if (r.exitCode !== 0)
    return {
      check: 'firewall conflicts',
      verdict: 'WARN',
      finding: `cannot read the ruleset: ${firstLine(r.stderr) || `exit ${r.exitCode}`}`,
      fix: 'run as root with nftables installed',
    };
  return judgeFirewall(findForwardDropChains(r.stdout, input.interfaceName), input.interfaceName);
}
