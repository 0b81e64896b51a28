// Join token text: "xljoin1.<base64url(JSON {u: controllerUrl, f: caFingerprint})>.<secret>".
// The agent learns where the controller is and which CA to pin from the token alone (no trust on
// first use); the controller stores only sha256(secret).
import { CrosslinkError } from './errors.js';

const PREFIX = 'xljoin1';

export interface JoinTokenParts {
  controllerUrl: string;
  /** sha256 of the controller CA certificate (DER), lowercase hex without colons. */
  caFingerprint: string;
  secret: string;
}

export function formatJoinToken(p: JoinTokenParts): string {
  const meta = Buffer.from(JSON.stringify({ u: p.controllerUrl, f: p.caFingerprint })).toString('base64url');
  return `${PREFIX}.${meta}.${p.secret}`;
}

export function parseJoinToken(text: string): JoinTokenParts {
  const parts = text.trim().split('.');
  const bad = (why: string) => new CrosslinkError('config_invalid', `join token is malformed: ${why}`, [{ path: 'join', message: why }]);
  if (parts.length !== 3 || parts[0] !== PREFIX) throw bad(`expected "${PREFIX}.<meta>.<secret>"`);
  let meta: { u?: unknown; f?: unknown };
  try {
    meta = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    throw bad('the middle part is not base64url JSON');
  }
  if (typeof meta.u !== 'string' || !/^https:\/\//.test(meta.u)) throw bad('controller URL missing or not https');
  if (typeof meta.f !== 'string' || !/^[0-9a-f]{64}$/.test(meta.f)) throw bad('CA fingerprint missing or not 64 hex digits');
  if (!/^[A-Za-z0-9_-]{20,}$/.test(parts[2]!)) throw bad('secret part missing or too short');
  return { controllerUrl: meta.u, caFingerprint: meta.f, secret: parts[2]! };
}
