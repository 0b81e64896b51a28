// The controller's Prometheus metrics, collected on scrape from the health monitor's latest snapshot
// and the distributor's live view. Its own Registry (never prom-client's global one), so tests and
// several controllers in one process never share series. Every metric is documented in
// docs/metrics.md; a test keeps the two in step.
import type { FastifyPluginAsync } from 'fastify';
import type { PolicyRuleWindow } from './policy/rule-windows.js';
import { Counter, Gauge, Registry } from 'prom-client';
import type { HealthSnapshot } from './health/types.js';
import { HEALTH_STATES } from './health/types.js';

/** One agent's role for one subnet. `role` is from the policy (`via` order: first is primary). */
export interface ServingAssignment {
  subnet: string;
  agent: string;
  role: 'primary' | 'standby';
  /** The agent is the subnet's active gateway now. */
  isServing: boolean;
}

/** What the metrics read from distribution (controller/distribute). */
export interface MetricsDistributionView {
  connectedCount(): number;
  /** Every (subnet, candidate agent) pair; absent: no serving metrics. */
  serving?(): readonly ServingAssignment[];
  /** The current policy's rules with a window; absent: none. */
  ruleWindows?(): readonly PolicyRuleWindow[];
}

/** What the metrics read from the HealthMonitor. */
export interface MetricsHealthView {
  snapshot(): HealthSnapshot | null;
  servingHealth(): ReadonlyMap<string, boolean>;
}

export interface ControllerMetrics {
  registry: Registry;
  contentType: string;
  /** The exposition text for one scrape. */
  metrics(): Promise<string>;
}

type Kind = 'gauge' | 'counter';
type Emit = (labels: Record<string, string>, value: number) => void;
interface MetricDef {
  name: string;
  type: Kind;
  labels: readonly string[];
  help: string;
  collect(ctx: { snap: HealthSnapshot | null; deps: Deps; emit: Emit }): void;
}
interface Deps {
  monitor: MetricsHealthView;
  distribution: MetricsDistributionView;
}

const stateSeries = (emit: Emit, labels: Record<string, string>, state: string): void => {
  for (const s of HEALTH_STATES) emit({ ...labels, state: s }, s === state ? 1 : 0);
};

/** The metric table; docs/metrics.md documents exactly these. */
export const CONTROLLER_METRICS: readonly MetricDef[] = [
  {
    name: 'crosslink_health_state',
    type: 'gauge',
    labels: ['state'],
    help: 'Overall fleet state: 1 for the current state, 0 for the others.',
    collect: ({ snap, emit }) => {
      if (snap) stateSeries(emit, {}, snap.state);
    },
  },
  {
    name: 'crosslink_health_evaluated_timestamp_seconds',
    type: 'gauge',
    labels: [],
    help: 'Unix time of the latest health evaluation (a stuck monitor stops moving it).',
    collect: ({ snap, emit }) => {
      if (snap) emit({}, snap.atMs / 1000);
    },
  },
  {
    name: 'crosslink_agents',
    type: 'gauge',
    labels: ['state'],
    help: 'Number of (non-revoked) agents in each health state.',
    collect: ({ snap, emit }) => {
      if (snap) for (const s of HEALTH_STATES) emit({ state: s }, snap.counts.agents[s]);
    },
  },
  {
    name: 'crosslink_links',
    type: 'gauge',
    labels: ['state'],
    help: 'Number of links (pairs of agents that are peers) in each health state.',
    collect: ({ snap, emit }) => {
      if (snap) for (const s of HEALTH_STATES) emit({ state: s }, snap.counts.links[s]);
    },
  },
  {
    name: 'crosslink_probes',
    type: 'gauge',
    labels: ['state'],
    help: 'Number of path probes in each health state.',
    collect: ({ snap, emit }) => {
      if (snap) for (const s of HEALTH_STATES) emit({ state: s }, snap.counts.probes[s]);
    },
  },
  {
    name: 'crosslink_agent_state',
    type: 'gauge',
    labels: ['agent', 'state'],
    help: "Agent health: 1 for the agent's current state, 0 for the others.",
    collect: ({ snap, emit }) => {
      for (const a of snap?.agents ?? []) if (!a.isRevoked) stateSeries(emit, { agent: a.name }, a.state);
    },
  },
  {
    name: 'crosslink_link_state',
    type: 'gauge',
    labels: ['link', 'state'],
    help: 'Link health ("a:b"): 1 for the current state, 0 for the others.',
    collect: ({ snap, emit }) => {
      for (const l of snap?.links ?? []) stateSeries(emit, { link: l.name }, l.state);
    },
  },
  {
    name: 'crosslink_agent_connected',
    type: 'gauge',
    labels: ['agent'],
    help: "1 if the agent's config stream is open now.",
    collect: ({ snap, emit }) => {
      for (const a of snap?.agents ?? []) if (!a.isRevoked) emit({ agent: a.name }, a.isConnected ? 1 : 0);
    },
  },
  {
    name: 'crosslink_agent_generation_desired',
    type: 'gauge',
    labels: ['agent'],
    help: 'Generation of the config the controller wants the agent to run.',
    collect: ({ snap, emit }) => {
      for (const a of snap?.agents ?? []) if (!a.isRevoked) emit({ agent: a.name }, a.desiredGeneration);
    },
  },
  {
    name: 'crosslink_agent_generation_applied',
    type: 'gauge',
    labels: ['agent'],
    help: 'Generation the agent last applied completely (absent until it reports).',
    collect: ({ snap, emit }) => {
      for (const a of snap?.agents ?? [])
        if (!a.isRevoked && a.appliedGeneration !== null) emit({ agent: a.name }, a.appliedGeneration);
    },
  },
  {
    name: 'crosslink_agent_last_report_age_seconds',
    type: 'gauge',
    labels: ['agent'],
    help: 'Seconds since the agent last reported (absent until it reports).',
    collect: ({ snap, emit }) => {
      for (const a of snap?.agents ?? [])
        if (!a.isRevoked && a.lastReportAtMs !== null)
          emit({ agent: a.name }, Math.max(0, (snap!.atMs - a.lastReportAtMs) / 1000));
    },
  },
  {
    name: 'crosslink_agent_apply_errors',
    type: 'gauge',
    labels: ['agent'],
    help: "Number of failed steps in the agent's last apply (0: it succeeded).",
    collect: ({ snap, emit }) => {
      for (const a of snap?.agents ?? [])
        if (!a.isRevoked && a.lastReportAtMs !== null) emit({ agent: a.name }, a.applyErrors.length);
    },
  },
  {
    name: 'crosslink_peer_handshake_age_seconds',
    type: 'gauge',
    labels: ['agent', 'peer'],
    help: 'Seconds since the latest WireGuard handshake the agent saw with the peer (absent: never).',
    collect: ({ snap, emit }) => {
      for (const a of snap?.agents ?? [])
        for (const p of a.peers)
          if (!a.isRevoked && p.handshakeAgeSeconds !== null)
            emit({ agent: a.name, peer: p.name }, p.handshakeAgeSeconds);
    },
  },
  {
    name: 'crosslink_peer_rx_bytes_total',
    type: 'counter',
    labels: ['agent', 'peer'],
    help: 'Bytes the agent received from the peer through the tunnel (resets when the interface is recreated).',
    collect: ({ snap, emit }) => {
      for (const a of snap?.agents ?? [])
        for (const p of a.peers) if (!a.isRevoked) emit({ agent: a.name, peer: p.name }, p.rxBytes);
    },
  },
  {
    name: 'crosslink_peer_tx_bytes_total',
    type: 'counter',
    labels: ['agent', 'peer'],
    help: 'Bytes the agent sent to the peer through the tunnel (resets when the interface is recreated).',
    collect: ({ snap, emit }) => {
      for (const a of snap?.agents ?? [])
        for (const p of a.peers) if (!a.isRevoked) emit({ agent: a.name, peer: p.name }, p.txBytes);
    },
  },
  {
    name: 'crosslink_peer_probe_success',
    type: 'gauge',
    labels: ['agent', 'peer'],
    help: "1 if the agent's last peer probe through the tunnel got an answer (absent until probed).",
    collect: ({ snap, emit }) => {
      for (const a of snap?.agents ?? [])
        for (const p of a.peers)
          if (!a.isRevoked && p.isProbed) emit({ agent: a.name, peer: p.name }, p.isReachable ? 1 : 0);
    },
  },
  {
    name: 'crosslink_peer_probe_rtt_seconds',
    type: 'gauge',
    labels: ['agent', 'peer'],
    help: 'Round-trip time of the last successful peer probe through the tunnel.',
    collect: ({ snap, emit }) => {
      for (const a of snap?.agents ?? [])
        for (const p of a.peers)
          if (!a.isRevoked && p.rttMs !== null) emit({ agent: a.name, peer: p.name }, p.rttMs / 1000);
    },
  },
  {
    name: 'crosslink_peer_probe_loss_ratio',
    type: 'gauge',
    labels: ['agent', 'peer'],
    help: "Share of the agent's last 10 peer probes that got no answer (0..1).",
    collect: ({ snap, emit }) => {
      for (const a of snap?.agents ?? [])
        for (const p of a.peers) if (!a.isRevoked && p.isProbed) emit({ agent: a.name, peer: p.name }, p.lossRatio);
    },
  },
  {
    name: 'crosslink_probe_success',
    type: 'gauge',
    labels: ['agent', 'probe'],
    help: 'Path probe: 1 if its last outcome matched what it expects (connected, or refused for expect deny), 0 if not (absent: no fresh result).',
    collect: ({ snap, emit }) => {
      for (const p of snap?.probes ?? [])
        if (p.state === 'ok' || p.state === 'down') emit({ agent: p.agent, probe: p.name }, p.state === 'ok' ? 1 : 0);
    },
  },
  {
    name: 'crosslink_probe_rtt_seconds',
    type: 'gauge',
    labels: ['agent', 'probe'],
    help: "Path probe's round-trip (connect) time in its last successful run.",
    collect: ({ snap, emit }) => {
      for (const p of snap?.probes ?? []) if (p.rttMs !== null) emit({ agent: p.agent, probe: p.name }, p.rttMs / 1000);
    },
  },
  {
    name: 'crosslink_agent_forwarding_healthy',
    type: 'gauge',
    labels: ['agent'],
    help: 'Serving health used for failover: 1 if the agent may serve its subnets (forwarding works, with hold-down), 0 if not.',
    collect: ({ deps, emit }) => {
      for (const [agent, ok] of deps.monitor.servingHealth()) emit({ agent }, ok ? 1 : 0);
    },
  },
  {
    name: 'crosslink_agent_serving',
    type: 'gauge',
    labels: ['agent', 'subnet', 'role'],
    help: 'For every subnet and agent that may serve it: 1 if the agent is its active gateway now. role="standby" with 1 means a standby has taken over.',
    collect: ({ deps, emit }) => {
      for (const s of deps.distribution.serving?.() ?? [])
        emit({ agent: s.agent, subnet: s.subnet, role: s.role }, s.isServing ? 1 : 0);
    },
  },
  {
    name: 'crosslink_policy_rule_seconds_to_expiry',
    type: 'gauge',
    labels: ['rule'],
    help: "Seconds until a policy rule's not-after on the controller's clock (negative once expired; rules with a not-after only). Alert on < 7 * 86400.",
    collect: ({ deps, emit }) => {
      for (const w of deps.distribution.ruleWindows?.() ?? [])
        if (w.secondsToExpiry !== null) emit({ rule: w.rule }, w.secondsToExpiry);
    },
  },
  {
    name: 'crosslink_streams_connected',
    type: 'gauge',
    labels: [],
    help: 'Number of open agent config streams.',
    collect: ({ deps, emit }) => emit({}, deps.distribution.connectedCount()),
  },
];

export function createControllerMetrics(deps: Deps): ControllerMetrics {
  const registry = new Registry();
  for (const def of CONTROLLER_METRICS) {
    const labelNames = [...def.labels];
    if (def.type === 'counter') {
      new Counter({
        name: def.name,
        help: def.help,
        labelNames,
        registers: [registry],
        collect() {
          // Agents own these counters; the controller republishes their current values.
          this.reset();
          def.collect({ snap: deps.monitor.snapshot(), deps, emit: (l, v) => this.inc(l, Math.max(0, v)) });
        },
      });
    } else {
      new Gauge({
        name: def.name,
        help: def.help,
        labelNames,
        registers: [registry],
        collect() {
          this.reset();
          def.collect({ snap: deps.monitor.snapshot(), deps, emit: (l, v) => this.set(l, v) });
        },
      });
    }
  }
  return { registry, contentType: registry.contentType, metrics: () => registry.metrics() };
}

/** `GET /metrics` for a fastify app (unauthenticated, like every Prometheus target by default). */
export function metricsRoute(metrics: ControllerMetrics): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
  return async (app) => {
    app.get('/metrics', { schema: { hide: true } }, async (_req, reply) =>
      reply.type(metrics.contentType).send(await metrics.metrics()),
    );
  };
}
