// The fake host's WireGuard device: its key, port and peers, observed and synced like `wg` does.
import { canonicalPrefixList } from './canonical.js';
import type { WgDeviceDesired, WgDeviceObserved, WgPeerObserved } from '../reconcile/host-state.js';
import { renderWgConfig } from './wg-config.js';
import { wgPublicKey } from './wg-key.js';

export interface FakeWgDevice {
  privateKey: string;
  listenPort: number;
  peers: Map<string, WgPeerObserved>;
}

/** What wireguard.observe returns for the device. */
export function observeWgDevice(wg: FakeWgDevice): WgDeviceObserved {
  const peers = [...wg.peers.values()].sort((a, b) =>
    a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0,
  );
  return {
    publicKey: wg.privateKey === '' ? '' : wgPublicKey(wg.privateKey),
    listenPort: wg.listenPort,
    peers: peers.map((p) => ({ ...p, allowedIps: [...p.allowedIps] })),
  };
}

/** `wg syncconf` of the desired device onto `wg`, with the private key read from its file. */
export function syncWgDevice(wg: FakeWgDevice, desired: WgDeviceDesired, privateKey: string): void {
  renderWgConfig(privateKey, desired.listenPort, desired.peers); // same validation as the real file
  wg.privateKey = privateKey;
  if (desired.listenPort > 0) wg.listenPort = desired.listenPort;
  const next = new Map<string, WgPeerObserved>();
  for (const p of desired.peers) {
    const old = wg.peers.get(p.publicKey);
    // Like `wg syncconf`: an unchanged peer keeps its session and statistics; no endpoint given
    // leaves the old one.
    next.set(p.publicKey, {
      publicKey: p.publicKey,
      endpoint: p.endpoint !== '' ? p.endpoint : (old?.endpoint ?? ''),
      allowedIps: canonicalPrefixList(p.allowedIps),
      persistentKeepaliveSeconds: p.persistentKeepaliveSeconds,
      latestHandshakeUnix: old?.latestHandshakeUnix ?? 0,
      rxBytes: old?.rxBytes ?? 0n,
      txBytes: old?.txBytes ?? 0n,
    });
  }
  wg.peers.clear();
  for (const [k, v] of next) wg.peers.set(k, v);
}
