// The host state the reconciler reads (…Observed) and asks for (…Desired), in the ports' terms:
// what agent/host/ports.ts's ports return and take. Plain data, no behaviour.

export interface WgPeerObserved {
  publicKey: string;
  /** "host:port", or "" when none. */
  endpoint: string;
  /** Canonical prefixes, sorted. */
  allowedIps: string[];
  persistentKeepaliveSeconds: number;
  /** Unix seconds; 0 = never. */
  latestHandshakeUnix: number;
  rxBytes: bigint;
  txBytes: bigint;
}

export interface WgDeviceObserved {
  publicKey: string;
  listenPort: number;
  /** Sorted by public key. */
  peers: WgPeerObserved[];
}

export interface WgPeerDesired {
  publicKey: string;
  endpoint: string;
  allowedIps: string[];
  persistentKeepaliveSeconds: number;
}

export interface WgDeviceDesired {
  /** Path of the 0600 file holding the private key (the key itself never passes through here). */
  privateKeyFile: string;
  listenPort: number;
  peers: WgPeerDesired[];
}

export interface LinkObserved {
  exists: boolean;
  isUp: boolean;
  mtu: number;
  /** Addresses with prefix length, canonical, sorted. */
  addresses: string[];
}

export interface RouteObserved {
  /** Canonical destination prefix. */
  prefix: string;
  dev: string;
}

export interface FirewallObserved {
  /** false: the table does not exist. */
  exists: boolean;
  /** Fingerprint of the live table (normalised ruleset text without counters), compared with
   *  the fingerprint recorded right after Crosslink's own last write to detect drift. */
  fingerprint: string;
}

/** One address on one of the box's interfaces. */
export interface InterfaceAddress {
  ifname: string;
  /** With prefix length, canonical ("10.20.1.2/24"). */
  cidr: string;
}

export interface RouteChanges {
  add: RouteObserved[];
  del: RouteObserved[];
}

/** A named nft counter of the Crosslink table (e.g. "dropped_inbound"). */
export interface FirewallCounter {
  packets: bigint;
  bytes: bigint;
}
