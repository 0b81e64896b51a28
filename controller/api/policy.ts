// Policy: the current document with its version as ETag, optimistic-concurrency writes (If-Match),
// dry runs, history and rollback. A write validates, runs the policy's own tests, commits the new
// version with its audit entry in one transaction, then hands the policy to distribution.
//
// Request bodies for PUT /v1/policy and POST /v1/policy/dry-run:
//   Content-Type application/yaml or text/yaml: the document itself.
//   Content-Type application/json: either {"document": "<YAML or JSON text>", "comment": "why"}
//     (what the CLI sends) or the policy as a JSON object (stored exactly as sent).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@fastify/type-provider-typebox';
import { CrosslinkError } from '../../lib/errors.js';
import type { Policy } from '../policy/types.js';
import { describeErrorCount, parsePolicy } from '../policy/validate.js';
import { diffPolicies } from '../policy/policy-diff.js';
import { policyTestFailures } from '../policy/tests.js';
import type { PolicyVersion } from '../store/store.js';
import { principalOf, type Auth } from './auth.js';
import type { ApiDeps } from './deps.js';
import { errorResponses } from './schemas.js';
import { storedPolicyJson } from '../policy/stored.js';
import { VERSION } from '../../lib/version.js';

const YAML_TYPES = ['application/yaml', 'text/yaml', 'application/x-yaml'];

const PolicyDocument = Type.Object(
  {
    version: Type.Integer({ description: 'Policy version; also the ETag.' }),
    document: Type.String({ description: 'The document exactly as submitted.' }),
    createdAtMs: Type.Integer(),
    createdBy: Type.String(),
    comment: Type.String(),
  },
  { additionalProperties: false },
);
/** GET /v1/policy and GET /v1/policy/versions/{version}. */
export type PolicyDocument = Static<typeof PolicyDocument>;

const VersionInfo = Type.Object(
  {
    version: Type.Integer(),
    createdAtMs: Type.Integer(),
    createdBy: Type.String(),
    comment: Type.String(),
  },
  { additionalProperties: false },
);
export type VersionInfo = Static<typeof VersionInfo>;

const AgentDiffSchema = Type.Object(
  {
    agent: Type.String(),
    changes: Type.Array(Type.String()),
    isConnected: Type.Boolean({
      description: 'Its config stream is open: it gets the change at once (else when it reconnects).',
    }),
  },
  { additionalProperties: false },
);

const PutResult = Type.Object(
  {
    version: Type.Integer(),
    createdAtMs: Type.Integer(),
    createdBy: Type.String(),
    comment: Type.String(),
    isDistributed: Type.Boolean({
      description:
        'false if the commit succeeded but pushing to agents failed (see the log); agents get it on the next change or reconnect.',
    }),
    isUnchanged: Type.Boolean({
      description:
        'true: the document is the current version byte for byte; nothing was written (no new version, no audit entry) and `version` is the current one.',
    }),
  },
  { additionalProperties: false },
);
/** PUT /v1/policy and POST /v1/policy/rollback. */
export type PutResult = Static<typeof PutResult>;

export const PairPathSchema = Type.Object(
  {
    a: Type.String(),
    b: Type.String(),
    kind: Type.Union([Type.Literal('direct'), Type.Literal('relay'), Type.Literal('none')]),
    relays: Type.Array(Type.String(), { description: 'kind relay: the relays, first choice first' }),
    underlays: Type.Array(Type.String(), { description: "direct: the shared underlay; relay: a's and b's underlays" }),
    reason: Type.String({ description: 'kind none: why the pair has no path' }),
  },
  { additionalProperties: false, description: 'How two boxes with a permitted flow reach each other' },
);

const DryRunResult = Type.Object(
  {
    baseVersion: Type.Integer({
      minimum: 0,
      description:
        'The current policy version the diffs are against (0: none yet). Send it as If-Match to apply exactly the change shown.',
    }),
    testsRun: Type.Integer(),
    policy: Type.Array(Type.String(), {
      description:
        'Policy-level changes against the current version: "+ rule NAME: ...", "- subnet NAME", "~ rule NAME: ports A -> B". Shown whatever the boxes are doing.',
    }),
    notEnrolled: Type.Array(Type.String(), {
      description: 'Agents the document names that have not enrolled: they get their config when they do.',
    }),
    unserved: Type.Array(
      Type.Object(
        {
          subnet: Type.String(),
          reason: Type.String(),
          isAwaitingEnrolment: Type.Boolean({ description: 'only because no box of its via has enrolled yet' }),
        },
        { additionalProperties: false },
      ),
      { description: 'Subnets no enrolled, healthy box would serve, and why.' },
    ),
    agents: Type.Array(AgentDiffSchema, {
      description: 'Per-agent changes; agents whose config would not change are left out.',
    }),
    paths: Type.Array(PairPathSchema, {
      description: 'Pairs of enrolled boxes that would not peer directly: relayed (through which box) or with no path.',
    }),
  },
  { additionalProperties: false },
);
/** POST /v1/policy/dry-run. */
export type DryRunResult = Static<typeof DryRunResult>;

const IfMatchHeaders = Type.Object({
  'if-match': Type.Optional(
    Type.String({ description: 'The version you read, as returned in ETag ("0" when there is no policy yet).' }),
  ),
});

// The policy bodies are not described by a body schema (they are text of two media types, parsed by
// readPolicyBody()); the route descriptions say what they accept.
const BODY_DOC =
  'Body: the policy as application/yaml or text/yaml, or application/json {"document": "<YAML or JSON text>", "comment": "why"} or the policy object itself.';

export const etagOf = (version: number): string => `"${version}"`;

/** Parses If-Match: a quoted (or bare) version number. Weak tags never match a write. */
function parseIfMatch(header: string | undefined): number {
  if (header === undefined || header.trim() === '') {
    throw new CrosslinkError(
      'precondition_required',
      'If-Match header required: send the ETag of the policy version you read (GET /v1/policy), "0" if there is none',
    );
  }
  const m = /^\s*"?(\d{1,15})"?\s*$/.exec(header);
  if (!m)
    throw new CrosslinkError('invalid_request', 'If-Match must be a policy version ETag such as "12"', [
      { path: 'headers.if-match', message: 'not a version ETag' },
    ]);
  return Number(m[1]);
}

interface SubmittedPolicy {
  document: string;
  comment: string;
}

function readPolicyBody(req: FastifyRequest): SubmittedPolicy {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const raw = req.body;
  if (typeof raw !== 'string' || raw.trim() === '')
    throw new CrosslinkError('invalid_request', 'request body is empty: send the policy document', [
      { path: 'body', message: 'empty' },
    ]);
  if (YAML_TYPES.includes(type)) return { document: raw, comment: '' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    throw new CrosslinkError('invalid_request', `body is not valid JSON: ${(e as Error).message}`, [
      { path: 'body', message: 'malformed JSON' },
    ]);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CrosslinkError(
      'invalid_request',
      'JSON body must be an object: {"document": "..."} or the policy itself',
      [{ path: 'body', message: 'not an object' }],
    );
  }
  const obj = parsed as Record<string, unknown>;
  if ('document' in obj) {
    const details = [];
    if (typeof obj.document !== 'string')
      details.push({ path: 'body.document', message: 'must be a string holding the policy text' });
    if (obj.comment !== undefined && (typeof obj.comment !== 'string' || obj.comment.length > 1000))
      details.push({ path: 'body.comment', message: 'must be a string of at most 1000 characters' });
    for (const k of Object.keys(obj))
      if (k !== 'document' && k !== 'comment') details.push({ path: `body.${k}`, message: `unknown field "${k}"` });
    if (details.length)
      throw new CrosslinkError(
        'invalid_request',
        `invalid request: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`,
        details,
      );
    return { document: obj.document as string, comment: (obj.comment as string | undefined) ?? '' };
  }
  return { document: raw, comment: '' };
}

/** What parsePolicy needs to know of the inventory: the enrolled boxes, and which do not relay. */
export async function policyParseOptions(
  store: ApiDeps['store'],
): Promise<{ knownAgents: string[]; nonConsentingRelays: string[] }> {
  const enrolled = (await store.listAgents()).filter((a) => a.revokedAtMs === null);
  // A relay needs the box's consent too: an enrolled box without --relay carries nothing.
  return {
    knownAgents: enrolled.map((a) => a.name),
    nonConsentingRelays: enrolled.filter((a) => !a.isRelay).map((a) => a.name),
  };
}

export function policyRoutes(deps: ApiDeps, auth: Auth): FastifyPluginAsyncTypebox {
  const { store, distribution, clock, log } = deps;
  const parseOptions = () => policyParseOptions(store);

  /** Validates and tests a document; throws policy_invalid / policy_tests_failed with every error. */

  async function check(
    document: string,
    opts?: { knownAgents: string[]; nonConsentingRelays: string[] },
  ): Promise<Policy> {
    const r = parsePolicy(document, opts ?? (await parseOptions()));
    if (r.errors)
      throw new CrosslinkError('policy_invalid', `policy is invalid: ${describeErrorCount(r.errors)}`, r.errors);
    const failures = policyTestFailures(r.policy);
    if (failures.length)
      throw new CrosslinkError(
        'policy_tests_failed',
        `${failures.length} policy test${failures.length === 1 ? '' : 's'} failed`,
        failures,
      );
    return r.policy;
  }

  /** Stores `document` as the next version (audited), or, when it is the current document byte for
   *  byte, writes nothing: no new version, no audit entry, nothing to push (`policy` null). */
  async function commit(
    req: FastifyRequest,
    document: string,
    expectedVersion: number,
    comment: string,
    action: string,
    extra: Record<string, unknown> = {},
  ): Promise<{ saved: PolicyVersion; policy: Policy | null }> {
    const current = await store.currentPolicy();
    const currentVersion = current?.version ?? 0;
    if (currentVersion !== expectedVersion) {
      throw new CrosslinkError(
        'precondition_failed',
        `policy is at version ${currentVersion}, not ${expectedVersion}: someone changed it first; read it again`,
        [{ path: 'headers.if-match', message: `current version is ${currentVersion}` }],
      );
    }
    if (current !== null && current.document === document) return { saved: current, policy: null };
    const startedMs = performance.now();
    const policy = await check(document);
    const checkedMs = performance.now();
    const { actor } = principalOf(req);
    const saved = await store.appendPolicy(
      {
        document,
        expectedVersion,
        createdBy: actor.name,
        comment,
        atMs: clock.nowMs(),
        validated: storedPolicyJson(policy, VERSION),
      },
      {
        actor,
        action,
        target: 'policy',
        before: current ? { version: current.version, document: current.document } : null,
        after: { version: expectedVersion + 1, document, comment, ...extra },
      },
    );
    if (saved === 'conflict') {
      throw new CrosslinkError(
        'precondition_failed',
        `policy changed while this request was being checked; read it again`,
        [{ path: 'headers.if-match', message: 'stale' }],
      );
    }
    // Where a large policy's change spends its time before the distributor's own log line.
    const ms = (from: number, to = performance.now()) => Math.round(to - from);
    log.info(
      {
        version: saved.version,
        action,
        bytes: document.length,
        checkMs: ms(startedMs, checkedMs),
        storeMs: ms(checkedMs),
      },
      'policy stored',
    );
    return { saved, policy };
  }

  async function distribute(policy: Policy | null, version: number): Promise<boolean> {
    if (policy === null) return true;
    try {
      await distribution.setPolicy(policy, version);
      return true;
    } catch (e) {
      log.error({ err: e, version }, 'policy committed but distribution failed');
      return false;
    }
  }

  return async (app) => {
    // Policy documents arrive as text whatever their type: JSON is parsed in readPolicyBody() so the
    // stored document is byte-for-byte what was sent. This overrides the parsers only in this scope.
    // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
    const textBodies = async (scope: FastifyInstance) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser(['application/json', ...YAML_TYPES], { parseAs: 'string' }, (_req, body, done) =>
        done(null, body),
      );
    };

    app.get(
      '/v1/policy',
      {
        onRequest: auth.requires('policy.read'),
        schema: {
          summary: 'The current policy',
          tags: ['policy'],
          response: { 200: PolicyDocument, ...errorResponses(404) },
        },
      },
      async (_req, reply) => {
        const cur = await store.currentPolicy();
        if (!cur) {
          void reply.header('etag', etagOf(0));
          throw new CrosslinkError('not_found', 'no policy has been applied yet; PUT one with If-Match: "0"');
        }
        void reply.header('etag', etagOf(cur.version));
        return cur;
      },
    );

    app.get(
      '/v1/policy/versions',
      {
        onRequest: auth.requires('policy.read'),
        schema: {
          summary: 'Every policy version, oldest first',
          tags: ['policy'],
          response: {
            200: Type.Object({ versions: Type.Array(VersionInfo) }, { additionalProperties: false }),
            ...errorResponses(),
          },
        },
      },
      async () => ({ versions: await store.listPolicyVersions() }),
    );

    app.get(
      '/v1/policy/versions/:version',
      {
        onRequest: auth.requires('policy.read'),
        schema: {
          summary: 'One policy version with its document',
          tags: ['policy'],
          params: Type.Object({ version: Type.String({ pattern: '^[0-9]{1,15}$' }) }, { additionalProperties: false }),
          response: { 200: PolicyDocument, ...errorResponses(400, 404) },
        },
      },
      async (req) => {
        const v = await store.policyVersion(Number(req.params.version));
        if (!v) throw new CrosslinkError('not_found', `policy version ${req.params.version} does not exist`);
        return v;
      },
    );

    await app.register(async (scope) => {
      await textBodies(scope);

      scope.put(
        '/v1/policy',
        {
          onRequest: auth.requires('policy.write'),
          schema: {
            summary: 'Replace the policy (validated and tested first)',
            tags: ['policy'],
            description: `${BODY_DOC} Needs If-Match with the version you read. 400 policy_invalid / policy_tests_failed list every error; 412 if someone changed it first.`,
            headers: IfMatchHeaders,
            response: { 200: PutResult, ...errorResponses(400, 412, 413, 415, 428) },
          },
        },
        async (req: FastifyRequest, reply) => {
          const expected = parseIfMatch(req.headers['if-match']);
          const body = readPolicyBody(req);
          const { saved, policy } = await commit(req, body.document, expected, body.comment, 'policy.put');
          const isDistributed = await distribute(policy, saved.version);
          void reply.header('etag', etagOf(saved.version));
          return {
            version: saved.version,
            createdAtMs: saved.createdAtMs,
            createdBy: saved.createdBy,
            comment: saved.comment,
            isDistributed,
            isUnchanged: policy === null,
          };
        },
      );

      scope.post(
        '/v1/policy/dry-run',
        {
          onRequest: auth.requires('policy.dryRun'),
          schema: {
            summary: 'Validate, test and diff a candidate policy per agent; changes nothing',
            tags: ['policy'],
            description: BODY_DOC,
            response: { 200: DryRunResult, ...errorResponses(400, 413, 415) },
          },
        },
        async (req: FastifyRequest) => {
          const body = readPolicyBody(req);
          // One read of the enrolled agents serves both the candidate and the current document.
          const opts = await parseOptions();
          const policy = await check(body.document, opts);
          const dry = await distribution.dryRun(policy);
          const current = await store.currentPolicy();
          // The current document as it parses now (null: none yet, or it no longer validates).
          const before = current ? (parsePolicy(current.document, opts).policy ?? null) : null;
          const enrolled = new Set(opts.knownAgents);
          return {
            baseVersion: current?.version ?? 0,
            testsRun: policy.tests.length,
            policy: diffPolicies(before, policy),
            agents: dry.agents
              .filter((d) => d.changes.length > 0)
              .sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0)),
            notEnrolled: policy.agents
              .map((a) => a.name as string)
              .filter((n) => !enrolled.has(n))
              .sort(),
            unserved: dry.unserved,
            paths: dry.paths,
          };
        },
      );
    });

    app.post(
      '/v1/policy/rollback',
      {
        onRequest: auth.requires('policy.write'),
        schema: {
          summary: 'Make an earlier version current again (recorded as a new version)',
          tags: ['policy'],
          headers: IfMatchHeaders,
          body: Type.Object(
            {
              version: Type.Integer({ minimum: 1 }),
              comment: Type.Optional(Type.String({ maxLength: 1000 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: PutResult, ...errorResponses(400, 404, 412) },
        },
      },
      async (req, reply) => {
        const target = await store.policyVersion(req.body.version);
        if (!target)
          throw new CrosslinkError('not_found', `policy version ${req.body.version} does not exist`, [
            { path: 'body.version', message: 'no such version' },
          ]);
        // If-Match is optional here: without it the rollback applies on top of whatever is current.
        const expected =
          req.headers['if-match'] !== undefined
            ? parseIfMatch(req.headers['if-match'])
            : ((await store.currentPolicy())?.version ?? 0);
        const comment = req.body.comment ?? `rollback to version ${target.version}`;
        const { saved, policy } = await commit(req, target.document, expected, comment, 'policy.rollback', {
          rolledBackTo: target.version,
        });
        const isDistributed = await distribute(policy, saved.version);
        void reply.header('etag', etagOf(saved.version));
        return {
          version: saved.version,
          createdAtMs: saved.createdAtMs,
          createdBy: saved.createdBy,
          comment: saved.comment,
          isDistributed,
          isUnchanged: policy === null,
        };
      },
    );
  };
}
