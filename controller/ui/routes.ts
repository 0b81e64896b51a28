// The web view's server side, under /ui: the login page and its form, the session cookie, the app
// shell, the built assets, GET /ui/session and (with a hub) the live events. Registered by
// controller/app.ts beside the REST API, on the same TLS port; the browser app itself is in
// controller/ui/web/. Contracts: docs/web-ui.md.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CrosslinkError, isCrosslinkError } from '../../lib/errors.js';
import { ROLE_PERMISSIONS, type Auth } from '../api/auth.js';
import type { ApiDeps } from '../api/deps.js';
import { toCrosslinkError } from '../api/error-handler.js';
import { eventsRoute, type UiEventHub } from './events.js';
import { CONTENT_SECURITY_POLICY, LOGIN_CSS, LOGIN_CSS_PATH, loginPage, SECURITY_HEADERS, shellPage } from './pages.js';
import { clearedSessionCookie, isTokenText, sessionCookie } from './session.js';
import { defaultAssetsDir, isAppBuilt, readAsset } from './static.js';

export { CONTENT_SECURITY_POLICY };

export interface UiOptions {
  /** Where the built browser app is (default: dist/ui of this installation). */
  assetsDir?: string;
  /** Live updates: GET /ui/events is served only with a hub. */
  events?: { hub: UiEventHub; pingIntervalMs?: number };
}

/** A login form is one token: a few hundred bytes are plenty; more is not a login. */
const LOGIN_BODY_LIMIT_BYTES = 8 * 1024;

export const MESSAGES = {
  empty: 'enter an API token',
  unknown: 'unknown or revoked API token',
} as const;

const HTML = 'text/html; charset=utf-8';

/**
 * The `token` field of a login POST, whatever the body: a form (what the page sends), JSON, or
 * something else (null). Never logged.
 */
export function tokenOfBody(contentType: string | undefined, body: unknown): string | null {
  if (typeof body !== 'string' || body === '') return null;
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  let value: unknown = null;
  if (type === 'application/x-www-form-urlencoded') value = new URLSearchParams(body).get('token');
  else if (type === 'application/json') {
    try {
      value = (JSON.parse(body) as { token?: unknown } | null)?.token;
    } catch {
      return null;
    }
  }
  if (typeof value !== 'string') return null;
  const token = value.trim(); // a pasted token often brings a newline
  return token === '' ? null : token;
}

export function uiRoutes(deps: Pick<ApiDeps, 'log'>, auth: Auth, opts: UiOptions = {}) {
  const assetsDir = opts.assetsDir ?? defaultAssetsDir();
  const log = deps.log.child({ component: 'ui' });

  /** The caller's principal, or null when there is no valid credential (the pages redirect to login). */
  async function principalOrNull(req: FastifyRequest) {
    try {
      return await auth.authenticate(req);
    } catch (e) {
      if (isCrosslinkError(e) && e.code === 'unauthenticated') return null;
      throw e;
    }
  }

  function loginAgain(reply: FastifyReply, status: number, error: string) {
    return reply
      .code(status)
      .header('cache-control', 'no-store')
      .header('www-authenticate', 'Bearer realm="crosslink"')
      .type(HTML)
      .send(loginPage({ error }));
  }

  return async (app: FastifyInstance) => {
    app.addHook('onSend', async (_req, reply) => {
      void reply.headers(SECURITY_HEADERS);
    });
    const hidden = { schema: { hide: true } };

    app.get('/ui', hidden, (_req, reply) => reply.redirect('/ui/', 303));

    app.get('/ui/login', hidden, async (req, reply) => {
      if (await principalOrNull(req)) return reply.redirect('/ui/', 303);
      return reply.header('cache-control', 'no-store').type(HTML).send(loginPage());
    });

    app.get(LOGIN_CSS_PATH, hidden, (_req, reply) => reply.type('text/css; charset=utf-8').send(LOGIN_CSS));

    // The forms' POSTs get pages back, never JSON: their own body parsing (any type; the token is
    // picked out in tokenOfBody) and their own error handler.
    // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
    await app.register(async (scope) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: LOGIN_BODY_LIMIT_BYTES }, (_req, body, done) =>
        done(null, body),
      );
      scope.setErrorHandler((err: unknown, req, reply) => {
        const ce = toCrosslinkError(err, LOGIN_BODY_LIMIT_BYTES);
        if (ce.status >= 500) log.error({ err, method: req.method, url: req.url }, 'web view login failed');
        const message =
          ce.code === 'payload_too_large'
            ? 'that is larger than any API token; paste the token alone'
            : ce.status >= 500
              ? 'the controller could not check the token; the controller log has the details'
              : MESSAGES.empty;
        return reply
          .code(ce.code === 'unauthenticated' || ce.code === 'invalid_request' ? 401 : ce.status)
          .header('cache-control', 'no-store')
          .type(HTML)
          .send(loginPage({ error: message }));
      });
      scope.post('/ui/login', hidden, async (req, reply) => {
        const token = tokenOfBody(req.headers['content-type'], req.body);
        if (token === null) return loginAgain(reply, 401, MESSAGES.empty);
        let principal;
        try {
          if (!isTokenText(token)) throw new CrosslinkError('unauthenticated', MESSAGES.unknown);
          principal = await auth.principalOfToken(token, req.ip);
        } catch (e) {
          if (isCrosslinkError(e) && e.code === 'unauthenticated') {
            log.info({ address: req.ip }, 'web view login refused: unknown or revoked token');
            return loginAgain(reply, 401, MESSAGES.unknown);
          }
          throw e;
        }
        log.info({ tokenName: principal.actor.name, role: principal.actor.role, address: req.ip }, 'web view login');
        return reply.header('set-cookie', sessionCookie(token)).redirect('/ui/', 303);
      });
      // Here too for the any-type body parsing: a logout form posts an empty urlencoded body. No
      // authentication: logging out of a session that has already ended must still work.
      scope.post('/ui/logout', hidden, (_req, reply) =>
        reply.header('set-cookie', clearedSessionCookie()).redirect('/ui/login', 303),
      );
    });

    app.get('/ui/session', hidden, async (req, reply) => {
      const p = await auth.authenticate(req);
      return reply.header('cache-control', 'no-store').send({
        name: p.token.name,
        role: p.token.role,
        permissions: ROLE_PERMISSIONS[p.token.role],
      });
    });

    // The bundle holds no secrets; it is served without a session so the browser may cache it.
    app.get('/ui/assets/*', hidden, async (req, reply) => {
      const name = (req.params as { '*': string })['*'];
      const asset = await readAsset(assetsDir, name);
      if (!asset) throw new CrosslinkError('not_found', 'no such file in the web view');
      return reply.header('cache-control', 'no-cache').type(asset.contentType).send(asset.body);
    });

    if (opts.events)
      await app.register(
        eventsRoute({
          hub: opts.events.hub,
          authorize: auth.requires('agents.read'),
          ...(opts.events.pingIntervalMs !== undefined ? { pingIntervalMs: opts.events.pingIntervalMs } : {}),
        }),
      );

    // Every other page is the browser app's (it routes by path); without a session, the login.
    app.get('/ui/*', hidden, async (req, reply) => {
      if (!(await principalOrNull(req))) return reply.redirect('/ui/login', 303);
      return reply
        .header('cache-control', 'no-store')
        .type(HTML)
        .send(shellPage({ isBuilt: isAppBuilt(assetsDir) }));
    });
  };
}
