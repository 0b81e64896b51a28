// What the Linux host adapters observe and remember between reads, in one object the host owns
// (no module state): the two monitors that say "changed since <mark>" and are told "this write was
// mine" (`ip monitor` for links, addresses and routes: monitor.ts; `nft monitor` for the firewall:
// nft-monitor.ts), and parsed `wg show` fields. Why each cache exists and what it buys:
// docs/performance.md, Agent.
import { canonicalPrefixList } from '../canonical.js';
import type { NetlinkMonitor } from './monitor.js';
import type { NftMonitor } from './nft-monitor.js';

/** Parsed allowed-IPs fields kept at most this many (1,000 peers need 1,000). */
const ALLOWED_IPS_MAX = 20_000;

export class HostObservations {
  /** `wg show` allowed-IPs field -> its canonical prefixes (the field rarely changes between reads;
   *  canonicalising 6,000 prefixes on every run cost 5-20 ms of a no-op reconcile). */
  private readonly allowedIpsByField = new Map<string, string[]>();

  /** `netlink`: absent when link and route reads are not cached; `nft`: absent in tests that
   *  build an adapter alone (the firewall then runs one of its own). */
  constructor(
    readonly netlink?: NetlinkMonitor,
    readonly nft?: NftMonitor,
  ) {}

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
