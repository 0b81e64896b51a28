// Join token text: "xljoin1.<base64url(JSON {u: controllerUrl, us?: controllerUrls, f: caFingerprint, n?: agentName})>.<secret>".
// `u` is the first URL (all an agent that predates `us` reads); `us`, only with more than one, lists
// every URL: one per network the controller host sits on, tried in turn by the agent.
// The agent learns where the controller is, which CA to pin (no trust on first use) and the name the
// token was made for from the token alone; the controller stores only sha256(secret).
import { CrosslinkError } from './errors.js';

const PREFIX = 'xljoin1';

export interface JoinTokenParts {
  /** Every URL agents may dial, first choice first (at least one). */
  controllerUrls: string[];
  /** sha256 of the controller CA certificate (DER), lowercase hex without colons. */
  caFingerprint: string;
  secret: string;
  /** The agent name the token was made for; absent in tokens that name none. */
  agentName?: string;
}

export function formatJoinToken(p: JoinTokenParts): string {
  const [first, ...more] = p.controllerUrls;
  if (first === undefined) throw new Error('a join token needs at least one controller URL');
  const meta = Buffer.from(
    JSON.stringify({
      u: first,
      ...(more.length > 0 ? { us: p.controllerUrls } : {}),
      f: p.caFingerprint,
      ...(p.agentName ? { n: p.agentName } : {}),
    }),
  ).toString('base64url');
  return `${PREFIX}.${meta}.${p.secret}`;
}

export function parseJoinToken(text: string): JoinTokenParts {
  const parts = text.trim().split('.');
  const bad = (why: string) =>
    new CrosslinkError('config_invalid', `join token is malformed: ${why}`, [{ path: 'join', message: why }]);
  if (parts.length !== 3 || parts[0] !== PREFIX) throw bad(`expected "${PREFIX}.<meta>.<secret>"`);
  let meta: { u?: unknown; us?: unknown; f?: unknown; n?: unknown };
  try {
    meta = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as typeof meta;
  } catch {
    throw bad('the middle part is not base64url JSON');
  }
  if (typeof meta.u !== 'string' || !/^https:\/\//.test(meta.u)) throw bad('controller URL missing or not https');
  if (
    meta.us !== undefined &&
    (!Array.isArray(meta.us) ||
      meta.us.length === 0 ||
      !meta.us.every((u) => typeof u === 'string' && /^https:\/\//.test(u)))
  ) {
    throw bad('controller URL list is not a list of https URLs');
  }
  if (typeof meta.f !== 'string' || !/^[0-9a-f]{64}$/.test(meta.f))
    throw bad('CA fingerprint missing or not 64 hex digits');
  if (!/^[A-Za-z0-9_-]{20,}$/.test(parts[2]!)) throw bad('secret part missing or too short');
  if (meta.n !== undefined && (typeof meta.n !== 'string' || !/^[a-z0-9-]{1,63}$/.test(meta.n)))
    throw bad('agent name is not lowercase [a-z0-9-], 1-63 chars');
  const out: JoinTokenParts = {
    controllerUrls: (meta.us as string[] | undefined) ?? [meta.u],
    caFingerprint: meta.f,
    secret: parts[2]!,
  };
  if (typeof meta.n === 'string') out.agentName = meta.n;
  return out;
}
