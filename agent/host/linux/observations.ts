// What the Linux host adapters remember between reads, in one object the host owns (no module
// state): parsed `wg show` fields today; the monitors' "changed since" marks read through it.
// Why each cache exists and what it buys: docs/performance.md, Agent.
import { canonicalPrefixList } from '../canonical.js';

/** Parsed allowed-IPs fields kept at most this many (1,000 peers need 1,000). */
const ALLOWED_IPS_MAX = 20_000;

export class HostObservations {
  /** `wg show` allowed-IPs field -> its canonical prefixes (the field rarely changes between reads;
   *  canonicalising 6,000 prefixes on every run cost 10-20 ms of a no-op reconcile). */
  private readonly allowedIpsByField = new Map<string, string[]>();

  /** Canonical, sorted prefixes of a `wg show` allowed-IPs field ("a/32,b/24"); a fresh array. */
  allowedIps(field: string): string[] {
    let list = this.allowedIpsByField.get(field);
    if (list === undefined) {
      list = canonicalPrefixList(field.split(','));
      if (this.allowedIpsByField.size >= ALLOWED_IPS_MAX) this.allowedIpsByField.clear();
      this.allowedIpsByField.set(field, list);
    }
    return [...list];
  }
}
