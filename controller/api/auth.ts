// Authentication (a bearer token, or the web view's session cookie holding one) and role checks for
// the admin API. Tokens are stored as sha256 hex; the lookup is by hash and the stored hash is
// compared in constant time. Each route names the one permission it needs:
// `onRequest: auth.requires('policy.write')`. Both checks run before the body is read, so an
// unauthorised request never gets as far as parsing or writing anything.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CrosslinkError } from '../../lib/errors.js';
import type { Actor, ApiTokenRecord, Role } from '../store/store.js';
import type { ApiDeps } from './deps.js';
import { hashesEqual, sha256Hex } from './secrets.js';
import { isUnsafeMethod, sessionTokenOf, UI_HEADER } from '../ui/session.js';

export type Permission =
  | 'policy.read'
  | 'policy.write'
  | 'policy.dryRun'
  | 'agents.read'
  | 'agents.write'
  | 'joinTokens.read'
  | 'joinTokens.write'
  | 'apiTokens.read'
  | 'apiTokens.write'
  | 'audit.read'
  | 'trace.live';

/** Who may do what. admin: everything; operator: agents and join tokens, reads policy, may dry-run
 *  but never writes it; auditor: read-only, including the audit log and the token list. */
export const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  admin: [
    'policy.read',
    'policy.write',
    'policy.dryRun',
    'agents.read',
    'agents.write',
    'joinTokens.read',
    'joinTokens.write',
    'apiTokens.read',
    'apiTokens.write',
    'audit.read',
    'trace.live',
  ],
  operator: [
    'policy.read',
    'policy.dryRun',
    'agents.read',
    'agents.write',
    'joinTokens.read',
    'joinTokens.write',
    'trace.live',
  ],
  auditor: ['policy.read', 'agents.read', 'joinTokens.read', 'apiTokens.read', 'audit.read'],
};

/** What each permission lets a token do, in the words of docs/api.md's role table. */
const PERMISSION_TEXT: Record<Permission, string> = {
  'policy.read': 'read the policy',
  'policy.write': 'change the policy (apply, rollback)',
  'policy.dryRun': 'dry-run a policy',
  'agents.read': 'read agents',
  'agents.write': 'revoke or delete agents',
  'joinTokens.read': 'read join tokens',
  'joinTokens.write': 'make or revoke join tokens',
  'apiTokens.read': 'read API tokens',
  'apiTokens.write': 'make or revoke API tokens',
  'audit.read': 'read the audit log',
  'trace.live': 'send a live test flow through the boxes (trace --live)',
};

/** "an operator token may not change the policy (apply, rollback): that needs the admin role". */
export function forbiddenMessage(role: Role, p: Permission): string {
  const roles = (Object.keys(ROLE_PERMISSIONS) as Role[]).filter((r) => ROLE_PERMISSIONS[r].includes(p));
  const article = /^[aeiou]/.test(role) ? 'an' : 'a';
  return `${article} ${role} token may not ${PERMISSION_TEXT[p]}: that needs the ${roles.join(' or ')} role`;
}

export function roleMay(role: Role, p: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(p);
}

export interface Principal {
  token: ApiTokenRecord;
  actor: Actor;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

// last_used_at is informational: refresh it at most once a minute per token, not on every request.
const TOUCH_INTERVAL_MS = 60_000;

export function createAuth(deps: Pick<ApiDeps, 'store' | 'clock' | 'log'>) {
  /** The principal of an API token's text; unauthenticated if it is unknown or revoked. */
  async function principalOfToken(text: string, address: string): Promise<Principal> {
    const hash = sha256Hex(text);
    const token = await deps.store.apiTokenBySecretHash(hash);
    if (!token || !hashesEqual(token.secretHash, hash) || token.revokedAtMs !== null) {
      throw new CrosslinkError('unauthenticated', 'unknown or revoked API token');
    }
    const now = deps.clock.nowMs();
    if (token.lastUsedAtMs === null || now - token.lastUsedAtMs > TOUCH_INTERVAL_MS) {
      deps.store
        .touchApiToken(token.id, now)
        .catch((e: unknown) => deps.log.warn({ err: e }, 'could not record API token use'));
    }
    return { token, actor: { name: token.name, role: token.role, address } };
  }

  // One path for both credentials: the Authorization header when there is one (the CLI, scripts),
  // else the web view's session cookie, which holds the same token (controller/ui/session.ts).
  async function authenticate(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    if (header) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!m) throw new CrosslinkError('unauthenticated', 'Authorization header must be "Bearer <token>"');
      return principalOfToken(m[1]!, req.ip);
    }
    const fromCookie = sessionTokenOf(req.headers.cookie);
    if (fromCookie === null)
      throw new CrosslinkError('unauthenticated', 'missing Authorization: Bearer <token> header');
    const principal = await principalOfToken(fromCookie, req.ip);
    // A browser sends the cookie with any request to this origin, including a form another site
    // submits; only the web view's own script sets this header (cross-site forms cannot).
    if (isUnsafeMethod(req.method) && req.headers[UI_HEADER] !== '1')
      throw new CrosslinkError(
        'forbidden',
        `a ${req.method} authenticated by the web view's session cookie needs the header ${UI_HEADER}: 1 (sent by the web view itself, never by a form on another site)`,
        [{ path: `headers.${UI_HEADER}`, message: 'must be 1 with cookie authentication' }],
      );
    return principal;
  }

  return {
    authenticate,
    principalOfToken,
    /** Checks a further permission inside a route whose onRequest already authenticated. */
    check(req: FastifyRequest, permission: Permission): void {
      const principal = principalOf(req);
      if (!roleMay(principal.token.role, permission))
        throw new CrosslinkError('forbidden', forbiddenMessage(principal.token.role, permission), [
          { message: `needs a role with ${permission}` },
        ]);
    },
    requires(permission: Permission) {
      return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
        const principal = await authenticate(req);
        if (!roleMay(principal.token.role, permission)) {
          throw new CrosslinkError('forbidden', forbiddenMessage(principal.token.role, permission), [
            { message: `needs a role with ${permission}` },
          ]);
        }
        req.principal = principal;
      };
    },
  };
}

export type Auth = ReturnType<typeof createAuth>;

/** The principal set by `requires()`; routes that call this always have one. */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new CrosslinkError('internal', 'route reached without authentication');
  return req.principal;
}
