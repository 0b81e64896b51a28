// WireGuard (X25519) keys in wg's base64 text form, through node:crypto (no `wg genkey` process).
// One implementation for the agent's state dir, the fake host and the benchmarks.
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { CrosslinkError } from '../../lib/errors.js';

/** DER header of a PKCS#8 X25519 private key (RFC 8410); the 32 raw key bytes follow. */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/**
 * A new private key, base64 (44 chars), made as `wg genkey` makes it: 32 random bytes, clamped.
 * (Not generateKeyPairSync: on Node 20 a GC during its key job's clean-up was seen to deadlock a
 * process that generated many keys, and random bytes are all an X25519 key is.)
 */
export function generateWgPrivateKey(): string {
  const d = randomBytes(32);
  d[0]! &= 248;
  d[31] = (d[31]! & 127) | 64;
  return d.toString('base64');
}

/** The public key of a base64 private key, as `wg pubkey` prints it. */
export function wgPublicKey(privateKeyBase64: string): string {
  const raw = Buffer.from(privateKeyBase64.trim(), 'base64');
  if (raw.length !== 32)
    throw new CrosslinkError('config_invalid', 'private key file does not hold a 32-byte base64 key');
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  return Buffer.from(createPublicKey(priv).export({ format: 'jwk' }).x!, 'base64url').toString('base64');
}
