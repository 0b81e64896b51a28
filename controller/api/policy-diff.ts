// GET /v1/policy/diff?from=A&to=B: what changes from policy version A to version B at the level the
// engineer wrote it — the lines `crosslink policy diff A B` prints, from the same function
// (policy/policy-diff.ts). The web view shows them beside the two documents.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CrosslinkError } from '../../lib/errors.js';
import { diffPolicies } from '../policy/policy-diff.js';
import { parsePolicy } from '../policy/validate.js';
import type { Auth } from './auth.js';
import type { ApiDeps } from './deps.js';
import { policyParseOptions } from './policy.js';
import { errorResponses, IntText } from './schemas.js';

const DiffResult = Type.Object(
  {
    from: Type.Integer(),
    to: Type.Integer(),
    changes: Type.Array(Type.String(), {
      description: 'One line per change ("+ rule x", "~ subnet y: cidrs a -> b"); empty: the same policy',
    }),
  },
  { additionalProperties: false },
);

export function policyDiffRoutes(deps: ApiDeps, auth: Auth): FastifyPluginAsyncTypebox {
  const { store } = deps;
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
  return async (app) => {
    app.get(
      '/v1/policy/diff',
      {
        onRequest: auth.requires('policy.read'),
        schema: {
          summary: 'What changes from one policy version to another (as `crosslink policy diff A B`)',
          tags: ['policy'],
          querystring: Type.Object({ from: IntText, to: IntText }, { additionalProperties: false }),
          response: { 200: DiffResult, ...errorResponses(400, 404) },
        },
      },
      async (req) => {
        const versions = [Number(req.query.from), Number(req.query.to)];
        const opts = await policyParseOptions(store);
        const [a, b] = await Promise.all(
          versions.map(async (v, i) => {
            const field = i === 0 ? 'from' : 'to';
            const doc = v > 0 ? await store.policyVersion(v) : null;
            if (!doc)
              throw new CrosslinkError('not_found', `policy version ${v} does not exist`, [
                { path: `querystring.${field}`, message: 'no such version' },
              ]);
            const r = parsePolicy(doc.document, opts);
            if (r.errors)
              throw new CrosslinkError(
                'policy_invalid',
                `policy version ${v} does not validate against today's inventory`,
                r.errors.map((e) => ({ ...e, path: `version ${v}: ${e.path ?? ''}` })),
              );
            return r.policy;
          }),
        );
        return { from: versions[0]!, to: versions[1]!, changes: diffPolicies(a!, b!) };
      },
    );
  };
}
