// After the firewall changed: the connection-tracking entries that no longer fit it are forgotten,
// so their next packet is judged by the firewall as it is now (agent/host/linux/conntrack.ts says
// why each is needed):
// - the UDP flows of every relay forward that appeared, changed or went (NAT is decided on a
//   flow's first packet);
// - the flows of every rule mark no longer in force (a rule removed, or expired and then removed:
//   `ct state established` would otherwise let them run on: "fail ajar").
// After a start the marks in force before are unknown: every Crosslink-marked entry whose mark is
// not in force now is forgotten.
import { RULE_MARK_BASE, RULE_MARK_MASK } from '../host/firewall-names.js';
import type { ConntrackPort, RelayListen } from '../host/ports.js';

export class StaleFlows {
  private relay: ReadonlyMap<string, RelayListen> | null = null;
  private marks: ReadonlySet<number> | null = null;

  constructor(private readonly conntrack: ConntrackPort | undefined) {}

  async afterFirewall(relay: ReadonlyMap<string, RelayListen>, marks: ReadonlySet<number>): Promise<void> {
    const relayBefore = this.relay;
    const marksBefore = this.marks;
    this.relay = relay;
    this.marks = marks;
    const ct = this.conntrack;
    if (!ct) return;
    const changed = new Map<string, RelayListen>();
    for (const [key, l] of relay) if (!relayBefore?.has(key)) changed.set(`${l.address} ${l.port}`, l);
    for (const [key, l] of relayBefore ?? []) if (!relay.has(key)) changed.set(`${l.address} ${l.port}`, l);
    if (changed.size > 0) await ct.forgetUdp([...changed.values()]);
    const before = marksBefore ?? (await ct.listMarks(RULE_MARK_BASE, RULE_MARK_MASK));
    const gone = [...before].filter((m) => !marks.has(m));
    if (gone.length > 0) await ct.forgetMarks(gone.sort((a, b) => a - b));
  }
}
