// Response schemas of GET /v1/health, /v1/health/agents/{name} and /v1/health/history: the shapes
// of controller/health/types.ts (and serving.ts, distribute/port.ts) for the OpenAPI document and
// for fastify's serializer. The serializer writes only what a schema names, so a field added to
// the types must be added here: health-status.test.ts compares each answer with the monitor's own
// data and fails on any field left out.
import { Type } from '@fastify/type-provider-typebox';
import { StringEnum } from './schemas.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T, description?: string) =>
  Type.Union([t, Type.Null()], description ? { description } : {});
const Ms = (description: string) => Type.Number({ description });

const State = StringEnum(['ok', 'degraded', 'down', 'unknown'] as const);

/** state, sinceMs, reason: shared by the overall result, agents, links and probes. */
const statusFields = {
  state: State,
  sinceMs: Ms('Controller clock (ms since the epoch) since when the subject has been in this state'),
  reason: Type.String({ description: 'One line saying why, e.g. "no handshake for 190 s"' }),
};

const PeerView = Type.Object(
  {
    name: Type.String(),
    handshakeAgeSeconds: Nullable(Type.Number(), 'Seconds since the latest handshake; null: never'),
    rxBytes: Type.Number(),
    txBytes: Type.Number(),
    isProbed: Type.Boolean({
      description: 'false: no peer probe has run yet (isReachable, rttMs and lossRatio mean nothing)',
    }),
    isReachable: Type.Boolean(),
    rttMs: Nullable(Type.Number(), 'RTT of the last successful probe; null: none'),
    lossRatio: Type.Number({ description: '0..1 over the last 10 probes' }),
  },
  { additionalProperties: false },
);

const ApplyErrorView = Type.Object(
  {
    step: Type.String(),
    command: Type.String(),
    exitCode: Type.Integer(),
    stderr: Type.String({ description: 'First line of stderr' }),
    isTerminal: Type.Boolean(),
  },
  { additionalProperties: false },
);

export const AgentHealthSchema = Type.Object(
  {
    name: Type.String(),
    ...statusFields,
    isRevoked: Type.Boolean(),
    isConnected: Type.Boolean({ description: 'A config stream is open now' }),
    lastReportAtMs: Nullable(Type.Number(), 'null: no report since the controller started'),
    lastReportAgeSeconds: Nullable(Type.Number()),
    isReportFresh: Type.Boolean(),
    desiredGeneration: Type.Number(),
    desiredSinceMs: Type.Number(),
    appliedGeneration: Nullable(Type.Number(), 'null: never reported'),
    seenGeneration: Nullable(Type.Number()),
    applyErrors: Type.Array(ApplyErrorView),
    streamDownSinceMs: Nullable(Type.Number(), 'null: connected'),
    streamUpSinceMs: Nullable(Type.Number(), 'Since when its oldest config stream has been open; null: disconnected'),
    peers: Type.Array(PeerView, { description: 'From the last report (also when stale), by name' }),
  },
  { additionalProperties: false },
);

const LinkEnd = Type.Object(
  {
    agent: Type.String(),
    hasView: Type.Boolean({ description: "false: this end's view is missing or too old to use" }),
    handshakeAgeSeconds: Nullable(Type.Number()),
    isProbed: Type.Boolean(),
    isReachable: Type.Boolean(),
    rttMs: Nullable(Type.Number()),
    lossRatio: Type.Number(),
  },
  { additionalProperties: false },
);

const LinkHealth = Type.Object(
  {
    name: Type.String({ description: '"a:b" with a < b' }),
    ...statusFields,
    agents: Type.Array(Type.String(), { minItems: 2, maxItems: 2 }),
    handshakeAgeSeconds: Nullable(Type.Number(), 'Youngest handshake either end saw; null: none'),
    rttMs: Nullable(Type.Number(), "Mean of the ends' last successful probes; null: none"),
    lossRatio: Nullable(Type.Number(), 'Worst of the two ends; null: neither end has probed'),
    configuredSinceMs: Type.Number(),
    ends: Type.Array(LinkEnd, { minItems: 2, maxItems: 2 }),
  },
  { additionalProperties: false },
);

const ProbeHealth = Type.Object(
  {
    id: Type.String({ description: '"AGENT/PROBE": probe names are unique per agent' }),
    ...statusFields,
    agent: Type.String(),
    name: Type.String({ description: '"RULE/INDEX"' }),
    target: Type.String(),
    protocol: Type.String(),
    port: Type.Integer({ description: '0 for icmp' }),
    expectDeny: Type.Boolean(),
    rttMs: Nullable(Type.Number()),
    checkedAtMs: Nullable(Type.Number(), 'Agent clock of the result; null: no result'),
    detail: Type.String(),
  },
  { additionalProperties: false },
);

const StateCounts = Type.Object(
  { ok: Type.Integer(), degraded: Type.Integer(), down: Type.Integer(), unknown: Type.Integer() },
  { additionalProperties: false },
);

const ServingView = Type.Object(
  {
    agent: Type.String(),
    isHealthy: Type.Boolean({ description: 'Fit to serve its subnets (else its standbys take them)' }),
    sinceMs: Type.Number(),
    reason: Type.String(),
    clearSinceMs: Nullable(
      Type.Number(),
      'While unhealthy: since when it has looked healthy again (the hold-down clock)',
    ),
  },
  { additionalProperties: false },
);

const UnservedView = Type.Object(
  {
    subnet: Type.String(),
    reason: Type.String(),
    isAwaitingEnrolment: Type.Boolean({ description: 'Only because no box of its via has enrolled yet' }),
  },
  { additionalProperties: false },
);

const UnconfirmedView = Type.Object(
  {
    subnet: Type.String(),
    candidates: Type.Array(Type.String(), {
      description: 'Its serving group, in order; the boxes choose among themselves by their own echo',
    }),
    reason: Type.String({ description: 'Why the controller judges none of them healthy' }),
  },
  { additionalProperties: false },
);

/** Several controllers (PostgreSQL): the leader evaluates, every replica serves its evaluation. */
const EvaluatedBy = Type.Optional(
  Type.Object(
    {
      replica: Type.String({ description: 'Id (host/pid/random) of the controller that evaluated: the leader' }),
      atMs: Type.Number({ description: "That controller's clock at the evaluation" }),
      isThisReplica: Type.Boolean({ description: "false: this replica serves the leader's stored evaluation" }),
    },
    {
      additionalProperties: false,
      description: 'Only with several controllers on PostgreSQL: who evaluated, and when',
    },
  ),
);

export const FleetHealthSchema = Type.Object(
  {
    ...statusFields,
    atMs: Type.Number({ description: 'Controller clock of the evaluation' }),
    counts: Type.Object(
      { agents: StateCounts, links: StateCounts, probes: StateCounts },
      { additionalProperties: false, description: 'Revoked agents are not counted' },
    ),
    agents: Type.Array(AgentHealthSchema, { description: 'By name; revoked agents included (state unknown)' }),
    links: Type.Array(LinkHealth, { description: 'By name' }),
    probes: Type.Array(ProbeHealth, { description: 'By id' }),
    serving: Type.Array(ServingView, { description: 'Serving health of every agent, by name' }),
    unserved: Type.Array(UnservedView, { description: 'Subnets of the current policy no box serves now, and why' }),
    unconfirmed: Type.Array(UnconfirmedView, {
      description:
        "Subnets served on their boxes' own decision: the controller judges none of the candidates healthy (degraded, not unserved)",
    }),
    ruleWindows: Type.Array(
      Type.Object(
        {
          rule: Type.String(),
          notBefore: Type.Union([Type.String(), Type.Null()]),
          notAfter: Type.Union([Type.String(), Type.Null()]),
          state: Type.Union([Type.Literal('pending'), Type.Literal('open'), Type.Literal('expired')]),
          secondsToExpiry: Type.Union([Type.Integer(), Type.Null()], {
            description: "Until not-after on the controller's clock; negative once expired",
          }),
        },
        { additionalProperties: false },
      ),
      { description: 'Rules of the current policy with a not-before or not-after, soonest end first' },
    ),
    evaluatedBy: EvaluatedBy,
  },
  { additionalProperties: false },
);

export const AgentDetailSchema = Type.Object(
  {
    atMs: Type.Number(),
    agent: AgentHealthSchema,
    links: Type.Array(LinkHealth),
    probes: Type.Array(ProbeHealth),
    serving: Type.Union([ServingView, Type.Null()]),
    evaluatedBy: EvaluatedBy,
  },
  { additionalProperties: false },
);

export const HistorySchema = Type.Object(
  {
    events: Type.Array(
      Type.Object(
        {
          subject: Type.String({
            description: '"overall", "agent:NAME", "link:A:B", "probe:AGENT/RULE/INDEX", "serving:NAME", "subnet:NAME"',
          }),
          kind: StringEnum(['overall', 'agent', 'link', 'probe', 'serving', 'subnet'] as const),
          from: Type.Union([State, Type.Null()], { description: 'null: the subject appeared' }),
          to: Type.Union([State, Type.Null()], { description: 'null: the subject disappeared' }),
          atMs: Type.Number(),
          reason: Type.String(),
        },
        { additionalProperties: false },
      ),
      { description: 'Oldest first' },
    ),
  },
  { additionalProperties: false },
);
