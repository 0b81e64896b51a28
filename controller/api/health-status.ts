// Fleet health over HTTP: the state of every agent, link and path probe, one agent in detail, and
// the history of state changes. Read-only; serves the monitor's latest snapshot (never evaluates on
// the request path, so a scrape storm cannot slow the controller). (/healthz and /readyz, the
// controller's own liveness, live in api/health.ts.)
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { onRequestAsyncHookHandler } from 'fastify';
import type { PolicyRuleWindow } from '../policy/rule-windows.js';
import { CrosslinkError } from '../../lib/errors.js';
import type { HealthHistoryQuery } from '../health/history.js';
import type { ServingState } from '../health/serving.js';
import type { EvaluatedBy } from '../health/shared.js';
import type { HealthEvent, HealthSnapshot, HealthSubjectKind } from '../health/types.js';
import type { UnconfirmedView, UnservedView } from '../distribute/port.js';
import { AgentDetailSchema, FleetHealthSchema, HistorySchema } from './health-schemas.js';
import { errorResponses } from './schemas.js';

/** What the routes need from the HealthMonitor (controller/health/monitor.ts). */
export interface HealthReader {
  snapshot(): HealthSnapshot | null;
  history(query: HealthHistoryQuery): Promise<HealthEvent[]>;
  servingDetail(): ReadonlyMap<string, ServingState>;
  /** Several controllers: which one made the evaluation served, and when (health/shared.ts). */
  evaluatedBy?(): EvaluatedBy | null;
}

export interface HealthStatusRoutesOptions {
  monitor: HealthReader;
  /** Runs before each route, e.g. `auth.requires('agents.read')`. Absent: open (tests). */
  authorize?: onRequestAsyncHookHandler;
  /** Subnets of the current policy no box serves now, and why (the distributor's last compile). */
  unserved?: () => UnservedView[];
  /** Subnets served on their boxes' own decision, none healthy in the controller's view (idem). */
  unconfirmed?: () => UnconfirmedView[];
  /** The current policy's rules with a window (controller/policy/rule-windows.ts). */
  ruleWindows?: () => PolicyRuleWindow[];
}

export interface ServingView extends ServingState {
  agent: string;
}

const KINDS: readonly HealthSubjectKind[] = ['overall', 'agent', 'link', 'probe', 'serving', 'subnet'];
const MAX_HISTORY_LIMIT = 10_000;

/** Milliseconds since the epoch, or an ISO 8601 time. */
function parseTime(value: string | undefined, path: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) {
    throw new CrosslinkError('invalid_request', `${path} must be milliseconds since the epoch or an ISO 8601 time`, [
      { path, message: `"${value}" is not a time` },
    ]);
  }
  return ms;
}

function servingList(monitor: HealthReader): ServingView[] {
  return [...monitor.servingDetail()]
    .map(([agent, s]) => ({ agent, ...s }))
    .sort((a, b) => (a.agent < b.agent ? -1 : 1));
}

/** `evaluatedBy`, when the reader knows it (several controllers). */
function by(monitor: HealthReader): { evaluatedBy?: EvaluatedBy } {
  const e = monitor.evaluatedBy?.();
  return e ? { evaluatedBy: e } : {};
}

function current(monitor: HealthReader): HealthSnapshot {
  const s = monitor.snapshot();
  if (s === null) throw new CrosslinkError('unavailable', 'health has not been evaluated yet; retry in a few seconds');
  return s;
}

export function healthStatusRoutes(opts: HealthStatusRoutesOptions): FastifyPluginAsyncTypebox {
  const { monitor } = opts;
  const onRequest = opts.authorize ? { onRequest: opts.authorize } : {};
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
  return async (app) => {
    app.get(
      '/v1/health',
      {
        ...onRequest,
        schema: {
          summary: 'Overall state and the state of every agent, link and path probe, with reasons',
          tags: ['health'],
          response: { 200: FleetHealthSchema, ...errorResponses(503) },
        },
      },
      () => ({
        ...current(monitor),
        serving: servingList(monitor),
        unserved: opts.unserved?.() ?? [],
        unconfirmed: opts.unconfirmed?.() ?? [],
        ruleWindows: opts.ruleWindows?.() ?? [],
        ...by(monitor),
      }),
    );

    app.get(
      '/v1/health/agents/:name',
      {
        ...onRequest,
        schema: {
          summary: "One agent's state, its links, its probes and its serving health",
          tags: ['health'],
          params: Type.Object({ name: Type.String() }),
          response: { 200: AgentDetailSchema, ...errorResponses(404, 503) },
        },
      },
      (req) => {
        const s = current(monitor);
        const { name } = req.params;
        const agent = s.agents.find((a) => a.name === name);
        if (agent === undefined)
          throw new CrosslinkError('not_found', `no agent named "${name}"`, [
            { path: 'params.name', message: 'unknown agent' },
          ]);
        const serving = monitor.servingDetail().get(name);
        return {
          atMs: s.atMs,
          agent,
          links: s.links.filter((l) => l.agents.includes(name)),
          probes: s.probes.filter((p) => p.agent === name),
          serving: serving === undefined ? null : { agent: name, ...serving },
          ...by(monitor),
        };
      },
    );

    app.get(
      '/v1/health/history',
      {
        ...onRequest,
        schema: {
          summary: 'State changes, oldest first (the newest `limit`)',
          tags: ['health'],
          querystring: Type.Object({
            since: Type.Optional(Type.String({ description: 'ms since the epoch or ISO 8601; events at or after' })),
            until: Type.Optional(Type.String({ description: 'ms since the epoch or ISO 8601; events before' })),
            subject: Type.Optional(
              Type.String({
                description: 'e.g. "link:a:b", "agent:x", "probe:x/rule/0", "serving:x", "subnet:x", "overall"',
              }),
            ),
            kind: Type.Optional(Type.String({ description: KINDS.join(', ') })),
            limit: Type.Optional(Type.String({ description: `1..${MAX_HISTORY_LIMIT}, default 1000` })),
          }),
          response: { 200: HistorySchema, ...errorResponses(400) },
        },
      },
      async (req) => {
        const q = req.query;
        const query: HealthHistoryQuery = {};
        const sinceMs = parseTime(q.since, 'query.since');
        const untilMs = parseTime(q.until, 'query.until');
        if (sinceMs !== undefined) query.sinceMs = sinceMs;
        if (untilMs !== undefined) query.untilMs = untilMs;
        if (q.subject) query.subject = q.subject;
        if (q.kind) {
          if (!KINDS.includes(q.kind as HealthSubjectKind)) {
            throw new CrosslinkError('invalid_request', `query.kind must be one of ${KINDS.join(', ')}`, [
              { path: 'query.kind', message: `"${q.kind}" is not a kind` },
            ]);
          }
          query.kind = q.kind as HealthSubjectKind;
        }
        if (q.limit !== undefined) {
          const limit = Number(q.limit);
          if (!/^\d+$/.test(q.limit) || limit < 1 || limit > MAX_HISTORY_LIMIT) {
            throw new CrosslinkError(
              'invalid_request',
              `query.limit must be an integer from 1 to ${MAX_HISTORY_LIMIT}`,
              [{ path: 'query.limit', message: `"${q.limit}" is out of range` }],
            );
          }
          query.limit = limit;
        }
        return { events: await monitor.history(query) };
      },
    );
  };
}
