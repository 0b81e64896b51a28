// GET /v1/rules/stats: what each policy rule let through, summed over the boxes' last reports
// (controller/stats/rule-stats.ts), optionally for one agent.
import { fromJsonString } from '@bufbuild/protobuf';
import { Type, type FastifyPluginAsyncTypebox, type Static } from '@fastify/type-provider-typebox';
import { CrosslinkError } from '../../lib/errors.js';
import { ReportRequestSchema } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { ruleStats, zoneDropStats, type AgentCounters } from '../stats/rule-stats.js';
import type { AgentRecord } from '../store/store.js';
import type { Auth } from './auth.js';
import type { ApiDeps } from './deps.js';
import { errorResponses } from './schemas.js';

const Counts = {
  connections: Type.Integer({ description: 'Connections (flows) admitted' }),
  packets: Type.Integer({ description: 'Their packets, both ways' }),
  bytes: Type.Integer({ description: 'Their bytes, both ways' }),
};
const DirectionCounts = Type.Object(Counts, { additionalProperties: false });

const RuleStatsSchema = Type.Object(
  {
    rule: Type.String(),
    isInPolicy: Type.Boolean({ description: 'false: no longer in the current policy (counted before)' }),
    ...Counts,
    byDirection: Type.Object(
      { outbound: DirectionCounts, inbound: DirectionCounts, local: DirectionCounts },
      { additionalProperties: false },
    ),
    boxes: Type.Array(
      Type.Object(
        {
          agent: Type.String(),
          direction: Type.String({ description: 'outbound, inbound or local' }),
          ...Counts,
          reportedAt: Type.String({ description: 'When the agent reported these (ISO 8601)' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

const RuleStatsResponse = Type.Object(
  {
    policyVersion: Type.Union([Type.Integer(), Type.Null()]),
    agents: Type.Integer({ description: 'Agents whose reports are summed' }),
    rules: Type.Array(RuleStatsSchema),
    zoneDrops: Type.Array(
      Type.Object(
        {
          direction: Type.String({ description: 'outbound, inbound or local: where it was refused' }),
          sourceZone: Type.String(),
          destinationZone: Type.String(),
          packets: Type.Integer(),
          bytes: Type.Integer(),
          agents: Type.Array(Type.String(), { description: 'The boxes that refused any' }),
        },
        { additionalProperties: false },
      ),
      { description: 'Packets the firewalls dropped, per direction and zone pair (pairs with none left out)' },
    ),
  },
  { additionalProperties: false },
);
/** GET /v1/rules/stats. */
export type RuleStatsResult = Static<typeof RuleStatsResponse>;

export function ruleRoutes(deps: ApiDeps, auth: Auth): FastifyPluginAsyncTypebox {
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
  return async (app) => {
    app.get(
      '/v1/rules/stats',
      {
        onRequest: auth.requires('agents.read'),
        schema: {
          summary:
            'Per-rule connections, packets and bytes, and drops per zone pair, summed over the boxes (counted since each agent started)',
          tags: ['policy'],
          querystring: Type.Object(
            {
              agent: Type.Optional(Type.String({ description: "One agent's counters only" })),
            },
            { additionalProperties: false },
          ),
          response: { 200: RuleStatsResponse, ...errorResponses(400, 404) },
        },
      },
      async (req) => {
        let agents: AgentRecord[] = (await deps.store.listAgents()).filter((a) => a.revokedAtMs === null);
        const only = req.query.agent;
        if (only !== undefined) {
          agents = agents.filter((a) => a.name === only);
          if (agents.length === 0)
            throw new CrosslinkError('not_found', `no enrolled agent named "${only}"`, [
              { path: 'query.agent', message: `"${only}" is not an enrolled agent` },
            ]);
        }
        const counted: AgentCounters[] = [];
        for (const a of agents) {
          if (a.lastReport === null || a.lastReportAtMs === null) continue;
          try {
            const r = fromJsonString(ReportRequestSchema, a.lastReport, { ignoreUnknownFields: true });
            counted.push({
              agent: a.name,
              reportedAtMs: a.lastReportAtMs,
              counters: r.ruleCounters,
              zoneDrops: r.zoneDrops,
            });
          } catch (err) {
            deps.log.warn({ agent: a.name, err: (err as Error).message }, 'rules stats: stored report does not parse');
          }
        }
        const current = deps.distribution.currentPolicy();
        return {
          policyVersion: current?.version ?? null,
          agents: counted.length,
          rules: ruleStats(current?.policy.rules.map((r) => r.name) ?? [], counted),
          zoneDrops: zoneDropStats(counted),
        };
      },
    );
  };
}
