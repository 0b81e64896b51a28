// The firewall's named counters as the agent reports them: drops per direction, and per rule and
// direction the connections it admitted and their packets and bytes. PURE: no I/O.
//
// nft's counters restart at zero whenever the table is replaced (every firewall change); the
// agent's totals must not, or a policy change would look like traffic going backwards. So each
// counter is kept as a running total: a reading lower than the last one is a restart, and the last
// reading is added to the base. (What crossed between the last reading and the restart is lost.)
import { parseCounterName, type FirewallDirection, type NamedCounter } from '../host/firewall-names.js';
import type { FirewallCounter } from '../reconcile/host-state.js';

export interface RuleCounterView {
  rule: string;
  direction: FirewallDirection;
  connections: number;
  packets: number;
  bytes: number;
}

export interface ZoneDropView {
  direction: FirewallDirection;
  sourceZone: string;
  destinationZone: string;
  packets: number;
  bytes: number;
}

export interface FirewallTotals {
  /** Drops by named counter (dropped_inbound, dropped_outbound, dropped_local). */
  dropped: Record<string, { packets: number; bytes: number }>;
  /** Per rule and direction, sorted by rule then direction. */
  rules: RuleCounterView[];
  /** Drops per direction and zone pair (of the addresses the box knows a zone for), sorted. */
  zoneDrops: ZoneDropView[];
}

interface Running {
  /** The counter's name, parsed once (null: not one of ours). */
  kind: NamedCounter | null;
  lastPackets: bigint;
  lastBytes: bigint;
  /** What earlier incarnations of the counter (before a table reload reset it) had counted. */
  basePackets: bigint;
  baseBytes: bigint;
}

export class FirewallCounterTotals {
  private readonly running = new Map<string, Running>();

  /** Folds one reading of every named counter into the running totals and returns them. A counter
   *  missing from the reading (its rule gone) keeps its total but is not shown. The map keeps one
   *  entry per counter name ever seen (rules of past configs): a few per rule, never per flow.
   *  Entries are updated in place: a reading of thousands of counters every report leaves no
   *  garbage but the totals it returns. */
  update(reading: Readonly<Record<string, FirewallCounter>>): FirewallTotals {
    for (const [name, r] of this.running) {
      if (name in reading) continue;
      r.basePackets += r.lastPackets;
      r.baseBytes += r.lastBytes;
      r.lastPackets = 0n;
      r.lastBytes = 0n;
    }
    const dropped: FirewallTotals['dropped'] = {};
    const rules = new Map<string, Map<string, RuleCounterView>>();
    const zoneDrops: ZoneDropView[] = [];
    for (const name in reading) {
      const r = this.fold(name, reading[name]!);
      const kind = r.kind;
      if (!kind) continue;
      const packets = Number(r.basePackets + r.lastPackets);
      const bytes = Number(r.baseBytes + r.lastBytes);
      if (kind.kind === 'dropped') {
        dropped[name] = { packets, bytes };
        continue;
      }
      if (kind.kind === 'zone-drop') {
        const { direction, sourceZone, destinationZone } = kind;
        zoneDrops.push({ direction, sourceZone, destinationZone, packets, bytes });
        continue;
      }
      let byDirection = rules.get(kind.rule);
      if (!byDirection) rules.set(kind.rule, (byDirection = new Map<string, RuleCounterView>()));
      let row = byDirection.get(kind.direction);
      if (!row) {
        row = { rule: kind.rule, direction: kind.direction, connections: 0, packets: 0, bytes: 0 };
        byDirection.set(kind.direction, row);
      }
      if (kind.kind === 'new') row.connections = packets;
      else {
        row.packets = packets;
        row.bytes = bytes;
      }
    }
    const byKeys = (a: readonly string[], b: readonly string[]): number => {
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
      return 0;
    };
    const ruleRows: RuleCounterView[] = [];
    for (const m of rules.values()) for (const row of m.values()) ruleRows.push(row);
    return {
      dropped,
      rules: ruleRows.sort((a, b) => byKeys([a.rule, a.direction], [b.rule, b.direction])),
      zoneDrops: zoneDrops.sort((a, b) =>
        byKeys([a.direction, a.sourceZone, a.destinationZone], [b.direction, b.sourceZone, b.destinationZone]),
      ),
    };
  }

  private fold(name: string, c: FirewallCounter): Running {
    let r = this.running.get(name);
    if (!r) {
      r = { kind: parseCounterName(name), lastPackets: 0n, lastBytes: 0n, basePackets: 0n, baseBytes: 0n };
      this.running.set(name, r);
    }
    if (c.packets < r.lastPackets || c.bytes < r.lastBytes) {
      r.basePackets += r.lastPackets;
      r.baseBytes += r.lastBytes;
    }
    r.lastPackets = c.packets;
    r.lastBytes = c.bytes;
    return r;
  }
}
