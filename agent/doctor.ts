// `crosslink doctor`: checks that this box can run the agent, and says how to fix what it cannot.
// Each check is a function of its inputs and injected deps (command runner, file reads, clock, TLS),
// and the judgement of each is a pure function next to it, so the decisions are tested with fakes
// and one real run inside a network namespace. Read-only: nothing here changes the box.
import { constants as fsc, existsSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import https from 'node:https';
import { release } from 'node:os';
import { delimiter, join } from 'node:path';
import ipaddr from 'ipaddr.js';
import type { Clock } from '../lib/clock.js';
import { isCrosslinkError } from '../lib/errors.js';
import { fetchPinnedCa, normaliseFingerprint, pinnedTlsOptions } from '../lib/pin.js';
import { CROSSLINK_NFT_TABLE, CROSSLINK_RT_PROTO } from './host/ports.js';
import type { CommandRunner } from './host/linux/run.js';

export type Verdict = 'OK' | 'WARN' | 'FAIL';

export interface CheckResult {
  check: string;
  verdict: Verdict;
  finding: string;
  /** What to do; present for WARN and FAIL. */
  fix?: string;
}

/** WireGuard's worst-case overhead (IPv6 underlay: 40 IP + 8 UDP + 32 WireGuard). */
export const WIREGUARD_OVERHEAD_BYTES = 80;
export const CLOCK_WARN_MS = 5_000;
export const CLOCK_FAIL_MS = 60_000;
const CAP_NET_ADMIN = 12n;
const CAP_NET_RAW = 13n;

export interface DoctorInput {
  /** The WireGuard interface the agent wants. */
  interfaceName: string;
  /** Its MTU (the agent's `mtu:`, default 1420). */
  mtu: number;
  wireguard: 'kernel' | 'userspace' | 'auto';
  /** Where the controller is and which CA to pin (state dir or join token); null: neither known. */
  controller: {
    /** The controller URL, or every one separated by spaces (what the findings show). */
    url: string;
    /** Every controller URL (one per network the controller host sits on); default: `url` split at spaces. */
    urls?: string[];
    caFingerprint: string;
    source: string;
  } | null;
  /** Prefixes the agent's saved config routes into the overlay (empty before the first config). */
  overlayRoutes: string[];
  /** Prefixes the agent advertises (IPv6 among them makes IPv6 forwarding relevant). */
  advertised: string[];
  /** Problems met while reading the config file or state dir, shown as a FAIL each. */
  setupErrors?: string[];
}

export interface HttpDate {
  /** The `Date` header of the controller's answer (null when absent). */
  date: string | null;
  sentAtMs: number;
  receivedAtMs: number;
}

export interface DoctorDeps {
  /** Runs argv; a non-zero exit is returned, a missing program is exit code 127 (never throws). */
  run(argv: readonly string[]): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** File text, or null when absent or unreadable. */
  readFile(path: string): Promise<string | null>;
  exists(path: string): Promise<boolean>;
  /** Absolute path of an executable on PATH, or null. */
  which(program: string): Promise<string | null>;
  clock: Clock;
  /** The controller's CA if its chain holds the pinned one (throws CrosslinkError otherwise). */
  fetchPinnedCa(url: string, fingerprint: string): Promise<string>;
  /** `GET /healthz` over TLS trusting only `caPem`. */
  controllerDate(url: string, caPem: string, fingerprint: string): Promise<HttpDate>;
  /** Resolves a host name to an address. */
  resolve(host: string): Promise<string>;
  /** The running kernel's release (for the module tree). */
  kernelRelease(): string;
}

// ---------- privileges ----------

export function parseProcStatus(text: string): { uid: number | null; capEff: bigint | null } {
  const uid = /^Uid:\s+\d+\s+(\d+)/m.exec(text); // effective uid
  const cap = /^CapEff:\s+([0-9a-fA-F]+)/m.exec(text);
  return { uid: uid ? Number(uid[1]) : null, capEff: cap ? BigInt(`0x${cap[1]}`) : null };
}

export function judgePrivileges(s: { uid: number | null; capEff: bigint | null }): CheckResult {
  const check = 'privileges';
  if (s.capEff === null) return { check, verdict: 'WARN', finding: 'cannot read CapEff from /proc/self/status', fix: 'run as root, or through crosslink-agent.service' };
  const has = (bit: bigint) => ((s.capEff! >> bit) & 1n) === 1n;
  const who = s.uid === 0 ? 'root' : `uid ${s.uid ?? '?'}`;
  const unit = 'run as root (sudo crosslink doctor); the agent gets both from crosslink-agent.service (CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW)';
  if (!has(CAP_NET_ADMIN)) return { check, verdict: 'FAIL', finding: `${who} without CAP_NET_ADMIN: cannot create the interface, routes or nft table`, fix: unit };
  if (!has(CAP_NET_RAW)) return { check, verdict: 'WARN', finding: `${who} with CAP_NET_ADMIN but without CAP_NET_RAW: probes (ping) will fail`, fix: unit };
  return { check, verdict: 'OK', finding: `${who} with CAP_NET_ADMIN and CAP_NET_RAW` };
}

async function checkPrivileges(deps: DoctorDeps): Promise<CheckResult> {
  return judgePrivileges(parseProcStatus((await deps.readFile('/proc/self/status')) ?? ''));
}

// ---------- IP forwarding ----------

export function judgeForwarding(s: { ipv4: string | null; ipv6: string | null; isIpv6Relevant: boolean; isAgentRunning: boolean }): CheckResult[] {
  const one = (name: string, value: string | null, check: string): CheckResult => {
    if (value?.trim() === '1') return { check, verdict: 'OK', finding: `${name} = 1` };
    if (value === null) return { check, verdict: 'WARN', finding: `cannot read ${name}`, fix: 'run as root; check /proc/sys/net is mounted' };
    if (!s.isAgentRunning) return { check, verdict: 'OK', finding: `${name} = ${value.trim()} (the agent turns it on when it starts)` };
    return {
      check, verdict: 'WARN', finding: `${name} = ${value.trim()} while the agent's interface exists: something turned it off again`,
      fix: `find what resets it (sysctl.d, a firewall tool, cloud-init); set ${name}=1 in /etc/sysctl.d/90-crosslink.conf`,
    };
  };
  const out = [one('net.ipv4.ip_forward', s.ipv4, 'ip forwarding')];
  if (s.isIpv6Relevant) out.push(one('net.ipv6.conf.all.forwarding', s.ipv6, 'ipv6 forwarding'));
  return out;
}

// ---------- WireGuard, wg, nft, ip ----------

export function judgeWireGuard(s: { hasModule: boolean; wireguardGo: string | null; hasTun: boolean; wg: string | null; choice: DoctorInput['wireguard'] }): CheckResult[] {
  const check = 'wireguard';
  let wg: CheckResult;
  const userspace = s.wireguardGo && s.hasTun;
  if (s.choice === 'kernel' && !s.hasModule) {
    wg = { check, verdict: 'FAIL', finding: 'wireguard: kernel is configured but the kernel has no WireGuard module', fix: s.wireguardGo ? 'set wireguard: auto (or userspace) in agent.yaml: wireguard-go is installed' : 'install a kernel with WireGuard (5.6+), or apt install wireguard-go and set wireguard: auto' };
  } else if (s.choice !== 'userspace' && s.hasModule) {
    wg = { check, verdict: 'OK', finding: 'kernel module available' };
  } else if (userspace) {
    wg = { check, verdict: 'OK', finding: `userspace: ${s.wireguardGo} and /dev/net/tun` };
  } else if (s.wireguardGo) {
    wg = { check, verdict: 'FAIL', finding: 'wireguard-go is installed but /dev/net/tun is missing', fix: 'modprobe tun; in a container, pass the device through (--device /dev/net/tun)' };
  } else {
    wg = { check, verdict: 'FAIL', finding: s.choice === 'userspace' ? 'wireguard: userspace is configured but wireguard-go is not on PATH' : 'no WireGuard kernel module and no wireguard-go on PATH', fix: 'apt install wireguard-go (or a kernel with WireGuard, 5.6+)' };
  }
  const tool: CheckResult = s.wg
    ? { check: 'wg', verdict: 'OK', finding: s.wg }
    : { check: 'wg', verdict: 'FAIL', finding: 'wg (wireguard-tools) not on PATH', fix: 'apt install wireguard-tools' };
  return [wg, tool];
}

async function checkWireGuard(input: DoctorInput, deps: DoctorDeps): Promise<CheckResult[]> {
  const base = `/lib/modules/${deps.kernelRelease()}`;
  const modulePaths = ['/sys/module/wireguard', `${base}/kernel/drivers/net/wireguard`, `${base}/updates/dkms/wireguard.ko`, `${base}/extra/wireguard.ko`];
  const hasModule = (await Promise.all(modulePaths.map((p) => deps.exists(p)))).some(Boolean);
  const [wireguardGo, wg, hasTun] = await Promise.all([deps.which('wireguard-go'), deps.which('wg'), deps.exists('/dev/net/tun')]);
  return judgeWireGuard({ hasModule, wireguardGo, hasTun, wg, choice: input.wireguard });
}

const firstLine = (s: string) => s.trim().split('\n')[0] ?? '';

export function judgeTool(check: string, r: { exitCode: number; stderr: string }, pkg: string, what: string): CheckResult {
  if (r.exitCode === 0) return { check, verdict: 'OK', finding: what };
  if (r.exitCode === 127) return { check, verdict: 'FAIL', finding: `${check} not found`, fix: `apt install ${pkg}` };
  const err = firstLine(r.stderr);
  const isPermission = /permission|not permitted/i.test(err);
  return { check, verdict: 'FAIL', finding: `${check} fails (exit ${r.exitCode}): ${err || 'no message'}`, fix: isPermission ? 'run as root (CAP_NET_ADMIN)' : `reinstall ${pkg}; run the command by hand to see why` };
}

async function checkTools(deps: DoctorDeps): Promise<CheckResult[]> {
  const [nft, ip] = await Promise.all([deps.run(['nft', 'list', 'tables']), deps.run(['ip', '-V'])]);
  return [judgeTool('nft', nft, 'nftables', '`nft list tables` works'), judgeTool('ip', ip, 'iproute2', firstLine(ip.stdout) || 'present')];
}

// ---------- controller, pin, clock ----------

export function judgeClockSkew(skewMs: number): CheckResult {
  const check = 'clock';
  const s = Math.abs(skewMs) / 1000;
  const dir = skewMs > 0 ? 'ahead of' : 'behind';
  const finding = `${s.toFixed(1)} s ${dir} the controller`;
  const fix = 'configure NTP (systemd-timesyncd or chrony) and check `timedatectl` says synchronized';
  if (Math.abs(skewMs) > CLOCK_FAIL_MS) return { check, verdict: 'FAIL', finding: `${finding}: TLS certificates and token expiry will be misjudged`, fix };
  if (Math.abs(skewMs) > CLOCK_WARN_MS) return { check, verdict: 'WARN', finding, fix };
  return { check, verdict: 'OK', finding: `within ${Math.max(1, Math.ceil(s))} s of the controller` };
}

/** Local clock minus the controller's, from a Date header (1 s resolution: its middle is assumed). */
export function skewFromDate(d: HttpDate): number | null {
  if (!d.date) return null;
  const serverMs = Date.parse(d.date);
  if (Number.isNaN(serverMs)) return null;
  return (d.sentAtMs + d.receivedAtMs) / 2 - (serverMs + 500);
}

/** The URLs to try, first choice first. */
function controllerUrlsOf(c: NonNullable<DoctorInput['controller']>): string[] {
  return c.urls?.length ? c.urls : c.url.split(/\s+/).filter((u) => u !== '');
}

async function checkController(input: DoctorInput, deps: DoctorDeps): Promise<CheckResult[]> {
  const c = input.controller;
  if (!c) {
    const fix = 'enroll the agent first, or give the join token: crosslink doctor --join TOKEN';
    return [
      { check: 'controller', verdict: 'WARN', finding: 'not checked: no enrollment in the state dir and no --join token', fix },
      { check: 'clock', verdict: 'WARN', finding: 'not checked: controller unknown', fix },
    ];
  }
  const pin = normaliseFingerprint(c.caFingerprint);
  // A controller on several networks: the box needs to reach one of its URLs (the agent tries them
  // in turn); the others may sit on a network this box is not on.
  const urls = controllerUrlsOf(c);
  const notChecked = { check: 'clock', verdict: 'WARN' as const, finding: 'not checked: controller not reached', fix: 'fix the controller check first' };
  const failed: string[] = [];
  let caPem: string | null = null;
  let url = urls[0] ?? c.url;
  for (const u of urls) {
    try {
      caPem = await deps.fetchPinnedCa(u, pin);
      url = u;
      break;
    } catch (e) {
      const msg = (e as Error).message;
      if (isCrosslinkError(e) && e.code === 'unauthenticated') {
        return [
          { check: 'controller', verdict: 'OK', finding: `${u} answers TLS (from the ${c.source})` },
          { check: 'certificate pin', verdict: 'FAIL', finding: msg, fix: 'something on the path presents another certificate (a TLS-inspecting proxy: exempt the controller), or the controller\'s CA changed (restore it, or re-enroll with a new join token)' },
          notChecked,
        ];
      }
      failed.push(urls.length > 1 ? `${u}: ${msg}` : msg);
    }
  }
  if (caPem === null) {
    return [
      { check: 'controller', verdict: 'FAIL', finding: `cannot reach ${urls.length > 1 ? `any of ${c.url}` : c.url} (from the ${c.source}): ${failed.join('; ')}`, fix: 'check DNS, the route and that TCP to the controller\'s port is open from this box; is crosslink-controller running?' },
      notChecked,
    ];
  }
  const others = failed.length ? ` (not reached: ${failed.map((f) => f.split(': ')[0]).join(', ')}; fine if this box is not on that network)` : '';
  const out: CheckResult[] = [
    { check: 'controller', verdict: 'OK', finding: `${url} reachable (from the ${c.source})${others}` },
    { check: 'certificate pin', verdict: 'OK', finding: `the controller's CA matches the pin ${pin.slice(0, 16)}…` },
  ];
  try {
    const skew = skewFromDate(await deps.controllerDate(url, caPem, pin));
    out.push(skew === null
      ? { check: 'clock', verdict: 'WARN', finding: 'the controller sent no Date header', fix: 'compare `date -u` here with the controller by hand' }
      : judgeClockSkew(skew));
  } catch (e) {
    out.push({ check: 'clock', verdict: 'WARN', finding: `could not read the controller's time: ${(e as Error).message}`, fix: 'compare `date -u` here with the controller by hand' });
  }
  return out;
}

// ---------- MTU ----------

export function judgeMtu(s: { wgMtu: number; dev: string | null; underlayMtu: number | null; target: string }): CheckResult {
  const check = 'mtu';
  if (!s.dev || s.underlayMtu === null) return { check, verdict: 'WARN', finding: `no route to ${s.target}: cannot tell the underlay MTU`, fix: 'add a default route (or a route to the controller), then run doctor again' };
  const need = s.wgMtu + WIREGUARD_OVERHEAD_BYTES;
  if (need > s.underlayMtu) {
    return {
      check, verdict: 'WARN',
      finding: `interface MTU ${s.wgMtu} + ${WIREGUARD_OVERHEAD_BYTES} overhead = ${need} > ${s.dev} MTU ${s.underlayMtu}: large packets will be fragmented or lost`,
      fix: `set mtu: ${s.underlayMtu - WIREGUARD_OVERHEAD_BYTES} in agent.yaml on this box and its peers (or raise ${s.dev}'s MTU)`,
    };
  }
  return { check, verdict: 'OK', finding: `interface MTU ${s.wgMtu} + ${WIREGUARD_OVERHEAD_BYTES} fits ${s.dev} MTU ${s.underlayMtu} (toward ${s.target})` };
}

function parseJsonList<T>(stdout: string): T[] {
  try {
    const v = JSON.parse(stdout || '[]') as unknown;
    return Array.isArray(v) ? (v as T[]) : [];
  } catch {
    return [];
  }
}

async function checkMtu(input: DoctorInput, deps: DoctorDeps): Promise<CheckResult> {
  let target = 'the default route';
  let dev: string | null = null;
  // The route to the first controller URL this box has a route to (one per network the controller is on).
  for (const u of input.controller ? controllerUrlsOf(input.controller) : []) {
    let host: string;
    try {
      host = new URL(u).hostname.replace(/^\[|\]$/g, '');
    } catch {
      continue;
    }
    const address = ipaddr.isValid(host) ? host : await deps.resolve(host).catch(() => null);
    if (address) {
      const r = await deps.run(['ip', '-json', 'route', 'get', address]);
      dev = r.exitCode === 0 ? parseJsonList<{ dev?: string }>(r.stdout)[0]?.dev ?? null : null;
      if (dev) {
        target = `the controller (${address})`;
        break;
      }
    }
  }
  if (!dev) {
    const r = await deps.run(['ip', '-json', 'route', 'show', 'default']);
    const d = r.exitCode === 0 ? parseJsonList<{ dev?: string }>(r.stdout).find((x) => x.dev)?.dev ?? null : null;
    if (d) {
      dev = d;
      target = 'the default route';
    }
  }
  let underlayMtu: number | null = null;
  if (dev) {
    const r = await deps.run(['ip', '-json', 'link', 'show', 'dev', dev]);
    underlayMtu = parseJsonList<{ mtu?: number }>(r.stdout)[0]?.mtu ?? null;
  }
  return judgeMtu({ wgMtu: input.mtu, dev, underlayMtu, target });
}

// ---------- conflicts ----------

export interface ObservedRoute { dst: string; dev?: string; protocol?: string; type?: string }

function parsePrefix(p: string): [ipaddr.IPv4 | ipaddr.IPv6, number] | null {
  try {
    if (p === 'default') return null;
    return p.includes('/') ? ipaddr.parseCIDR(p) : (() => { const a = ipaddr.parse(p); return [a, a.kind() === 'ipv4' ? 32 : 128] as [ipaddr.IPv4 | ipaddr.IPv6, number]; })();
  } catch {
    return null;
  }
}

/** Routes not Crosslink's, off its interface, equal to or inside a prefix the agent routes into the
 *  overlay: they would win over (or collide with) the agent's route. A wider route (the default,
 *  a /8 summary) is no conflict: the agent's more specific route wins. */
export function findRouteConflicts(routes: ObservedRoute[], overlayRoutes: string[], interfaceName: string): Array<{ route: ObservedRoute; overlay: string }> {
  const wanted = overlayRoutes.map((o) => ({ text: o, p: parsePrefix(o) })).filter((o) => o.p !== null);
  const out: Array<{ route: ObservedRoute; overlay: string }> = [];
  for (const r of routes) {
    if (r.protocol === String(CROSSLINK_RT_PROTO) || r.dev === interfaceName) continue;
    if (r.type && !['unicast', 'blackhole', 'unreachable', 'prohibit'].includes(r.type)) continue;
    const p = parsePrefix(r.dst);
    if (!p) continue;
    for (const o of wanted) {
      const [oa, ol] = o.p!;
      if (p[0].kind() === oa.kind() && p[1] >= ol && p[0].match(oa, ol)) {
        out.push({ route: r, overlay: o.text });
        break;
      }
    }
  }
  return out;
}

export function judgeRouteConflicts(conflicts: ReturnType<typeof findRouteConflicts>, overlayRoutes: string[]): CheckResult {
  const check = 'route conflicts';
  if (overlayRoutes.length === 0) return { check, verdict: 'OK', finding: 'no saved config yet: nothing routed into the overlay to compare' };
  if (conflicts.length === 0) return { check, verdict: 'OK', finding: `none of this box's routes overlaps the ${overlayRoutes.length} overlay prefix(es)` };
  const list = conflicts.map((c) => `${c.route.dst}${c.route.dev ? ` dev ${c.route.dev}` : ` ${c.route.type ?? ''}`}${c.route.protocol ? ` proto ${c.route.protocol}` : ''} (inside overlay ${c.overlay})`).join('; ');
  return {
    check, verdict: 'FAIL', finding: `${conflicts.length} route(s) would take traffic meant for the overlay: ${list}`,
    fix: 'remove those routes (or the static config that adds them), or ask the policy owner why a remote subnet is also reachable locally',
  };
}

async function checkRoutes(input: DoctorInput, deps: DoctorDeps): Promise<CheckResult> {
  const [v4, v6] = await Promise.all([
    deps.run(['ip', '-json', 'route', 'show', 'table', 'main']),
    deps.run(['ip', '-json', '-6', 'route', 'show', 'table', 'main']),
  ]);
  if (v4.exitCode !== 0) return { check: 'route conflicts', verdict: 'WARN', finding: `cannot list routes: ${firstLine(v4.stderr)}`, fix: 'run as root; check iproute2' };
  const routes = [...parseJsonList<ObservedRoute>(v4.stdout), ...(v6.exitCode === 0 ? parseJsonList<ObservedRoute>(v6.stdout) : [])];
  return judgeRouteConflicts(findRouteConflicts(routes, input.overlayRoutes, input.interfaceName), input.overlayRoutes);
}

interface NftChain { family: string; table: string; name: string; hook?: string; policy?: string }
interface NftRule { family: string; table: string; chain: string; expr?: unknown[] }

/** Base chains on the forward hook with policy drop, in tables other than Crosslink's; `isOpened`
 *  when the chain already has an accept rule naming our interface. */
export function findForwardDropChains(rulesetJson: string, interfaceName: string): Array<NftChain & { isOpened: boolean }> {
  let items: Array<{ chain?: NftChain; rule?: NftRule }>;
  try {
    items = (JSON.parse(rulesetJson) as { nftables?: Array<{ chain?: NftChain; rule?: NftRule }> }).nftables ?? [];
  } catch {
    return [];
  }
  const rules = items.flatMap((i) => (i.rule ? [i.rule] : []));
  return items
    .flatMap((i) => (i.chain ? [i.chain] : []))
    .filter((c) => c.hook === 'forward' && c.policy === 'drop' && !(c.family === 'inet' && c.table === CROSSLINK_NFT_TABLE))
    .map((c) => ({
      ...c,
      isOpened: rules.some((r) => r.family === c.family && r.table === c.table && r.chain === c.name
        && JSON.stringify(r.expr ?? []).includes(JSON.stringify(interfaceName)) && JSON.stringify(r.expr ?? []).includes('"accept"')),
    }))
    .sort((a, b) => `${a.family} ${a.table} ${a.name}`.localeCompare(`${b.family} ${b.table} ${b.name}`));
}

export function judgeFirewall(chains: ReturnType<typeof findForwardDropChains>, interfaceName: string): CheckResult {
  const check = 'firewall conflicts';
  const blocking = chains.filter((c) => !c.isOpened);
  if (blocking.length === 0) {
    return { check, verdict: 'OK', finding: chains.length === 0 ? 'no other table drops forwarded traffic by default' : `other forward chains with policy drop accept ${interfaceName}: ${chains.map((c) => `${c.family} ${c.table} ${c.name}`).join(', ')}` };
  }
  const names = blocking.map((c) => `${c.family} ${c.table} ${c.name}`);
  const first = blocking[0]!;
  return {
    check, verdict: 'WARN',
    finding: `forward chain(s) with policy drop outside Crosslink's table will drop overlay traffic (every table's forward hook must accept a packet): ${names.join(', ')}`,
    fix: `let the overlay through each, e.g. nft insert rule ${first.family} ${first.table} ${first.name} iifname "${interfaceName}" accept; nft insert rule ${first.family} ${first.table} ${first.name} oifname "${interfaceName}" accept (for Docker/iptables: iptables -I DOCKER-USER -i ${interfaceName} -j ACCEPT and -o ${interfaceName}); Crosslink's own table still filters`,
  };
}

async function checkFirewall(input: DoctorInput, deps: DoctorDeps): Promise<CheckResult> {
  const r = await deps.run(['nft', '-j', 'list', 'ruleset']);
  if (r.exitCode !== 0) return { check: 'firewall conflicts', verdict: 'WARN', finding: `cannot read the ruleset: ${firstLine(r.stderr) || `exit ${r.exitCode}`}`, fix: 'run as root with nftables installed' };
  return judgeFirewall(findForwardDropChains(r.stdout, input.interfaceName), input.interfaceName);
}

export function judgeInterfaceName(interfaceName: string, link: { exists: boolean; kind: string | null }): CheckResult {
  const check = 'interface name';
  if (!link.exists) return { check, verdict: 'OK', finding: `${interfaceName} is free` };
  if (link.kind === 'wireguard' || link.kind === 'tun') return { check, verdict: 'OK', finding: `${interfaceName} exists (${link.kind}): the agent's own, or one it will take over` };
  return {
    check, verdict: 'FAIL', finding: `${interfaceName} exists and is a ${link.kind ?? 'non-WireGuard'} interface: the agent cannot use that name`,
    fix: `choose another name with interface: in agent.yaml (or --interface), or remove ${interfaceName} if it is a leftover`,
  };
}

/** The check, and whether a WireGuard interface of that name is up already (the agent runs). */
async function checkInterface(input: DoctorInput, deps: DoctorDeps): Promise<{ result: CheckResult; isAgentRunning: boolean }> {
  const r = await deps.run(['ip', '-json', '-details', 'link', 'show', 'dev', input.interfaceName]);
  const link = r.exitCode === 0 ? parseJsonList<{ linkinfo?: { info_kind?: string } }>(r.stdout)[0] : undefined;
  const kind = link?.linkinfo?.info_kind ?? null;
  return { result: judgeInterfaceName(input.interfaceName, { exists: link !== undefined, kind }), isAgentRunning: kind === 'wireguard' || kind === 'tun' };
}

// ---------- all together ----------

/** Runs every check; the order is the order printed. */
export async function runDoctor(input: DoctorInput, deps: DoctorDeps): Promise<CheckResult[]> {
  const iface = await checkInterface(input, deps);
  const isIpv6Relevant = [...input.overlayRoutes, ...input.advertised].some((p) => p.includes(':'));
  const [ipv4, ipv6] = await Promise.all([deps.readFile('/proc/sys/net/ipv4/ip_forward'), deps.readFile('/proc/sys/net/ipv6/conf/all/forwarding')]);
  const [privileges, wg, tools, controller, mtu, routes, firewall] = await Promise.all([
    checkPrivileges(deps), checkWireGuard(input, deps), checkTools(deps), checkController(input, deps),
    checkMtu(input, deps), checkRoutes(input, deps), checkFirewall(input, deps),
  ]);
  return [
    ...(input.setupErrors ?? []).map((e): CheckResult => ({ check: 'config', verdict: 'FAIL', finding: e, fix: 'correct the config file or state dir named above' })),
    privileges,
    ...judgeForwarding({ ipv4, ipv6, isIpv6Relevant, isAgentRunning: iface.isAgentRunning }),
    ...wg,
    ...tools,
    ...controller,
    mtu,
    routes,
    firewall,
    iface.result,
  ];
}

const PAD: Record<Verdict, string> = { OK: 'OK    ', WARN: 'WARN  ', FAIL: 'FAIL  ' };

/** `OK|WARN|FAIL  <check>: <finding>`, and `      fix: <what to do>` under each WARN and FAIL. */
export function formatResults(results: CheckResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${PAD[r.verdict]}${r.check}: ${r.finding}`);
    if (r.verdict !== 'OK' && r.fix) lines.push(`      fix: ${r.fix}`);
  }
  const count = (v: Verdict) => results.filter((r) => r.verdict === v).length;
  lines.push('', `${count('OK')} ok, ${count('WARN')} warning(s), ${count('FAIL')} failure(s)`);
  return `${lines.join('\n')}\n`;
}

/** 0 when nothing failed (warnings allowed), 1 otherwise. */
export function doctorExitCode(results: CheckResult[]): 0 | 1 {
  return results.some((r) => r.verdict === 'FAIL') ? 1 : 0;
}

// ---------- real deps ----------

/** Deps over this machine: `runner` (ProcessRunner), the file system, DNS and TLS. */
export function realDoctorDeps(runner: CommandRunner, clock: Clock, opts: { timeoutMs?: number } = {}): DoctorDeps {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return {
    run: async (argv) => {
      try {
        return await runner.run(argv, { allowFailure: true, timeoutMs });
      } catch (e) {
        // Only a program that could not be started gets here.
        return { exitCode: 127, stdout: '', stderr: (e as Error).message };
      }
    },
    readFile: (path) => readFile(path, 'utf8').catch(() => null),
    exists: async (path) => existsSync(path),
    which: async (program) => {
      for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
        if (!dir) continue;
        const p = join(dir, program);
        if (await access(p, fsc.X_OK).then(() => true, () => false)) return p;
      }
      return null;
    },
    clock,
    fetchPinnedCa: (url, fingerprint) => fetchPinnedCa(url, fingerprint, { timeoutMs }),
    controllerDate: (url, caPem, fingerprint) => new Promise((resolveDate, reject) => {
      const sentAtMs = clock.nowMs();
      const req = https.get(new URL('/healthz', url), { ...pinnedTlsOptions(caPem, fingerprint), timeout: timeoutMs, agent: false }, (res) => {
        const receivedAtMs = clock.nowMs();
        res.resume();
        resolveDate({ date: res.headers.date ?? null, sentAtMs, receivedAtMs });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
    }),
    resolve: async (host) => (await lookup(host)).address,
    kernelRelease: () => release(),
  };
}
