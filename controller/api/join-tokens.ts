// Join tokens: made by an operator for one agent name, single-use unless reusable, expiring,
// revocable. The token text (controller URL + CA pin + secret) is returned once; only the secret's
// sha256 is kept.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@fastify/type-provider-typebox';
import { CrosslinkError } from '../../lib/errors.js';
import { formatJoinToken } from '../../lib/join-token.js';
import type { JoinTokenRecord } from '../store/store.js';
import { principalOf, type Auth } from './auth.js';
import type { ApiDeps } from './deps.js';
import { errorResponses, IdParam, NAME_PATTERN, StringEnum } from './schemas.js';
import { newId, newSecret, sha256Hex } from './secrets.js';

const JoinTokenView = Type.Object(
  {
    id: Type.String(),
    name: Type.String({ description: 'The agent name this token enrolls.' }),
    isReusable: Type.Boolean(),
    state: StringEnum(['active', 'used', 'expired', 'revoked'] as const),
    expiresAtMs: Type.Integer(),
    createdAtMs: Type.Integer(),
    createdBy: Type.String(),
    usedAtMs: Type.Union([Type.Integer(), Type.Null()]),
    revokedAtMs: Type.Union([Type.Integer(), Type.Null()]),
  },
  { additionalProperties: false },
);
/** One join token as GET /v1/join-tokens lists it. */
export type JoinTokenView = Static<typeof JoinTokenView>;

export function joinTokenState(t: JoinTokenRecord, nowMs: number): 'active' | 'used' | 'expired' | 'revoked' {
  if (t.revokedAtMs !== null) return 'revoked';
  if (t.usedAtMs !== null && !t.isReusable) return 'used';
  if (t.expiresAtMs <= nowMs) return 'expired';
  return 'active';
}

function auditState(t: JoinTokenRecord) {
  return { id: t.id, name: t.name, isReusable: t.isReusable, expiresAtMs: t.expiresAtMs, revokedAtMs: t.revokedAtMs };
}

export function joinTokenRoutes(deps: ApiDeps, auth: Auth): FastifyPluginAsyncTypebox {
  const { store, clock } = deps;
  const view = (t: JoinTokenRecord) => ({
    id: t.id,
    name: t.name,
    isReusable: t.isReusable,
    state: joinTokenState(t, clock.nowMs()),
    expiresAtMs: t.expiresAtMs,
    createdAtMs: t.createdAtMs,
    createdBy: t.createdBy,
    usedAtMs: t.usedAtMs,
    revokedAtMs: t.revokedAtMs,
  });

  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
  return async (app) => {
    app.post(
      '/v1/join-tokens',
      {
        onRequest: auth.requires('joinTokens.write'),
        schema: {
          summary: 'Make a join token for one agent; the token text is shown only in this answer',
          tags: ['join tokens'],
          body: Type.Object(
            {
              name: Type.String({
                pattern: NAME_PATTERN,
                maxLength: 63,
                description: 'Agent name: lowercase [a-z0-9-], 1-63 chars.',
              }),
              ttlSeconds: Type.Optional(
                Type.Integer({ minimum: 60, maximum: 30 * 86_400, description: 'Lifetime; default 3600.' }),
              ),
              isReusable: Type.Optional(
                Type.Boolean({ description: 'Allow more than one enrolment (default false).' }),
              ),
            },
            { additionalProperties: false },
          ),
          response: {
            201: Type.Object(
              { ...JoinTokenView.properties, token: Type.String({ description: 'The join token text. Shown once.' }) },
              { additionalProperties: false },
            ),
            ...errorResponses(400, 413, 415),
          },
        },
      },
      async (req, reply) => {
        const { actor } = principalOf(req);
        const now = clock.nowMs();
        const secret = newSecret();
        const rec: JoinTokenRecord = {
          id: newId('jt'),
          name: req.body.name,
          secretHash: sha256Hex(secret),
          isReusable: req.body.isReusable ?? false,
          expiresAtMs: now + (req.body.ttlSeconds ?? 3600) * 1000,
          createdAtMs: now,
          createdBy: actor.name,
          usedAtMs: null,
          revokedAtMs: null,
        };
        await store.createJoinToken(rec, {
          actor,
          action: 'join_token.create',
          target: `join_token/${rec.id}`,
          before: null,
          after: auditState(rec),
        });
        const token = formatJoinToken({
          controllerUrls: deps.controllerUrls,
          caFingerprint: deps.caFingerprint,
          secret,
          agentName: rec.name,
        });
        return reply.code(201).send({ ...view(rec), token });
      },
    );

    app.get(
      '/v1/join-tokens',
      {
        onRequest: auth.requires('joinTokens.read'),
        schema: {
          summary: 'Every join token (never the secret)',
          tags: ['join tokens'],
          response: {
            200: Type.Object({ joinTokens: Type.Array(JoinTokenView) }, { additionalProperties: false }),
            ...errorResponses(),
          },
        },
      },
      async () => ({ joinTokens: (await store.listJoinTokens()).map(view) }),
    );

    app.post(
      '/v1/join-tokens/:id/revoke',
      {
        onRequest: auth.requires('joinTokens.write'),
        schema: {
          summary: 'Revoke a join token',
          tags: ['join tokens'],
          params: IdParam,
          response: { 200: JoinTokenView, ...errorResponses(400, 404, 409) },
        },
      },
      async (req) => {
        const { actor } = principalOf(req);
        const t = await store.joinTokenById(req.params.id);
        if (!t) throw new CrosslinkError('not_found', `no join token with id "${req.params.id}"`);
        if (t.revokedAtMs !== null) throw new CrosslinkError('conflict', `join token ${t.id} is already revoked`);
        const atMs = clock.nowMs();
        const after = { ...t, revokedAtMs: atMs };
        const ok = await store.revokeJoinToken(t.id, atMs, {
          actor,
          action: 'join_token.revoke',
          target: `join_token/${t.id}`,
          before: auditState(t),
          after: auditState(after),
        });
        if (!ok) throw new CrosslinkError('conflict', `join token ${t.id} was revoked meanwhile`);
        return view(after);
      },
    );
  };
}
