// The audit log, oldest first, paged by id; and a check of the whole hash chain.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@fastify/type-provider-typebox';
import { CrosslinkError } from '../../lib/errors.js';
import { verifyAuditChain } from '../store/audit-chain.js';
import type { AuditEntry, Store } from '../store/store.js';
import type { Auth } from './auth.js';
import type { ApiDeps } from './deps.js';
import { errorResponses, IntText } from './schemas.js';

const AuditEntryView = Type.Object(
  {
    id: Type.Integer(),
    atMs: Type.Integer(),
    actor: Type.Object(
      { name: Type.String(), role: Type.String(), address: Type.String() },
      { additionalProperties: false },
    ),
    action: Type.String(),
    target: Type.String(),
    before: Type.Unknown(),
    after: Type.Unknown(),
    prevHash: Type.String(),
    hash: Type.String(),
  },
  { additionalProperties: false },
);
export type AuditEntryView = Static<typeof AuditEntryView>;

const VerifyResult = Type.Object(
  {
    isValid: Type.Boolean(),
    count: Type.Integer(),
    lastHash: Type.Optional(Type.String()),
    brokenAtId: Type.Optional(Type.Integer({ description: 'The first entry that does not check out.' })),
    reason: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
/** GET /v1/audit/verify. */
export type VerifyResult = Static<typeof VerifyResult>;

/** Reads the whole log in pages. */
export async function readWholeAudit(store: Store): Promise<AuditEntry[]> {
  const all: AuditEntry[] = [];
  for (let after = 0; ;) {
    const page = await store.listAudit({ afterId: after, limit: 5000 });
    all.push(...page);
    if (page.length < 5000) return all;
    after = page[page.length - 1]!.id;
  }
}

export function auditRoutes(deps: ApiDeps, auth: Auth): FastifyPluginAsyncTypebox {
  const { store } = deps;
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
  return async (app) => {
    app.get(
      '/v1/audit',
      {
        onRequest: auth.requires('audit.read'),
        schema: {
          summary: 'Audit entries, oldest first',
          tags: ['audit'],
          querystring: Type.Object(
            {
              afterId: Type.Optional(IntText),
              limit: Type.Optional(IntText),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object(
              {
                entries: Type.Array(AuditEntryView),
                nextAfterId: Type.Union([Type.Integer(), Type.Null()], {
                  description: 'Pass as afterId for the next page; null at the end.',
                }),
              },
              { additionalProperties: false },
            ),
            ...errorResponses(400),
          },
        },
      },
      async (req) => {
        // Out of range is refused, not clamped: ?limit=0 silently answered 1 entry.
        const limit = Number(req.query.limit ?? 100);
        if (limit < 1 || limit > 1000) {
          throw new CrosslinkError(
            'invalid_request',
            `query.limit must be from 1 to 1000 (entries per page); got ${req.query.limit}`,
            [{ path: 'querystring.limit', message: 'must be from 1 to 1000' }],
          );
        }
        const entries = await store.listAudit({ afterId: Number(req.query.afterId ?? 0), limit });
        return { entries, nextAfterId: entries.length === limit ? entries[entries.length - 1]!.id : null };
      },
    );

    app.get(
      '/v1/audit/verify',
      {
        onRequest: auth.requires('audit.read'),
        schema: {
          summary: 'Check the whole hash chain; says where it breaks',
          tags: ['audit'],
          response: { 200: VerifyResult, ...errorResponses() },
        },
      },
      async () => verifyAuditChain(await readWholeAudit(store), await store.auditHead()),
    );
  };
}
