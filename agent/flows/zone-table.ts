// Which zone an address is in, from AgentConfig.zones: the flow records name the zones of a flow's
// two ends. PURE: no I/O.
//
// A lookup per flow (1,000 new flows a second is the target), against up to thousands of prefixes
// on a hub: so by prefix length, longest first, one map lookup per distinct length.
import { parseAddress, parsePrefix, rangeOf, type Family } from '../../lib/prefix.js';

export class ZoneTable {
  /** Per family: the distinct lengths, longest first, each with network start -> zone. */
  private readonly byFamily = new Map<Family, Array<{ len: number; zones: Map<number | bigint, string> }>>();

  constructor(zones: ReadonlyArray<{ zone: string; prefixes: readonly string[] }>) {
    const byLen = new Map<Family, Map<number, Map<number | bigint, string>>>();
    for (const z of zones) {
      for (const text of z.prefixes) {
        const r = parsePrefix(text);
        if (!r.ok) continue; // desired.ts has refused a config with one already
        const p = r.prefix;
        let lens = byLen.get(p.family);
        if (!lens) byLen.set(p.family, (lens = new Map<number, Map<number | bigint, string>>()));
        let starts = lens.get(p.len);
        if (!starts) lens.set(p.len, (starts = new Map<number | bigint, string>()));
        starts.set(rangeOf(p).start, z.zone);
      }
    }
    for (const [family, lens] of byLen)
      this.byFamily.set(
        family,
        [...lens.entries()].sort((a, b) => b[0] - a[0]).map(([len, zones]) => ({ len, zones })),
      );
  }

  /** The zone of the most specific prefix holding `address`; "" when none does (or no address). */
  zoneOf(address: string): string {
    const a = parseAddress(address);
    if (!a) return '';
    for (const { len, zones } of this.byFamily.get(a.family) ?? []) {
      const start = rangeOf(a.family === 4 ? { family: 4, addr: a.addr, len } : { family: 6, addr: a.addr, len }).start;
      const zone = zones.get(start);
      if (zone !== undefined) return zone;
    }
    return '';
  }
}
