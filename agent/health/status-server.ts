// The agent's local status endpoint: GET /status (JSON, read by `crosslink agent status` and
// monitoring) and GET /metrics (Prometheus). It reads only local state, so it keeps answering while
// the controller is unreachable — which is exactly when it matters most.
import type { RuleWindowView } from './rule-windows.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ApplyFailure, ApplyOutcome } from '../reconcile/loop.js';
import type { FailoverStatusView } from '../failover/engine.js';
import type { RuleCounterView, ZoneDropView } from './rule-counters.js';

export interface PeerStatusView {
  name: string;
  publicKey: string;
  /** Underlay endpoint WireGuard currently uses ("" when none). */
  endpoint: string;
  /** ISO time of the latest handshake; null = never. */
  latestHandshake: string | null;
  latestHandshakeUnix: number;
  /** Seconds since the latest handshake; null = never. */
  handshakeAgeSeconds: number | null;
  rxBytes: number;
  txBytes: number;
  /** Peer probe through the tunnel (absent: the agent runs no prober). */
  probe?: { isProbed: boolean; isReachable: boolean; rttMs: number; lossRatio: number };
}

/** A path probe's latest result. */
export interface ProbeStatusView {
  name: string;
  isOk: boolean;
  detail: string;
  rttMs: number;
  /** ISO time of the result; null: none. */
  checkedAt: string | null;
}

/** The JSON served at GET /status. Times are ISO 8601; `null` means "never" or "not applicable". */
export interface AgentStatus {
  name: string;
  version: string;
  interface: string;
  publicKey: string;
  overlayAddress: string;
  controller: {
    url: string;
    isConnected: boolean;
    /** Since when the config may be stale (stream down, or never up since start); null while connected. */
    staleSince: string | null;
    staleSeconds: number;
    /** Why the stream is down, when known. */
    reason: string | null;
  };
  generation: { seen: number; applied: number; desired: number };
  lastApply: { at: string; durationMs: number; steps: number } | null;
  isApplied: boolean;
  errors: ApplyFailure[];
  peers: PeerStatusView[];
  /** Path probes of the enforced config (absent or empty: none). */
  probes?: ProbeStatusView[];
  /** The firewall's named drop counters (dropped_inbound, ...); absent or empty: none. */
  firewallCounters?: Record<string, { packets: number; bytes: number }>;
  /** Per rule and direction: connections admitted, their packets and bytes (absent: none). */
  ruleCounters?: RuleCounterView[];
  /** Drops per direction and zone pair (absent: none). */
  zoneDrops?: ZoneDropView[];
  /** Failover at the edges (serving groups): absent when the config has none. */
  failover?: FailoverStatusView;
  /** This box's clock against the controller's (heartbeats); absent: no heartbeat yet. */
  clock?: { skewMs: number; isSkewed: boolean; boundMs: number; appliedSkewMs: number };
  /** Rules of the enforced config with a not-before / not-after, soonest end first (absent: none). */
  ruleWindows?: RuleWindowView[];
}

export type { RuleWindowView };

export interface AgentMetrics {
  registry: Registry;
  /** Records one reconcile run (duration, errors). */
  observeApply(outcome: ApplyOutcome): void;
}

/**
 * Metrics in their own Registry (never the global default one), read from `getStatus` at scrape time.
 * `getStatus` may be async (it reads `wg show`); a failure there leaves the last values.
 */
export function createAgentMetrics(getStatus: () => Promise<AgentStatus> | AgentStatus): AgentMetrics {
  const registry = new Registry();
  let snapshot: Promise<AgentStatus> | null = null;
  // One status read per scrape, shared by every metric's collect().
  const current = () => {
    snapshot ??= Promise.resolve(getStatus()).finally(() =>
      setTimeout(() => {
        snapshot = null;
      }, 0),
    );
    return snapshot;
  };

  /**
   * A metric whose series are read from the status at scrape time: `rows` gives each series' labels
   * and value (a counter mirrors a total kept elsewhere: WireGuard, nft, the agent's running totals).
   */
  function fromStatus<L extends string>(
    kind: 'counter' | 'gauge',
    name: string,
    help: string,
    labelNames: readonly L[],
    rows: (s: AgentStatus) => Iterable<readonly [Partial<Record<L, string>>, number]>,
  ): void {
    const base = { name, help, labelNames, registers: [registry] };
    if (kind === 'counter')
      new Counter<L>({
        ...base,
        async collect() {
          this.reset();
          for (const [labels, v] of rows(await current())) this.inc(labels, v);
        },
      });
    else
      new Gauge<L>({
        ...base,
        async collect() {
          this.reset();
          for (const [labels, v] of rows(await current())) this.set(labels, v);
        },
      });
  }
  const one = (v: number) => [[{}, v]] as const;

  fromStatus(
    'gauge',
    'crosslink_agent_generation_applied',
    'Generation of the config last applied completely (0: none).',
    [],
    (s) => one(s.generation.applied),
  );
  fromStatus(
    'gauge',
    'crosslink_agent_generation_seen',
    'Highest config generation received from the controller.',
    [],
    (s) => one(s.generation.seen),
  );
  const applyErrors = new Counter({
    name: 'crosslink_agent_apply_errors_total',
    help: 'Failed reconcile steps (including invalid configs).',
    labelNames: ['step'],
    registers: [registry],
  });
  const applies = new Counter({
    name: 'crosslink_agent_reconcile_runs_total',
    help: 'Reconcile runs (observe, plan, apply).',
    labelNames: ['result'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'crosslink_agent_reconcile_duration_seconds',
    help: 'Duration of one reconcile run (observe, plan, apply).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  // Rule windows and the clock they are judged by (docs/metrics.md, "Rule windows").
  fromStatus(
    'gauge',
    'crosslink_agent_clock_skew_seconds',
    "This box's clock minus the controller's at the last heartbeat (absent before one).",
    [],
    (s) => (s.clock ? one(s.clock.skewMs / 1000) : []),
  );
  const perWindow = (name: string, help: string, value: (w: RuleWindowView) => number | null) =>
    fromStatus('gauge', name, help, ['rule', 'direction'], function* (s) {
      for (const w of s.ruleWindows ?? []) {
        const v = value(w);
        if (v !== null) yield [{ rule: w.rule, direction: w.direction }, v] as const;
      }
    });
  perWindow(
    'crosslink_rule_expiry_timestamp_seconds',
    "When a rule's not-after closes it on this box's clock, Unix seconds (rules with a not-after only).",
    (w) => (w.notAfter === null ? null : Date.parse(w.notAfter) / 1000),
  );
  perWindow(
    'crosslink_rule_seconds_to_expiry',
    'Seconds until a rule expires on this box (negative once expired; rules with a not-after only).',
    (w) => w.secondsToExpiry,
  );
  perWindow(
    'crosslink_rule_window_open',
    'Whether a rule with a not-before or not-after admits new flows now (1) or not (0).',
    (w) => (w.state === 'open' ? 1 : 0),
  );
  const perPeer = (
    kind: 'counter' | 'gauge',
    name: string,
    help: string,
    value: (p: PeerStatusView) => number | null,
  ) =>
    fromStatus(kind, name, help, ['peer'], function* (s) {
      for (const p of s.peers) {
        const v = value(p);
        if (v !== null) yield [{ peer: p.name }, v] as const;
      }
    });
  perPeer(
    'gauge',
    'crosslink_agent_peer_handshake_age_seconds',
    'Seconds since the latest WireGuard handshake with a peer (absent: never).',
    (p) => p.handshakeAgeSeconds,
  );
  // WireGuard keeps the byte counters; we mirror them (a counter that restarts with the interface,
  // which Prometheus' rate() handles as a reset).
  perPeer(
    'counter',
    'crosslink_agent_peer_rx_bytes_total',
    'Bytes received from a peer through the tunnel.',
    (p) => p.rxBytes,
  );
  perPeer(
    'counter',
    'crosslink_agent_peer_tx_bytes_total',
    'Bytes sent to a peer through the tunnel.',
    (p) => p.txBytes,
  );
  fromStatus(
    'gauge',
    'crosslink_agent_controller_connected',
    '1 while the config stream to the controller is up.',
    [],
    (s) => one(s.controller.isConnected ? 1 : 0),
  );
  fromStatus(
    'gauge',
    'crosslink_agent_config_stale_seconds',
    'Seconds the config stream has been down (0 while connected).',
    [],
    (s) => one(s.controller.staleSeconds),
  );
  fromStatus(
    'gauge',
    'crosslink_agent_apply_failing',
    '1 while the last reconcile run left errors (or the newest config is invalid).',
    [],
    (s) => one(s.errors.length > 0 ? 1 : 0),
  );

  perPeer(
    'gauge',
    'crosslink_agent_peer_probe_success',
    '1 if the last peer probe (echo through the tunnel) got an answer (absent until probed).',
    (p) => (p.probe?.isProbed ? (p.probe.isReachable ? 1 : 0) : null),
  );
  perPeer(
    'gauge',
    'crosslink_agent_peer_probe_rtt_seconds',
    'Round-trip time of the last successful peer probe.',
    (p) => (p.probe?.isProbed && p.probe.rttMs > 0 ? p.probe.rttMs / 1000 : null),
  );
  perPeer(
    'gauge',
    'crosslink_agent_peer_probe_loss_ratio',
    'Share of the last 10 peer probes that got no answer (0..1).',
    (p) => (p.probe?.isProbed ? p.probe.lossRatio : null),
  );
  const perProbe = (name: string, help: string, value: (p: ProbeStatusView) => number | null) =>
    fromStatus('gauge', name, help, ['probe'], function* (s) {
      for (const p of s.probes ?? []) {
        const v = value(p);
        if (v !== null) yield [{ probe: p.name }, v] as const;
      }
    });
  perProbe(
    'crosslink_agent_probe_success',
    'Path probe: 1 if its last outcome matched what it expects (absent: no result yet).',
    (p) => (p.isOk ? 1 : 0),
  );
  perProbe(
    'crosslink_agent_probe_rtt_seconds',
    "Path probe's connect (or echo) time in its last successful run.",
    (p) => (p.isOk && p.rttMs > 0 ? p.rttMs / 1000 : null),
  );
  // nft keeps the counters and restarts them when the table is replaced; the status reader keeps
  // running totals across that (health/rule-counters.ts), so these only restart with the agent.
  const perRule = (name: string, help: string, field: 'connections' | 'packets' | 'bytes') =>
    fromStatus('counter', name, help, ['rule', 'direction'], (s) =>
      (s.ruleCounters ?? []).map((r) => [{ rule: r.rule, direction: r.direction }, r[field]] as const),
    );
  perRule(
    'crosslink_rule_connections_total',
    'Connections (flows) a policy rule admitted on this box, by direction (outbound, inbound, local).',
    'connections',
  );
  perRule('crosslink_rule_packets_total', 'Packets of the flows a policy rule admitted, both ways.', 'packets');
  perRule('crosslink_rule_bytes_total', 'Bytes of the flows a policy rule admitted, both ways.', 'bytes');
  const perZonePair = (name: string, help: string, field: 'packets' | 'bytes') =>
    fromStatus('counter', name, help, ['direction', 'source_zone', 'destination_zone'], (s) =>
      (s.zoneDrops ?? []).map(
        (z) =>
          [
            { direction: z.direction, source_zone: z.sourceZone, destination_zone: z.destinationZone },
            z[field],
          ] as const,
      ),
    );
  perZonePair(
    'crosslink_zone_dropped_packets_total',
    'Packets the Crosslink firewall dropped, by direction and the zones of their source and destination.',
    'packets',
  );
  perZonePair(
    'crosslink_zone_dropped_bytes_total',
    'Bytes the Crosslink firewall dropped, by direction and zone pair.',
    'bytes',
  );
  const perDropCounter = (name: string, help: string, field: 'packets' | 'bytes') =>
    fromStatus('counter', name, help, ['counter'], (s) =>
      Object.entries(s.firewallCounters ?? {}).map(([counter, c]) => [{ counter }, c[field]] as const),
    );
  perDropCounter(
    'crosslink_agent_firewall_dropped_packets_total',
    'Packets dropped by the Crosslink firewall, by named counter (dropped_inbound, dropped_outbound, dropped_local).',
    'packets',
  );
  perDropCounter(
    'crosslink_agent_firewall_dropped_bytes_total',
    'Bytes dropped by the Crosslink firewall, by named counter.',
    'bytes',
  );

  // Counters are created with zero so the series exist before the first failure.
  applyErrors.inc({ step: 'config' }, 0);
  applies.inc({ result: 'ok' }, 0);
  applies.inc({ result: 'failed' }, 0);

  return {
    registry,
    observeApply(o) {
      duration.observe(o.durationMs / 1000);
      applies.inc({ result: o.errors.length === 0 ? 'ok' : 'failed' });
      for (const e of o.errors) applyErrors.inc({ step: e.step });
    },
  };
}

/** Counts a terminal (invalid config) error, which no reconcile run reports. */
export function countConfigError(metrics: AgentMetrics): void {
  (metrics.registry.getSingleMetric('crosslink_agent_apply_errors_total') as Counter<'step'>).inc({ step: 'config' });
}

export interface StatusServer {
  server: Server;
  /** Starts listening; resolves with the bound address (port 0 picks a free one). */
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  close(): Promise<void>;
}

const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? Number(x) : x), 2);

/** Builds the server; never listens by itself (tests call handle() through listen on port 0). */
export function createStatusServer(deps: {
  getStatus: () => Promise<AgentStatus>;
  metrics: AgentMetrics;
  log: Logger;
}): StatusServer {
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    try {
      if (url.pathname === '/status') {
        res
          .writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
          .end(`${json(await deps.getStatus())}\n`);
      } else if (url.pathname === '/metrics') {
        const text = await deps.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': deps.metrics.registry.contentType }).end(text);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /status or /metrics\n');
      }
    } catch (err) {
      deps.log.error({ err, path: url.pathname }, 'status endpoint failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    }
  };
  const server = createServer((req, res) => void handle(req, res));
  return {
    server,
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const a = server.address() as AddressInfo;
          resolve({ host: a.address, port: a.port });
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** "127.0.0.1:9474" / "[::1]:9474" -> { host, port }; null when malformed. */
export function parseListenAddress(text: string): { host: string; port: number } | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[2]);
  return port <= 65535 ? { host: m[1]!, port } : null;
}
