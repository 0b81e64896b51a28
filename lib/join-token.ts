// Join token text: "xljoin1.<base64url(JSON {u: controllerUrl, f: caFingerprint, n?: agentName})>.<secret>".
// The agent learns where the controller is, which CA to pin (no trust on first use) and the name the
// token was made for from the token alone; the controller stores only sha256(secret).
import { CrosslinkError } from './errors.js';

const PREFIX = 'xljoin1';

export interface JoinTokenParts {
  controllerUrl: string;
  /** sha256 of the controller CA certificate (DER), lowercase hex without colons. */
  caFingerprint: string;
  secret: string;
  /** The agent name the token was made for; absent in tokens that name none. */
  agentName?: string;
}

export function formatJoinToken(p: JoinTokenParts): string {
  const meta = Buffer.from(JSON.stringify(p.agentName ? { u: p.controllerUrl, f: p.caFingerprint, n: p.agentName } : { u: p.controllerUrl, f: p.caFingerprint })).toString('base64url');
  return `${PREFIX}.${meta}.${p.secret}`;
}

export function parseJoinToken(text: string): JoinTokenParts {
  const parts = text.trim().split('.');
  const bad = (why: string) => new CrosslinkError('config_invalid', `join token is malformed: ${why}`, [{ path: 'join', message: why }]);
  if (parts.length !== 3 || parts[0] !== PREFIX) throw bad(`expected "${PREFIX}.<meta>.<secret>"`);
  let meta: { u?: unknown; f?: unknown; n?: unknown };
  try {
    meta = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    throw bad('the middle part is not base64url JSON');
  }
  if (typeof meta.u !== 'string' || !/^https:\/\//.test(meta.u)) throw bad('controller URL missing or not https');
  if (typeof meta.f !== 'string' || !/^[0-9a-f]{64}$/.test(meta.f)) throw bad('CA fingerprint missing or not 64 hex digits');
  if (!/^[A-Za-z0-9_-]{20,}$/.test(parts[2]!)) throw bad('secret part missing or too short');
  if (meta.n !== undefined && (typeof meta.n !== 'string' || !/^[a-z0-9-]{1,63}$/.test(meta.n))) throw bad('agent name is not lowercase [a-z0-9-], 1-63 chars');
  const out: JoinTokenParts = { controllerUrl: meta.u, caFingerprint: meta.f, secret: parts[2]! };
  if (typeof meta.n === 'string') out.agentName = meta.n;
  return out;
}
