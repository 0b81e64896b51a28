// Renders the file `wg syncconf` reads. PURE: no I/O. Deterministic: peers sorted by public key,
// AllowedIPs canonical and sorted.
import { CrosslinkError } from '../../lib/errors.js';
import { canonicalPrefixList } from './canonical.js';
import type { WgPeerDesired } from '../reconcile/host-state.js';

const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export function isWireGuardKey(text: string): boolean {
  return KEY_RE.test(text);
}

/**
 * `wg syncconf` leaves a field it is not given unchanged on an existing peer, so PersistentKeepalive
 * is always written (0 = off). AllowedIPs are replaced for every peer in the file; an empty list is
 * written as no AllowedIPs line, which clears them. An empty endpoint leaves the peer's endpoint as
 * it is (WireGuard cannot unset an endpoint; the peer's roaming address is kept).
 */
export function renderWgConfig(privateKey: string, listenPort: number, peers: readonly WgPeerDesired[]): string {
  if (!isWireGuardKey(privateKey))
    throw new CrosslinkError('config_invalid', 'the private key file does not hold a WireGuard key');
  if (!Number.isInteger(listenPort) || listenPort < 0 || listenPort > 65535) {
    throw new CrosslinkError('config_invalid', `invalid listen port ${listenPort}`, [
      { path: 'listenPort', message: 'must be 0..65535' },
    ]);
  }
  const lines = ['[Interface]', `PrivateKey = ${privateKey}`];
  if (listenPort > 0) lines.push(`ListenPort = ${listenPort}`);
  const sorted = [...peers].sort((a, b) => (a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0));
  sorted.forEach((p, i) => {
    const path = `peers[${i}]`;
    if (!isWireGuardKey(p.publicKey))
      throw new CrosslinkError('config_invalid', `${path}: invalid public key`, [
        { path: `${path}.publicKey`, message: 'invalid public key' },
      ]);
    if (sorted[i - 1]?.publicKey === p.publicKey) {
      throw new CrosslinkError('config_invalid', `${path}: duplicate public key`, [
        { path: `${path}.publicKey`, message: 'duplicate public key' },
      ]);
    }
    if (/[\s#]/.test(p.endpoint))
      throw new CrosslinkError('config_invalid', `${path}: invalid endpoint`, [
        { path: `${path}.endpoint`, message: 'invalid endpoint' },
      ]);
    const keepalive = p.persistentKeepaliveSeconds;
    if (!Number.isInteger(keepalive) || keepalive < 0 || keepalive > 65535) {
      throw new CrosslinkError('config_invalid', `${path}: invalid keepalive`, [
        { path: `${path}.persistentKeepaliveSeconds`, message: 'must be 0..65535' },
      ]);
    }
    lines.push('', '[Peer]', `PublicKey = ${p.publicKey}`);
    const allowed = canonicalPrefixList(p.allowedIps);
    if (allowed.length > 0) lines.push(`AllowedIPs = ${allowed.join(', ')}`);
    if (p.endpoint !== '') lines.push(`Endpoint = ${p.endpoint}`);
    lines.push(`PersistentKeepalive = ${keepalive === 0 ? 'off' : keepalive}`);
  });
  return lines.join('\n') + '\n';
}
