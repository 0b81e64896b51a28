// API tokens for people and automation, with a role. The token text is returned once; only its
// sha256 is kept. The last live admin token cannot be revoked (nobody could make another).
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@fastify/type-provider-typebox';
import { CrosslinkError } from '../../lib/errors.js';
import type { ApiTokenRecord } from '../store/store.js';
import { principalOf, type Auth } from './auth.js';
import type { ApiDeps } from './deps.js';
import { errorResponses, IdParam, Role } from './schemas.js';
import { newApiTokenText, newId, sha256Hex } from './secrets.js';

const TokenView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    role: Role,
    createdAtMs: Type.Integer(),
    createdBy: Type.String(),
    isRevoked: Type.Boolean(),
    revokedAtMs: Type.Union([Type.Integer(), Type.Null()]),
    lastUsedAtMs: Type.Union([Type.Integer(), Type.Null()]),
  },
  { additionalProperties: false },
);
/** One API token as GET /v1/tokens lists it. */
export type TokenView = Static<typeof TokenView>;

const view = (t: ApiTokenRecord) => ({
  id: t.id,
  name: t.name,
  role: t.role,
  createdAtMs: t.createdAtMs,
  createdBy: t.createdBy,
  isRevoked: t.revokedAtMs !== null,
  revokedAtMs: t.revokedAtMs,
  lastUsedAtMs: t.lastUsedAtMs,
});
const auditState = (t: ApiTokenRecord) => ({ id: t.id, name: t.name, role: t.role, revokedAtMs: t.revokedAtMs });

/** Makes a token record and its text. Used by the API and by the first start (admin.token). */
export function newApiToken(input: { name: string; role: ApiTokenRecord['role']; createdBy: string; atMs: number }): {
  record: ApiTokenRecord;
  text: string;
} {
  const text = newApiTokenText();
  return {
    text,
    record: {
      id: newId('tok'),
      name: input.name,
      role: input.role,
      secretHash: sha256Hex(text),
      createdAtMs: input.atMs,
      createdBy: input.createdBy,
      revokedAtMs: null,
      lastUsedAtMs: null,
    },
  };
}

export function apiTokenRoutes(deps: ApiDeps, auth: Auth): FastifyPluginAsyncTypebox {
  const { store, clock } = deps;
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
  return async (app) => {
    app.post(
      '/v1/tokens',
      {
        onRequest: auth.requires('apiTokens.write'),
        schema: {
          summary: 'Make an API token; the token text is shown only in this answer',
          tags: ['API tokens'],
          body: Type.Object(
            {
              name: Type.String({
                pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$',
                description: 'Who or what uses it, e.g. "alice" or "ci-deploy".',
              }),
              role: Role,
            },
            { additionalProperties: false },
          ),
          response: {
            201: Type.Object(
              { ...TokenView.properties, token: Type.String({ description: 'Bearer token. Shown once.' }) },
              { additionalProperties: false },
            ),
            ...errorResponses(400, 409, 413, 415),
          },
        },
      },
      async (req, reply) => {
        const { actor } = principalOf(req);
        const { record, text } = newApiToken({
          name: req.body.name,
          role: req.body.role,
          createdBy: actor.name,
          atMs: clock.nowMs(),
        });
        await store.createApiToken(record, {
          actor,
          action: 'api_token.create',
          target: `api_token/${record.id}`,
          before: null,
          after: auditState(record),
        });
        return reply.code(201).send({ ...view(record), token: text });
      },
    );

    app.get(
      '/v1/tokens',
      {
        onRequest: auth.requires('apiTokens.read'),
        schema: {
          summary: 'Every API token (never the secret)',
          tags: ['API tokens'],
          response: {
            200: Type.Object({ tokens: Type.Array(TokenView) }, { additionalProperties: false }),
            ...errorResponses(),
          },
        },
      },
      async () => ({ tokens: (await store.listApiTokens()).map(view) }),
    );

    app.post(
      '/v1/tokens/:id/revoke',
      {
        onRequest: auth.requires('apiTokens.write'),
        schema: {
          summary: 'Revoke an API token',
          tags: ['API tokens'],
          params: IdParam,
          response: { 200: TokenView, ...errorResponses(400, 404, 409) },
        },
      },
      async (req) => {
        const { actor } = principalOf(req);
        const t = await store.apiTokenById(req.params.id);
        if (!t) throw new CrosslinkError('not_found', `no API token with id "${req.params.id}"`);
        if (t.revokedAtMs !== null) throw new CrosslinkError('conflict', `API token ${t.id} is already revoked`);
        if (t.role === 'admin') {
          const liveAdmins = (await store.listApiTokens()).filter((x) => x.role === 'admin' && x.revokedAtMs === null);
          if (liveAdmins.length <= 1)
            throw new CrosslinkError(
              'conflict',
              'refusing to revoke the last admin token: make another admin token first',
            );
        }
        const atMs = clock.nowMs();
        const after = { ...t, revokedAtMs: atMs };
        const ok = await store.revokeApiToken(t.id, atMs, {
          actor,
          action: 'api_token.revoke',
          target: `api_token/${t.id}`,
          before: auditState(t),
          after: auditState(after),
        });
        if (!ok) throw new CrosslinkError('conflict', `API token ${t.id} was revoked meanwhile`);
        return view(after);
      },
    );
  };
}
