// WireGuard (X25519) keys in wg's base64 text form, through node:crypto (no `wg genkey` process).
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';

function b64urlToB64(s: string): string {
  const t = s.replace(/-/g, '+').replace(/_/g, '/');
  return t + '='.repeat((4 - (t.length % 4)) % 4);
}

/** DER header of a PKCS#8 X25519 private key; the 32 raw key bytes follow. */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** A new private key, base64 (44 chars), as `wg genkey` prints it. */
export function generateWgPrivateKey(): string {
  const { privateKey } = generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return b64urlToB64(jwk.d!);
}

/** The public key of a base64 private key, as `wg pubkey` prints it. */
export function wgPublicKey(privateKeyBase64: string): string {
  const raw = Buffer.from(privateKeyBase64.trim(), 'base64');
  if (raw.length !== 32) throw new Error('a WireGuard private key is 32 bytes, base64');
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  const jwk = createPublicKey(priv).export({ format: 'jwk' });
  return b64urlToB64(jwk.x!);
}
