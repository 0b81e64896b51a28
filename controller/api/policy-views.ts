// Read-only views of the policy for people (the web view): GET /v1/policy/diff?from=A&to=B, what
// changes from version A to version B at the level the engineer wrote it — the lines `crosslink
// policy diff A B` prints, from the same function (policy/policy-diff.ts); and GET /v1/policy/rules,
// the current policy's rules as a table (tickets, ports, windows) without parsing YAML in a browser.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CrosslinkError } from '../../lib/errors.js';
import { diffPolicies } from '../policy/policy-diff.js';
import { formatPortSpec } from '../policy/ports.js';
import { parsePolicy } from '../policy/validate.js';
import type { Auth } from './auth.js';
import type { ApiDeps } from './deps.js';
import { policyParseOptions } from './policy.js';
import { errorResponses, IntText } from './schemas.js';

const RuleRow = Type.Object(
  {
    name: Type.String(),
    from: Type.Array(Type.String(), { description: 'Subnet or group names, as written' }),
    to: Type.Array(Type.String()),
    ports: Type.Array(Type.String(), { description: '"tcp/443", "udp/5000-5010", "icmp", "any"' }),
    ticket: Type.String({ description: '"" when none' }),
    description: Type.String(),
    notBefore: Type.Union([Type.String(), Type.Null()], { description: 'ISO 8601, or null' }),
    notAfter: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);

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

export function policyViewRoutes(deps: ApiDeps, auth: Auth): FastifyPluginAsyncTypebox {
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

    app.get(
      '/v1/policy/rules',
      {
        onRequest: auth.requires('policy.read'),
        schema: {
          summary: "The current policy's rules, in policy order",
          tags: ['policy'],
          response: {
            200: Type.Object(
              { version: Type.Union([Type.Integer(), Type.Null()]), rules: Type.Array(RuleRow) },
              { additionalProperties: false },
            ),
            ...errorResponses(),
          },
        },
      },
      () => {
        const cur = deps.distribution.currentPolicy();
        const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
        return {
          version: cur?.version ?? null,
          rules: (cur?.policy.rules ?? []).map((r) => ({
            name: r.name,
            from: r.from,
            to: r.to,
            ports: r.ports.map(formatPortSpec),
            ticket: r.ticket ?? '',
            description: r.description ?? '',
            notBefore: iso(r.notBeforeMs),
            notAfter: iso(r.notAfterMs),
          })),
        };
      },
    );
  };
}
