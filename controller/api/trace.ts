// GET /v1/trace: one flow through the live overlay (controller/policy/trace.ts): the rule that allows
// it or the fact that none does, the subnets and zones of both ends, the boxes serving them now,
// and how the first box's config reaches the second (direct, or through which relays).
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@fastify/type-provider-typebox';
import { randomInt } from 'node:crypto';
import { CrosslinkError } from '../../lib/errors.js';
import { MAX_LIVE_TRACES } from '../distribute/live-traces.js';
import { traceFlow, type TraceDeployment } from '../policy/trace.js';
import { parseAddress } from '../policy/prefixes.js';
import type { EvalProtocol } from '../policy/evaluate.js';
import type { Auth } from './auth.js';
import type { ApiDeps } from './deps.js';
import { errorResponses, StringEnum } from './schemas.js';
import { planLiveTrace } from '../trace/live-plan.js';

/** The live test's window on each box: long enough for a TCP SYN's first retransmission (1 s). */
const LIVE_WINDOW_MS = 2000;

const LiveBoxSchema = Type.Object(
  {
    agent: Type.String(),
    role: StringEnum(['source', 'relay', 'destination'] as const),
    verdict: Type.String({
      description:
        'sent (source), admitted, dropped, forwarded (relay), not-seen, error (the box could not watch), no-answer',
    }),
    rule: Type.Union([Type.String(), Type.Null()], { description: 'admitted: the rule whose ct mark the flow has' }),
    direction: Type.Union([Type.String(), Type.Null()], { description: 'the Crosslink chain that judged it' }),
    packets: Type.Integer({
      description: 'test packets counted in their own direction (relay: datagrams from the source box)',
    }),
    bytes: Type.Integer(),
    replyPackets: Type.Integer({ description: 'replies counted (relay: datagrams back to the source box)' }),
    replyBytes: Type.Integer(),
    detail: Type.String(),
  },
  { additionalProperties: false },
);

const LiveSchema = Type.Object(
  {
    ran: Type.Boolean({ description: 'false: no test was sent (reason says why)' }),
    reason: Type.Union([Type.String(), Type.Null()]),
    windowMs: Type.Integer(),
    boxes: Type.Array(LiveBoxSchema, { description: 'In path order: source, relay, destination' }),
  },
  { additionalProperties: false },
);

const End = Type.Object(
  {
    address: Type.String(),
    subnet: Type.Union([Type.String(), Type.Null()], {
      description: 'The most specific subnet holding the address; null: none',
    }),
    zone: Type.Union([Type.String(), Type.Null()]),
    servedBy: Type.Union([Type.String(), Type.Null()], { description: 'The box serving the subnet now' }),
    unserved: Type.Union([Type.String(), Type.Null()], { description: 'Why nobody serves it' }),
    unconfirmed: Type.Union([Type.String(), Type.Null()], {
      description:
        "Served on its boxes' own choice (servedBy is the first of them): why the controller judges none healthy",
    }),
  },
  { additionalProperties: false },
);

const TraceResultSchema = Type.Object(
  {
    policyVersion: Type.Integer(),
    from: End,
    to: End,
    proto: StringEnum(['tcp', 'udp', 'icmp', 'any'] as const),
    port: Type.Union([Type.Integer(), Type.Null()]),
    decision: StringEnum(['allow', 'deny'] as const),
    rule: Type.Union([Type.String(), Type.Null()]),
    reason: Type.String({ description: "The policy's reason" }),
    path: Type.Union([
      Type.Object(
        {
          kind: StringEnum(['same-box', 'direct', 'relay'] as const),
          from: Type.String(),
          to: Type.String(),
          endpoint: Type.String({ description: 'Where the first box sends the tunnel\'s packets ("" for same-box)' }),
          relay: Type.Union([Type.String(), Type.Null()], { description: 'kind relay: the relay in use' }),
          standbyRelays: Type.Array(Type.String(), {
            description: 'kind relay: the other relays the pair may move to',
          }),
        },
        { additionalProperties: false },
      ),
      Type.Null(),
    ]),
    outcome: StringEnum(['passes', 'denied', 'unserved', 'no-path'] as const, {
      description: 'passes: allowed and deployed end to end; the others say why not',
    }),
    summary: Type.String(),
    live: Type.Optional(LiveSchema),
  },
  { additionalProperties: false },
);
/** GET /v1/trace. */
export type TraceResult = Static<typeof TraceResultSchema>;

const PROTOS = ['tcp', 'udp', 'icmp', 'any'] as const;

export function traceRoutes(deps: ApiDeps, auth: Auth): FastifyPluginAsyncTypebox {
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
  return async (app) => {
    app.get(
      '/v1/trace',
      {
        onRequest: auth.requires('agents.read'),
        schema: {
          summary: 'Would this flow pass now, and why (or why not): rule, serving boxes, tunnel path',
          tags: ['policy'],
          querystring: Type.Object({
            from: Type.String({ description: 'Source IP address' }),
            to: Type.String({ description: 'Destination IP address' }),
            proto: Type.Optional(Type.String({ description: 'tcp (default), udp, icmp or any' })),
            port: Type.Optional(Type.String({ description: 'Destination port, 1-65535; required for tcp and udp' })),
            live: Type.Optional(
              Type.String({
                description:
                  'true: also send a test flow and report what each box on the path did with it (needs trace.live: admin or operator)',
              }),
            ),
          }),
          response: { 200: TraceResultSchema, ...errorResponses(400, 403, 409) },
        },
      },
      async (req) => {
        const q = req.query;
        if (q.live !== undefined && q.live !== 'true' && q.live !== 'false')
          throw new CrosslinkError('invalid_request', 'query.live must be true or false', [
            { path: 'query.live', message: `"${q.live}" is not true or false` },
          ]);
        const isLive = q.live === 'true';
        if (isLive) auth.check(req, 'trace.live');
        const proto = (q.proto ?? 'tcp') as EvalProtocol;
        if (!PROTOS.includes(proto)) {
          throw new CrosslinkError('invalid_request', `query.proto must be one of ${PROTOS.join(', ')}`, [
            { path: 'query.proto', message: `"${q.proto}" is not a protocol` },
          ]);
        }
        let port: number | undefined;
        if (proto === 'tcp' || proto === 'udp') {
          if (q.port === undefined)
            throw new CrosslinkError('invalid_request', `query.port is required with proto ${proto}`, [
              { path: 'query.port', message: 'missing' },
            ]);
          port = Number(q.port);
          if (!/^\d{1,5}$/.test(q.port) || port < 1 || port > 65535) {
            throw new CrosslinkError('invalid_request', 'query.port must be a port number from 1 to 65535', [
              { path: 'query.port', message: `"${q.port}" is not a port` },
            ]);
          }
        } else if (q.port !== undefined) {
          throw new CrosslinkError('invalid_request', `query.port does not apply to proto ${proto}; leave it out`, [
            { path: 'query.port', message: 'not for this protocol' },
          ]);
        }
        const current = deps.distribution.currentPolicy();
        if (!current)
          throw new CrosslinkError('conflict', 'there is no policy yet: apply one first (crosslink policy apply)');
        const unserved = new Map(deps.distribution.unservedSubnets().map((u) => [u.subnet, u.reason]));
        const unconfirmed = new Map(deps.distribution.unconfirmedSubnets().map((u) => [u.subnet, u.reason]));
        const deployment: TraceDeployment = {
          servedBy: (s) => deps.distribution.servingAgent(s),
          unservedReason: (s) => unserved.get(s) ?? null,
          unconfirmedReason: (s) => unconfirmed.get(s) ?? null,
          peer: (a, b) => {
            const p = deps.distribution.currentConfig(a)?.peers.find((x) => x.name === b);
            return p
              ? { endpoint: p.endpoint, relays: p.paths.map((x) => ({ relay: x.relay, endpoint: x.endpoint })) }
              : null;
          },
          pathProblem: (a, b) =>
            deps.distribution
              .indirectPaths()
              .find((x) => x.kind === 'none' && ((x.a === a && x.b === b) || (x.a === b && x.b === a)))?.reason ?? null,
        };
        for (const [field, value] of [
          ['from', q.from],
          ['to', q.to],
        ] as const) {
          if (!parseAddress(value))
            throw new CrosslinkError('invalid_request', `query.${field} must be an IP address`, [
              { path: `query.${field}`, message: `"${value}" is not an IP address` },
            ]);
        }
        let traced: TraceResult;
        try {
          traced = {
            policyVersion: current.version,
            ...traceFlow(current.policy, q.from, q.to, proto, port, deployment),
          };
        } catch (e) {
          // A flow that mixes IPv4 and IPv6: the caller's error, about both fields.
          if (e instanceof CrosslinkError && e.code === 'invalid_request' && e.details.length === 0) {
            throw new CrosslinkError('invalid_request', e.message, [{ path: 'query', message: e.message }]);
          }
          throw e;
        }
        if (!isLive) return traced;
        const plan = planLiveTrace(current.policy, traced, (a, b) => deployment.peer(a, b), 32768 + randomInt(28000));
        if ('notRun' in plan)
          return { ...traced, live: { ran: false, reason: plan.notRun, windowMs: LIVE_WINDOW_MS, boxes: [] } };
        if (deps.distribution.liveTracesInFlight() >= MAX_LIVE_TRACES)
          throw new CrosslinkError(
            'conflict',
            `${MAX_LIVE_TRACES} live traces are running; try again in a few seconds`,
          );
        deps.log.info(
          {
            from: q.from,
            to: q.to,
            proto,
            port,
            boxes: plan.requests.map((r) => r.agent),
            by: req.principal?.actor.name,
          },
          'live trace',
        );
        const boxes = await deps.distribution.runLiveTrace(plan.requests, LIVE_WINDOW_MS);
        return { ...traced, live: { ran: true, reason: null, windowMs: LIVE_WINDOW_MS, boxes } };
      },
    );
  };
}
