// An agent's failover view (its local /status) as one line, for diagnosing a failed e2e check:
// a sender's choice per group, a candidate's gateway holding, and the echo's peer states with how
// long each has held (a peer "up 12 s" was not up 12 s ago).
import type { FailoverStatusView } from '../../agent/failover/engine.js';
import type { Fleet } from './fleet.js';
import type { Testbed } from '../testbed/testbed.js';

/** The failover section of an agent's /status (undefined: no serving groups). */
async function failoverOf(fleet: Fleet, name: string): Promise<FailoverStatusView | undefined> {
  return (await fleet.agentStatus(name))['failover'] as FailoverStatusView | undefined;
}

/** One line of an agent's failover view (its /status), for a failure's diagnosis. */
export async function failoverLine(fleet: Fleet, name: string): Promise<string> {
  try {
    const f = await failoverOf(fleet, name);
    if (!f) return 'no serving groups';
    const groups = f.groups.map((g) =>
      g.role === 'sender'
        ? `${g.name} -> ${g.active} (holder per echo: ${g.holder ?? 'none'})`
        : `${g.name} ${g.isHolding ? 'HOLDING' : 'not holding'}`,
    );
    const peers = f.peers.map((p) => `${p.name} ${p.state} ${p.forSeconds ?? '?'} s`);
    return `eligible ${f.isEligible}; ${groups.join(', ')}; echo: ${peers.join(', ')}`;
  } catch (e) {
    return `status unreadable (${(e as Error).message})`;
  }
}

/**
 * Where a ping is lost: captures ICMP to and from `to` on every box of `boxes` (all interfaces,
 * with direction) while `from` pings it three times, and lists each box's nonzero drop counters
 * and the ICMP connections it tracks to that address. One line per box, for a failure's diagnosis.
 */
export async function pingCapture(bed: Testbed, from: string, to: string, boxes: readonly string[]): Promise<string[]> {
  const filter = `(icmp or icmp6) and host ${to}`;
  const captures = boxes.map((b) =>
    bed.exec(b, ['timeout', '4', 'tcpdump', '-i', 'any', '-t', '-n', '-l', '-q', filter], { check: false }),
  );
  await new Promise((r) => setTimeout(r, 800)); // tcpdump attaches
  const p = await bed.ping(from, to, { count: 3, intervalMs: 200, timeoutMs: 1000 });
  const lines = [`ping ${from} -> ${to}: ${p.received} of ${p.sent} answered`];
  for (const [i, b] of boxes.entries()) {
    const seen = new Map<string, number>();
    for (const l of (await captures[i]!).stdout.split('\n')) {
      // "crosslink0 In  IP 10.60.1.10 > 10.20.1.10: ICMP echo request, id 7, seq 1, length 64"
      const m = /^(\S+)\s+(In|Out|M|B|P)\s+IP6?\s+\S+ > \S+:?\s+(?:ICMP6?,?\s*)?([^,]+)/.exec(l);
      if (m) seen.set(`${m[1]} ${m[2]} ${m[3]}`, (seen.get(`${m[1]} ${m[2]} ${m[3]}`) ?? 0) + 1);
    }
    const counters = await bed.exec(b, ['nft', 'list', 'counters', 'table', 'inet', 'crosslink'], { check: false });
    const drops = [...counters.stdout.matchAll(/counter (\S+) \{\s*packets (\d+)/g)]
      .filter((c) => /drop/.test(c[1]!) && c[2] !== '0')
      .map((c) => `${c[1]}=${c[2]}`);
    const ct = await bed.exec(b, ['conntrack', '-L', '-p', 'icmp', '-d', to], { check: false });
    const tracked = ct.stdout.split('\n').filter((l) => l.includes(to)).length;
    lines.push(
      `${b}: ${[...seen].map(([k, n]) => `${k} x${n}`).join(', ') || 'no ICMP seen'}; drops ${drops.join(' ') || 'none'}; ${tracked} ICMP conntrack entries to ${to}`,
    );
  }
  return lines;
}

/** How `agent`'s echo sees `peer` now ("up", "down", "init", "never heard"); undefined when the
 *  agent has no serving groups or its status cannot be read. */
export async function echoState(fleet: Fleet, agent: string, peer: string): Promise<string | undefined> {
  try {
    return (await failoverOf(fleet, agent))?.peers.find((p) => p.name === peer)?.state;
  } catch {
    return undefined;
  }
}
