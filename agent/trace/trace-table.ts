// A live trace on one box (`crosslink trace --live`, proto TraceRequest): the temporary nft table
// that matches only the test flow, and the reading of what the firewall did with it. PURE: no I/O.
//
// The table is the box's own, "crosslink_trace_<id>", never a rule inside Crosslink's table: the
// reconciler replaces that table whole, and a trace must neither be wiped by a reload nor leave
// anything in the enforced ruleset. Its chains hook in before connection tracking (priority
// raw - 1) and only count, or mark the packet for nft tracing (`meta nftrace set 1`); their
// policy is accept and no rule of theirs has a verdict, so the trace changes no packet's fate.
import type { RelayForward, TraceRequest } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { canonicalEndpoint } from '../host/canonical.js';
import { FIREWALL_DIRECTIONS, type FirewallDirection } from '../host/firewall-names.js';

/** Crosslink's own table (host/ports.ts CROSSLINK_NFT_TABLE; the test checks they agree). */
export const CROSSLINK_TABLE = 'crosslink';
export const TRACE_TABLE_PREFIX = `${CROSSLINK_TABLE}_trace_`;
const ID_RE = /^[0-9a-f]{16}$/;

export type TraceRole = 'source' | 'destination' | 'relay';

/** A request checked field by field; `problem` names the first bad field. */
export type CheckedTrace =
  | {
      ok: true;
      id: string;
      role: TraceRole;
      family: 4 | 6;
      sourcePrefix: string;
      target: string;
      protocol: 'tcp' | 'udp' | 'icmp';
      port: number;
      sourcePort: number;
      windowMs: number;
      peerA: string;
      peerB: string;
    }
  | { ok: false; problem: string };

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const isV4 = (a: string) => V4.test(a) && a.split('.').every((o) => Number(o) <= 255);
const isV6 = (a: string) => /^[0-9a-fA-F:.]+$/.test(a) && a.includes(':');

/** Checks a TraceRequest before anything of it reaches nft. Windows are clamped to 0.5-10 s. */
export function checkTraceRequest(r: TraceRequest): CheckedTrace {
  if (!ID_RE.test(r.id)) return { ok: false, problem: `id: "${r.id}" is not 16 hex characters` };
  if (r.role !== 'source' && r.role !== 'destination' && r.role !== 'relay')
    return { ok: false, problem: `role: "${r.role}" is not source, destination or relay` };
  const family = isV4(r.target) ? 4 : isV6(r.target) ? 6 : null;
  if (family === null) return { ok: false, problem: `target: "${r.target}" is not an IP address` };
  const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(r.sourcePrefix);
  if (!m || (family === 4 ? !isV4(m[1]!) : !isV6(m[1]!)) || Number(m[2]) > (family === 4 ? 32 : 128))
    return { ok: false, problem: `source_prefix: "${r.sourcePrefix}" is not an IPv${family} prefix` };
  if (r.protocol !== 'tcp' && r.protocol !== 'udp' && r.protocol !== 'icmp')
    return { ok: false, problem: `protocol: "${r.protocol}" is not tcp, udp or icmp` };
  const hasPorts = r.protocol !== 'icmp';
  if (hasPorts && (r.port < 1 || r.port > 65535)) return { ok: false, problem: `port: ${r.port} is not 1-65535` };
  if (hasPorts && (r.sourcePort < 1024 || r.sourcePort > 65535))
    return { ok: false, problem: `source_port: ${r.sourcePort} is not 1024-65535` };
  const name = /^[a-z0-9-]{1,63}$/;
  if (r.role === 'relay' && (!name.test(r.peerA) || !name.test(r.peerB)))
    return { ok: false, problem: 'peer_a, peer_b: a relay needs both agent names' };
  return {
    ok: true,
    id: r.id,
    role: r.role,
    family,
    sourcePrefix: r.sourcePrefix,
    target: r.target,
    protocol: r.protocol,
    port: hasPorts ? r.port : 0,
    sourcePort: hasPorts ? r.sourcePort : 0,
    windowMs: Math.min(10_000, Math.max(500, r.windowMs || 2000)),
    peerA: r.peerA,
    peerB: r.peerB,
  };
}

export const traceTableName = (id: string): string => `${TRACE_TABLE_PREFIX}${id}`;

/** The two named counters of a trace table: the test flow's own direction, and its replies. */
export const COUNTER_FORWARD = 'test_forward';
export const COUNTER_BACK = 'test_back';

type Ok = Extract<CheckedTrace, { ok: true }>;

/** "meta l4proto tcp th sport 40001 th dport 443" and the reply's mirror of it. */
function l4Match(t: Ok): { forward: string; back: string } {
  if (t.protocol === 'icmp') {
    return t.family === 4
      ? { forward: 'icmp type echo-request', back: 'icmp type echo-reply' }
      : { forward: 'icmpv6 type echo-request', back: 'icmpv6 type echo-reply' };
  }
  return {
    forward: `meta l4proto ${t.protocol} th sport ${t.sourcePort} th dport ${t.port}`,
    back: `meta l4proto ${t.protocol} th sport ${t.port} th dport ${t.sourcePort}`,
  };
}

function splitEndpoint(text: string): { ip: string; host: string; port: number } | null {
  const c = canonicalEndpoint(text);
  if (c === null) return null;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(c);
  if (v6) return { ip: 'ip6', host: v6[1]!, port: Number(v6[2]) };
  const v4 = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(c);
  return v4 ? { ip: 'ip', host: v4[1]!, port: Number(v4[2]) } : null;
}

/**
 * The relay's two matches for the pair: datagrams from peer_a's endpoint to the port this relay
 * gave it for peer_b, and from peer_b's endpoint back to the address it sees for peer_a (the
 * forward's SNAT side, where both the conntrack replies and peer_b's own sends arrive). Taken
 * from the forward peer_a -> peer_b, or its mirror when only that one is listed. null: this box
 * relays nothing for the pair.
 */
export function relayMatches(t: Ok, forwards: readonly RelayForward[]): { forward: string; back: string } | null {
  let f = forwards.find((x) => x.fromAgent === t.peerA && x.toAgent === t.peerB);
  let isSwapped = false;
  if (!f) {
    f = forwards.find((x) => x.fromAgent === t.peerB && x.toAgent === t.peerA);
    isSwapped = true;
  }
  if (!f) return null;
  const [src, listen, target, snat] = [f.source, f.listen, f.target, f.snat].map(splitEndpoint);
  if (!src || !listen || !target || !snat) return null;
  const m = (a: typeof src, b: typeof src) =>
    `${a.ip} saddr ${a.host} udp sport ${a.port} ${b.ip} daddr ${b.host} udp dport ${b.port}`;
  const ab = m(src, listen);
  const ba = m(target, snat);
  return isSwapped ? { forward: ba, back: ab } : { forward: ab, back: ba };
}

/**
 * The temporary table for `t` on this box, as `nft -f` input. Source: counts the test packets it
 * sends (output) and their replies. Destination: marks the test packets for nft tracing and counts
 * them and the replies. Relay: counts the pair's encrypted datagrams each way (`forwards` is the
 * box's relay list). null: nothing to watch here (a relay that relays nothing for the pair).
 */
export function renderTraceTable(t: Ok, opts: { forwards?: readonly RelayForward[] }): string | null {
  const ip = t.family === 4 ? 'ip' : 'ip6';
  const name = traceTableName(t.id);
  const hook = (chain: string, h: string, rules: string[]) => [
    `\tchain ${chain} {`,
    `\t\ttype filter hook ${h} priority raw - 1; policy accept;`,
    ...rules.map((r) => `\t\t${r}`),
    '\t}',
  ];
  const fwd = `counter name "${COUNTER_FORWARD}"`;
  const back = `counter name "${COUNTER_BACK}"`;
  let chains: string[];
  if (t.role === 'relay') {
    const m = relayMatches(t, opts.forwards ?? []);
    if (m === null) return null;
    chains = hook('pre', 'prerouting', [`${m.forward} ${fwd}`, `${m.back} ${back}`]);
  } else {
    const l4 = l4Match(t);
    const there = `${ip} saddr ${t.sourcePrefix} ${ip} daddr ${t.target}`;
    const here = `${ip} saddr ${t.target} ${ip} daddr ${t.sourcePrefix}`;
    chains =
      t.role === 'source'
        ? [
            ...hook('out', 'output', [`${there} ${l4.forward} ${fwd}`]),
            ...hook('pre', 'prerouting', [`${here} ${l4.back} ${back}`]),
          ]
        : hook('pre', 'prerouting', [`${there} ${l4.forward} meta nftrace set 1 ${fwd}`, `${here} ${l4.back} ${back}`]);
  }
  return [
    `table inet ${name} {`,
    `\tcounter ${COUNTER_FORWARD} {`,
    '\t}',
    `\tcounter ${COUNTER_BACK} {`,
    '\t}',
    ...chains,
    '}',
    '',
  ].join('\n');
}

/** Reads the two counters from `nft -j list counters table inet NAME`. Missing: zeros. */
export function parseTraceCounters(json: string): { forward: Count; back: Count } {
  const out = { forward: { packets: 0, bytes: 0 }, back: { packets: 0, bytes: 0 } };
  let doc: { nftables?: Array<{ counter?: { name?: string; packets?: number; bytes?: number } }> };
  try {
    doc = JSON.parse(json) as typeof doc;
  } catch {
    return out;
  }
  for (const item of doc.nftables ?? []) {
    const c = item.counter;
    if (!c) continue;
    const v = { packets: c.packets ?? 0, bytes: c.bytes ?? 0 };
    if (c.name === COUNTER_FORWARD) out.forward = v;
    if (c.name === COUNTER_BACK) out.back = v;
  }
  return out;
}

export interface Count {
  packets: number;
  bytes: number;
}

/** Names of leftover trace tables in `nft list tables` output ("table inet crosslink_trace_…"). */
export function leftoverTraceTables(listing: string): string[] {
  const out: string[] = [];
  for (const line of listing.split('\n')) {
    const m = /^table inet (\S+)$/.exec(line.trim());
    if (m && m[1]!.startsWith(TRACE_TABLE_PREFIX)) out.push(m[1]!);
  }
  return out.sort();
}

/** What `nft monitor trace` showed for the test packet, decided from Crosslink's table. */
export interface TraceJudgement {
  verdict: 'admitted' | 'dropped' | 'passed' | 'not-seen';
  /** The Crosslink chain that judged it. */
  direction: FirewallDirection | '';
  /** admitted by a rule's set lookup (its name comes from the flow's ct mark). */
  isByRule: boolean;
  detail: string;
}

const TRACE_LINE = /^trace id ([0-9a-f]+) (\S+) (\S+) (\S+) (rule|policy|verdict) ?(.*)$/;

/**
 * Judges the first traced packet in `lines` (nft monitor trace output). Only rule, policy and
 * verdict lines are read, never the "packet:" lines (they carry header and payload bytes). A drop
 * in any table counts (another firewall on the box may be what drops the flow); an accept in
 * Crosslink's `admitted` chain is a rule's admission, one by `ct state established` an existing
 * flow's packet; a packet that no Crosslink chain judged "passed" (e.g. it never crossed the
 * overlay interface).
 */
export function judgeTraceLines(lines: readonly string[]): TraceJudgement {
  let id: string | null = null;
  let direction: FirewallDirection | '' = '';
  let result: TraceJudgement | null = null;
  for (const line of lines) {
    const m = TRACE_LINE.exec(line.trim());
    if (!m) continue;
    const [, lineId, , table, chain, kind, rest] = m as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    if (table.startsWith(TRACE_TABLE_PREFIX)) {
      id ??= lineId;
      continue;
    }
    id ??= lineId;
    if (lineId !== id) continue;
    const isOurs = table === CROSSLINK_TABLE;
    const dir = FIREWALL_DIRECTIONS.find((d) => d.chain === chain);
    if (isOurs && dir) direction = dir.key;
    const verdict =
      /\(verdict (\w+)/.exec(rest)?.[1] ?? (kind === 'policy' ? rest.trim() : kind === 'verdict' ? rest.trim() : '');
    const ruleText =
      kind === 'rule' ? rest.replace(/\s*\(verdict .*\)\s*$/, '').replace(/ packets \d+ bytes \d+/g, '') : '';
    if (verdict === 'drop' || verdict === 'reject') {
      const where = `table ${m[2]} ${table} chain ${chain}`;
      let why = kind === 'policy' ? `the chain's policy is ${verdict}` : `rule "${ruleText}"`;
      if (isOurs && dir && /counter name "dropped_/.test(ruleText))
        why = `no rule allows it (${dir.key}; counter ${dir.counter})`;
      else if (isOurs && /ct state invalid/.test(ruleText)) why = 'not part of a valid connection (ct state invalid)';
      // A drop anywhere is final, even after another base chain accepted the packet.
      if (result?.verdict !== 'dropped')
        result = {
          verdict: 'dropped',
          direction: isOurs ? direction : '',
          isByRule: false,
          detail: `dropped by ${where}: ${why}`,
        };
    }
    if (isOurs && chain === 'admitted' && verdict === 'accept')
      result ??= {
        verdict: 'admitted',
        direction,
        isByRule: true,
        detail: `admitted by a rule of the ${direction} chain`,
      };
    if (isOurs && chain === 'forward' && verdict === 'accept' && /ct state established/.test(ruleText))
      result ??= {
        verdict: 'admitted',
        direction: '',
        isByRule: false,
        detail: 'admitted as part of an established flow',
      };
  }
  if (result) return result;
  if (id === null) return { verdict: 'not-seen', direction: '', isByRule: false, detail: 'no test packet traced' };
  return {
    verdict: 'passed',
    direction,
    isByRule: false,
    detail: 'passed without a Crosslink verdict (it did not cross the overlay interface here)',
  };
}
