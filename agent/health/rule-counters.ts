// The firewall's named counters as the agent reports them: drops per direction, and per rule and
// direction the connections it admitted and their packets and bytes. PURE: no I/O.
//
// nft's counters restart at zero whenever the table is replaced (every firewall change); the
// agent's totals must not, or a policy change would look like traffic going backwards. So each
// counter is kept as a running total: a reading lower than the last one is a restart, and the last
// reading is added to the base. (What crossed between the last reading and the restart is lost.)
import { parseCounterName, type FirewallDirection } from '../host/firewall-names.js';
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
  last: { packets: bigint; bytes: bigint };
  base: { packets: bigint; bytes: bigint };
}

export class FirewallCounterTotals {
  private readonly running = new Map<string, Running>();

  /** Folds one reading of every named counter into the running totals and returns them. A counter
   *  missing from the reading (its rule gone) keeps its total but is not shown. The map keeps one
   *  entry per counter name ever seen (rules of past configs): a few per rule, never per flow. */
  update(reading: Readonly<Record<string, FirewallCounter>>): FirewallTotals {
    // A counter missing from this reading is gone with its table: when it comes back it starts at 0.
    for (const [name, r] of this.running) {
      if (name in reading) continue;
      r.base = { packets: r.base.packets + r.last.packets, bytes: r.base.bytes + r.last.bytes };
      r.last = { packets: 0n, bytes: 0n };
    }
    const dropped: FirewallTotals['dropped'] = {};
    const rules = new Map<string, RuleCounterView>();
    const zoneDrops: ZoneDropView[] = [];
    for (const [name, c] of Object.entries(reading)) {
      const kind = parseCounterName(name);
      if (!kind) continue;
      const total = this.fold(name, c);
      if (kind.kind === 'dropped') {
        dropped[name] = total;
        continue;
      }
      if (kind.kind === 'zone-drop') {
        const { direction, sourceZone, destinationZone } = kind;
        zoneDrops.push({ direction, sourceZone, destinationZone, ...total });
        continue;
      }
      const key = `${kind.rule}\n${kind.direction}`;
      let row = rules.get(key);
      if (!row) {
        row = { rule: kind.rule, direction: kind.direction, connections: 0, packets: 0, bytes: 0 };
        rules.set(key, row);
      }
      if (kind.kind === 'new') row.connections = total.packets;
      else {
        row.packets = total.packets;
        row.bytes = total.bytes;
      }
    }
    const byKeys = (a: readonly string[], b: readonly string[]): number => {
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
      return 0;
    };
    return {
      dropped,
      rules: [...rules.values()].sort((a, b) => byKeys([a.rule, a.direction], [b.rule, b.direction])),
      zoneDrops: zoneDrops.sort((a, b) =>
        byKeys([a.direction, a.sourceZone, a.destinationZone], [b.direction, b.sourceZone, b.destinationZone]),
      ),
    };
  }

  private fold(name: string, c: FirewallCounter): { packets: number; bytes: number } {
    let r = this.running.get(name);
    if (!r) {
      r = { last: { packets: 0n, bytes: 0n }, base: { packets: 0n, bytes: 0n } };
      this.running.set(name, r);
    }
    if (c.packets < r.last.packets || c.bytes < r.last.bytes) {
      r.base = { packets: r.base.packets + r.last.packets, bytes: r.base.bytes + r.last.bytes };
    }
    r.last = { packets: c.packets, bytes: c.bytes };
    return { packets: Number(r.base.packets + c.packets), bytes: Number(r.base.bytes + c.bytes) };
  }
}
