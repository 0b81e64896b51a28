// Agents: the inventory joined with distribution's live view. Revoke refuses the agent at once
// (its credential stops working) and removes it from every peer's config; delete forgets it.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@fastify/type-provider-typebox';
import { CrosslinkError } from '../../lib/errors.js';
import type { AgentRecord } from '../store/store.js';
import { isUnservedBecauseOf } from '../policy/unserved.js';
import { principalOf, type Auth } from './auth.js';
import type { ApiDeps } from './deps.js';
import { errorResponses, NameParam } from './schemas.js';

export const AgentView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    publicKey: Type.String({ description: 'WireGuard public key, base64.' }),
    endpoint: Type.String({ description: 'Underlay host:port; empty if unknown. With named underlays, the first.' }),
    endpoints: Type.Array(
      Type.Object({ underlay: Type.String(), endpoint: Type.String() }, { additionalProperties: false }),
      {
        description:
          'One per named underlay the box announced (--endpoint NAME=HOST:PORT); empty for a bare HOST:PORT.',
      },
    ),
    isRelay: Type.Boolean({ description: 'The box consents to relay (--relay).' }),
    relayedPairs: Type.Array(Type.String(), { description: 'Pairs this box relays now, as "a <-> b".' }),
    overlayAddress: Type.String(),
    advertised: Type.Array(Type.String(), { description: 'Prefixes the agent says it can serve.' }),
    served: Type.Array(Type.String(), { description: 'Subnets it serves under the current policy.' }),
    unserved: Type.Array(
      Type.Object({ subnet: Type.String(), reason: Type.String() }, { additionalProperties: false }),
      { description: 'Subnets of its via nobody serves because of it, e.g. "cc-edge does not advertise fd20:8::/64".' },
    ),
    agentVersion: Type.String(),
    protocolVersion: Type.Integer(),
    enrolledAtMs: Type.Integer(),
    isRevoked: Type.Boolean(),
    revokedAtMs: Type.Union([Type.Integer(), Type.Null()]),
    isConnected: Type.Boolean({ description: 'A config stream is open now.' }),
    connectedSinceMs: Type.Union([Type.Integer(), Type.Null()]),
    desiredGeneration: Type.Integer({ description: 'Generation of the config the controller wants it to run.' }),
    desiredHash: Type.String(),
    appliedGeneration: Type.Integer({ description: 'Last generation the agent reported as applied.' }),
    lastReportAtMs: Type.Union([Type.Integer(), Type.Null()]),
    lastReport: Type.Union([Type.Unknown(), Type.Null()], {
      description: 'The last report (proto JSON form); only in GET /v1/agents/{name}.',
    }),
  },
  { additionalProperties: false },
);
/** GET /v1/agents/{name} and each of GET /v1/agents's `agents`, as the CLI reads them. */
export type AgentView = Static<typeof AgentView>;

/** What the audit log records about an agent: never its credential hash. */
export function agentAuditState(a: AgentRecord): Record<string, unknown> {
  return {
    id: a.id,
    name: a.name,
    publicKey: a.publicKey,
    endpoint: a.endpoint,
    overlayAddress: a.overlayAddress,
    advertised: a.advertised,
    revokedAtMs: a.revokedAtMs,
  };
}

export function agentRoutes(deps: ApiDeps, auth: Auth): FastifyPluginAsyncTypebox {
  const { store, distribution, clock, log } = deps;

  /** Relay name -> the pairs whose first choice it is now. */
  function relayedPairs(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const p of distribution.indirectPaths()) {
      const r = p.kind === 'relay' ? p.relays[0] : undefined;
      if (r !== undefined) out.set(r, [...(out.get(r) ?? []), `${p.a} <-> ${p.b}`]);
    }
    return out;
  }

  function view(a: AgentRecord, withReport: boolean, relayed: Map<string, string[]> = relayedPairs()) {
    const live = distribution.liveView(a.name);
    let lastReport: unknown = null;
    if (withReport && a.lastReport) {
      try {
        lastReport = JSON.parse(a.lastReport);
      } catch {
        lastReport = null;
      }
    }
    return {
      id: a.id,
      name: a.name,
      publicKey: a.publicKey,
      endpoint: a.endpoint,
      endpoints: a.endpoints,
      isRelay: a.isRelay,
      relayedPairs: relayed.get(a.name) ?? [],
      overlayAddress: a.overlayAddress,
      advertised: a.advertised,
      served: live.servedSubnets,
      unserved: distribution
        .unservedSubnets()
        .filter((u) => isUnservedBecauseOf(a.name, u.reason))
        .map((u) => ({ subnet: u.subnet, reason: u.reason })),
      agentVersion: a.agentVersion,
      protocolVersion: a.protocolVersion,
      enrolledAtMs: a.enrolledAtMs,
      isRevoked: a.revokedAtMs !== null,
      revokedAtMs: a.revokedAtMs,
      isConnected: live.isConnected,
      connectedSinceMs: live.connectedSinceMs,
      desiredGeneration: live.desiredGeneration || a.desiredGeneration,
      desiredHash: live.desiredHash || a.desiredHash,
      appliedGeneration: a.appliedGeneration,
      lastReportAtMs: a.lastReportAtMs,
      lastReport,
    };
  }

  async function notify(name: string): Promise<void> {
    try {
      await distribution.agentsChanged([name]);
    } catch (e) {
      log.error({ err: e, agent: name }, 'agent change committed but distribution failed');
    }
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
  return async (app) => {
    app.get(
      '/v1/agents',
      {
        onRequest: auth.requires('agents.read'),
        schema: {
          summary: 'Every enrolled agent',
          tags: ['agents'],
          response: {
            200: Type.Object({ agents: Type.Array(AgentView) }, { additionalProperties: false }),
            ...errorResponses(),
          },
        },
      },
      async () => {
        const relayed = relayedPairs();
        return { agents: (await store.listAgents()).map((a) => view(a, false, relayed)) };
      },
    );

    app.get(
      '/v1/agents/:name',
      {
        onRequest: auth.requires('agents.read'),
        schema: {
          summary: 'One agent with its last report',
          tags: ['agents'],
          params: NameParam,
          response: { 200: AgentView, ...errorResponses(400, 404) },
        },
      },
      async (req) => {
        const a = await store.agentByName(req.params.name);
        if (!a) throw new CrosslinkError('not_found', `no agent named "${req.params.name}"`);
        return view(a, true);
      },
    );

    app.post(
      '/v1/agents/:name/revoke',
      {
        onRequest: auth.requires('agents.write'),
        schema: {
          summary: 'Revoke an agent: refused at once, dropped from every peer',
          tags: ['agents'],
          params: NameParam,
          response: { 200: AgentView, ...errorResponses(400, 404, 409) },
        },
      },
      async (req) => {
        const { actor } = principalOf(req);
        const a = await store.agentByName(req.params.name);
        if (!a) throw new CrosslinkError('not_found', `no agent named "${req.params.name}"`);
        if (a.revokedAtMs !== null) throw new CrosslinkError('conflict', `agent "${a.name}" is already revoked`);
        const atMs = clock.nowMs();
        const ok = await store.revokeAgent(a.name, atMs, {
          actor,
          action: 'agent.revoke',
          target: `agent/${a.name}`,
          before: agentAuditState(a),
          after: agentAuditState({ ...a, revokedAtMs: atMs }),
        });
        if (!ok) throw new CrosslinkError('conflict', `agent "${a.name}" was revoked or deleted meanwhile`);
        await notify(a.name);
        return view({ ...a, revokedAtMs: atMs }, false);
      },
    );

    app.delete(
      '/v1/agents/:name',
      {
        onRequest: auth.requires('agents.write'),
        schema: {
          summary: 'Forget an agent (it must enroll again with a new join token)',
          tags: ['agents'],
          params: NameParam,
          response: { 204: Type.Null(), ...errorResponses(400, 404) },
        },
      },
      async (req, reply) => {
        const { actor } = principalOf(req);
        const a = await store.agentByName(req.params.name);
        if (!a) throw new CrosslinkError('not_found', `no agent named "${req.params.name}"`);
        const ok = await store.deleteAgent(a.name, {
          actor,
          action: 'agent.delete',
          target: `agent/${a.name}`,
          before: agentAuditState(a),
          after: null,
        });
        if (!ok) throw new CrosslinkError('not_found', `agent "${a.name}" was deleted meanwhile`);
        await notify(a.name);
        return reply.code(204).send(null);
      },
    );
  };
}
