// Path probes (`Probe` in the config): from the agent's own address inside the probe's source
// subnet to a real target (tcp connect, udp request/reply, or ping -I), so the packets cross both
// boxes' firewalls like user traffic. `expect_deny` inverts success. Results become ProbeResult.
import { create } from '@bufbuild/protobuf';
import { ProbeResultSchema, type Probe, type ProbeResult } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { Clock } from '../../lib/clock.js';
import { containsAddress, parseAddress, parsePrefix } from '../../lib/prefix.js';
import { pingOnce } from './ping.js';
import type { AttemptOutcome, LocalAddressLookup, ProbeCommandRunner, TcpConnect, UdpExchange } from './ports.js';
import { connectTcp, udpExchange } from './sockets.js';

/** The first of `addresses` inside `prefix` (sorted, so the choice is stable), or null. */
export function sourceAddressFor(prefix: string, addresses: readonly string[]): string | null {
  const range = parsePrefix(prefix);
  if (!range.ok) return null;
  const inside = addresses.filter((a) => {
    const addr = parseAddress(a);
    return addr !== undefined && containsAddress(range.prefix, addr);
  });
  const [first] = [...inside].sort();
  return first ?? null;
}

/** Turns an attempt into the probe's verdict: allow probes want `connected`, deny probes want the
 *  target refused, unreachable or silent. */
export function judgeProbe(
  probe: Pick<Probe, 'expectDeny'>,
  outcome: AttemptOutcome,
): { isOk: boolean; detail: string; rttMs: number } {
  if (outcome.kind === 'connected') {
    const rtt = `${outcome.rttMs.toFixed(1)} ms`;
    return probe.expectDeny
      ? { isOk: false, detail: `connected in ${rtt}, but the path should be denied`, rttMs: outcome.rttMs }
      : { isOk: true, detail: `connected in ${rtt}`, rttMs: outcome.rttMs };
  }
  if (outcome.kind === 'error') return { isOk: false, detail: outcome.detail, rttMs: 0 };
  return { isOk: probe.expectDeny, detail: probe.expectDeny ? `denied: ${outcome.detail}` : outcome.detail, rttMs: 0 };
}

/** What the UDP probe sends; a UDP echo service answers with the same bytes. */
export const UDP_PROBE_PAYLOAD = Buffer.from('crosslink-probe\n');

export interface PathProberDeps {
  runner: ProbeCommandRunner;
  clock: Clock;
  localAddresses: LocalAddressLookup;
  connectTcp?: TcpConnect;
  udpExchange?: UdpExchange;
  /** Per attempt. Default 2000 ms (ICMP rounds up to whole seconds). */
  timeoutMs?: number;
}

export class PathProber {
  private readonly connect: TcpConnect;
  private readonly udp: UdpExchange;
  private readonly timeoutMs: number;

  constructor(private readonly deps: PathProberDeps) {
    this.connect = deps.connectTcp ?? connectTcp;
    this.udp = deps.udpExchange ?? udpExchange;
    this.timeoutMs = deps.timeoutMs ?? 2000;
  }

  async attempt(probe: Probe, sourceAddress: string): Promise<AttemptOutcome> {
    const o = { host: probe.target, port: probe.port, localAddress: sourceAddress, timeoutMs: this.timeoutMs };
    switch (probe.protocol) {
      case 'tcp':
        return this.connect(o);
      case 'udp':
        return this.udp({ ...o, payload: UDP_PROBE_PAYLOAD });
      case 'icmp':
        return pingOnce(this.deps.runner, probe.target, {
          sourceAddress,
          timeoutSeconds: Math.max(1, Math.ceil(this.timeoutMs / 1000)),
        });
      default:
        return { kind: 'error', detail: `unknown protocol "${probe.protocol}"` };
    }
  }

  /** Runs one probe from the agent's address in its source prefix. Never throws. */
  async run(probe: Probe, addresses?: readonly string[]): Promise<ProbeResult> {
    const own = addresses ?? (await this.deps.localAddresses());
    const source = sourceAddressFor(probe.sourcePrefix, own);
    let verdict: { isOk: boolean; detail: string; rttMs: number };
    if (source === null) {
      verdict = { isOk: false, detail: `no local address in ${probe.sourcePrefix || '(no source prefix)'}`, rttMs: 0 };
    } else {
      let outcome: AttemptOutcome;
      try {
        outcome = await this.attempt(probe, source);
      } catch (e) {
        outcome = { kind: 'error', detail: (e as Error).message };
      }
      verdict = judgeProbe(probe, outcome);
    }
    return create(ProbeResultSchema, {
      name: probe.name,
      isOk: verdict.isOk,
      detail: verdict.detail,
      rttMs: verdict.rttMs,
      checkedAtUnixMs: BigInt(this.deps.clock.nowMs()),
    });
  }

  async runAll(probes: readonly Probe[]): Promise<ProbeResult[]> {
    if (probes.length === 0) return [];
    const addresses = await this.deps.localAddresses();
    return Promise.all(probes.map((p) => this.run(p, addresses)));
  }
}
