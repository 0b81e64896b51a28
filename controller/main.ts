// Composition root of the controller: settings -> store (migrated) -> TLS identity -> distributor
// -> fastify app (REST + Connect) -> listen; SIGTERM/SIGINT close it in order. The only place that
// wires real adapters; the imports of the other engineers' modules are all here.
import { AuditSyslogForwarder } from './audit/syslog.js';
import { parseSyslogUrl, SyslogExporter } from '../lib/export/exporters.js';
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { systemClock, type Clock } from '../lib/clock.js';
import { CrosslinkError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { newApiToken } from './api/api-tokens.js';
import { buildApp } from './app.js';
import {
  DEFAULTS,
  listenList,
  loadSettingsFile,
  parseListen,
  validateSettings,
  type ControllerSettings,
} from './config.js';
import { Distributor, type Handover } from './distribute/distributor.js';
import { subnetIssues } from './health/subnets.js';
import { HealthMonitor } from './health/monitor.js';
import { healthSource } from './health/source.js';
import type { HealthEvent } from './health/types.js';
import { policyRuleWindows } from './policy/rule-windows.js';
import { createControllerMetrics } from './metrics.js';
import { UiEventHub } from './ui/events.js';
import { agentContextValues, agentServiceRoutes } from './rpc/agent-service.js';
import { DEFAULT_SESSION_PING_INTERVAL_MS, DEFAULT_SESSION_PING_TIMEOUT_MS } from './rpc/session-keepalive.js';
import { listenExtra, type ExtraListener } from './listen-extra.js';
import { startReplication } from './replicas.js';
import { openStore } from './store/open.js';
import type { Store } from './store/store.js';
import { loadOrCreateTlsIdentity } from './tls.js';

export interface RunControllerOptions {
  /** Settings from flags; they override `configFile`. */
  settings: ControllerSettings;
  /** Path of a controller.yaml with the same keys. */
  configFile?: string;
  log?: Logger;
  clock?: Clock;
  /** Prints for the operator (listen address, CA fingerprint, first admin token path); default stdout. */
  print?: (text: string) => void;
  /** Install SIGTERM/SIGINT handlers that close the controller (default true). */
  handleSignals?: boolean;
}

export interface RunningController {
  /** The first URL written into join tokens. */
  url: string;
  /** Every URL written into join tokens (--url, repeatable). */
  urls: string[];
  /** Where it actually listens, e.g. "https://0.0.0.0:8443" (port filled in if 0 was asked): the first --listen. */
  listenUrl: string;
  /** Every listen address (--listen, repeatable), in order; each serves the REST API and the agent service. */
  listenUrls: string[];
  /** The port of the first listen address. */
  port: number;
  /** The port of every listen address, in order. */
  ports: number[];
  caFingerprint: string;
  dataDir: string;
  store: Store;
  app: FastifyInstance;
  /** Fleet health (also served at /v1/health and /metrics). */
  monitor: HealthMonitor;
  /** Resolves when the controller has shut down (signal or close()). */
  closed: Promise<void>;
  close(): Promise<void>;
}

export type ResolvedSettings = Required<
  Pick<ControllerSettings, 'data-dir' | 'overlay-cidr' | 'heartbeat-interval-seconds' | 'log-level'>
> &
  Omit<ControllerSettings, 'listen'> & { /** At least one HOST:PORT. */ listen: string[] };

/** Flags over file over defaults; throws config_invalid naming the key. */
export async function resolveSettings(flags: ControllerSettings, configFile?: string): Promise<ResolvedSettings> {
  const file = configFile ? await loadSettingsFile(configFile) : {};
  const defined = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) as ControllerSettings;
  const merged = {
    ...DEFAULTS,
    ...file,
    ...defined,
    listen: listenList(defined.listen ?? file.listen ?? DEFAULTS.listen),
  };
  const errors = validateSettings(merged);
  if (!merged['data-dir'])
    errors.unshift({
      path: 'data-dir',
      message: 'data-dir: required (--data-dir DIR or data-dir: in the config file)',
    });
  if (errors.length) throw new CrosslinkError('config_invalid', errors.map((e) => e.message).join('; '), errors);
  return merged as ResolvedSettings;
}

function localAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) out.push(i.address);
  return out;
}

function defaultUrl(host: string, port: number): string {
  if (host !== '0.0.0.0' && host !== '::') return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  // Listening everywhere: agents need a name they can reach; prefer a non-loopback IPv4 address.
  const v4 = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal);
  return `https://${v4?.address ?? hostname()}:${port}`;
}

export async function runController(opts: RunControllerOptions): Promise<RunningController> {
  const s = await resolveSettings(opts.settings, opts.configFile);
  const log = opts.log ?? createLogger({ level: s['log-level'], name: 'controller' });
  const clock = opts.clock ?? systemClock;
  const print =
    opts.print ??
    ((text: string) => {
      process.stdout.write(text);
    });
  const dataDir = resolve(s['data-dir']);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const listens = s.listen.map((l) => parseListen(l)!);

  // SQLite: one controller per file (a second process is refused, naming the first). PostgreSQL:
  // any number, each telling the others of its writes under its own id.
  const replicaId = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
  const store = openStore({
    database: s.database ?? join(dataDir, 'controller.db'),
    clock,
    isExclusive: true,
    changeOrigin: replicaId,
  });
  try {
    await store.migrate();
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }

  // Every name agents may dial: each --url's host, and each listen address (URLs made without --url).
  const urlHosts = (s.url ?? []).map((u) => new URL(u).hostname.replace(/^\[|\]$/g, ''));
  const listenHosts = listens.map((l) => l.host).filter((h) => h !== '0.0.0.0' && h !== '::');
  const sans = [
    ...new Set([
      'localhost',
      '127.0.0.1',
      '::1',
      hostname(),
      ...localAddresses(),
      ...urlHosts,
      ...listenHosts,
      ...(s.san ?? []),
    ]),
  ];
  const tls = await loadOrCreateTlsIdentity(dataDir, { certFile: s['tls-cert'], keyFile: s['tls-key'], sans });

  // First start: one admin token, written where only the operator (root) can read it.
  if ((await store.listApiTokens()).length === 0) {
    const { record, text } = newApiToken({ name: 'admin', role: 'admin', createdBy: 'system', atMs: clock.nowMs() });
    const tokenPath = join(dataDir, 'admin.token');
    await writeFile(tokenPath, text + '\n', { mode: 0o600 });
    await chmod(tokenPath, 0o600);
    await store.createApiToken(record, {
      actor: { name: 'system', role: 'system', address: '' },
      action: 'api_token.create',
      target: `api_token/${record.id}`,
      before: null,
      after: { id: record.id, name: record.name, role: record.role, revokedAtMs: null },
    });
    print(`first start: admin API token written to ${tokenPath}\n`);
  }

  const heartbeatIntervalMs = s['heartbeat-interval-seconds'] * 1000;
  // Built after the distributor (it reads it); handovers before it exists (first compile) are not events.
  let monitor: HealthMonitor | null = null;
  // The web view's live updates (GET /ui/events): health changes and new policy versions.
  const uiEvents = new UiEventHub({ log: log.child({ component: 'ui' }) });
  const distributor = new Distributor({
    store,
    log,
    clock,
    heartbeatIntervalMs,
    compileOptions: {
      probeIntervalSeconds: s['probe-interval-seconds'] ?? 0,
      // Failover at the edges: the agents' echo, and the same hold-down as the controller's own.
      liveness: {
        intervalMs: s['liveness-interval-ms'] ?? 0,
        multiplier: s['liveness-multiplier'] ?? 0,
        port: s['liveness-port'] ?? 0,
        holdDownMs: Math.round((s['failover-hold-down-seconds'] ?? 30) * 1000),
      },
    },
    onHandover: (handovers) => {
      monitor?.record(handovers.map((h) => handoverEvent(h, clock.nowMs())));
      // A subnet served by another box is a change on the map too.
      uiEvents.publish({ type: 'health', atMs: clock.nowMs() });
    },
    // Applied through the API here, or by another replica (replica-sync calls setPolicy too).
    onPolicyChange: (version) => uiEvents.publish({ type: 'policy', version }),
  });
  await distributor.start();
  const healthIntervalMs = (s['health-interval-seconds'] ?? 5) * 1000;
  const replication = await startReplication({
    database: s.database ?? '',
    replicaId,
    store,
    distributor,
    clock,
    log,
    healthIntervalMs,
    // A follower's web views hear of the leader's health changes too.
    onHealthChange: (snapshot) => uiEvents.publish({ type: 'health', atMs: snapshot.atMs }),
  }).catch(async (e: unknown) => {
    await distributor.stop().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw e;
  });

  // Several controllers: the leader's evaluation and history are stored and served by every replica.
  const shared = replication?.health ?? null;
  const reportIntervalMs = (s['report-interval-seconds'] ?? 10) * 1000;
  const silentIntervals = s['silent-intervals'] ?? 3;
  monitor = new HealthMonitor({
    clock,
    log: log.child({ component: 'health' }),
    source: healthSource({
      listAgents: () => store.listAgents(),
      liveView: (n) => distributor.liveView(n),
      currentConfig: (n) => distributor.currentConfig(n),
      // Replicas: this one sees only its own streams; the others publish theirs.
      ...replication?.streamView(reportIntervalMs),
      log,
    }),
    subnets: () => subnetIssues(distributor.unservedSubnets(), distributor.unconfirmedSubnets()),
    intervalMs: healthIntervalMs,
    ...(shared ? { history: shared.historyPort, persist: shared.persist } : {}),
    evaluate: {
      reportIntervalMs,
      silentIntervals,
      ...(s['handshake-degraded-seconds'] !== undefined
        ? { handshakeDegradedSeconds: s['handshake-degraded-seconds'] }
        : {}),
      ...(s['handshake-down-seconds'] !== undefined ? { handshakeDownSeconds: s['handshake-down-seconds'] } : {}),
    },
    serving: {
      reportIntervalMs,
      silentIntervals,
      // The agents' default probe interval is 5 s (agent/health/prober.ts).
      probeIntervalMs: (s['probe-interval-seconds'] || 5) * 1000,
      ...(s['failover-hold-down-seconds'] !== undefined ? { holdDownMs: s['failover-hold-down-seconds'] * 1000 } : {}),
    },
    onChange: (snapshot) => uiEvents.publish({ type: 'health', atMs: snapshot.atMs }),
    // Failover: serving health goes to the compiler, which moves subnets to the next healthy `via`.
    onServingChange: (serving, changed) => {
      replication?.publishServing(changed.map((n) => [n, serving.get(n) ?? true]));
      for (const name of changed) {
        void distributor
          .setAgentHealth(name, serving.get(name) ?? true)
          .catch((err: unknown) => log.error({ err, agent: name }, 'applying serving health failed'));
      }
    },
  });
  const healthMonitor = monitor;
  shared?.attach(healthMonitor);
  /** What /v1/health* and /metrics serve: the monitor, or with replicas the leader's evaluation. */
  const healthView = shared ?? healthMonitor;
  // A report re-evaluates health soon; reports arriving together share one evaluation.
  let refreshTimer: NodeJS.Timeout | null = null;
  const refreshSoon = () => {
    // Only the leader evaluates, once it has taken over the stored evaluation.
    if (shared ? !shared.isLeading() : replication && !replication.isLeader()) return;
    refreshTimer ??= setTimeout(() => {
      refreshTimer = null;
      void healthMonitor.refresh();
    }, 50);
  };
  const metrics = createControllerMetrics({
    monitor: healthView,
    distribution: {
      connectedCount: () => distributor.connectedCount(),
      serving: () => distributor.servingAssignments(),
      ruleWindows: () => policyRuleWindows(distributor.currentPolicy()?.policy, Date.now()),
    },
  });

  // Without --url: one URL per listen address (agents reach each network's address).
  const urlsFor = (ports: number[]) => [...new Set(listens.map((l, i) => defaultUrl(l.host, ports[i]!)))];
  const provisionalUrls = s.url?.length ? s.url : urlsFor(listens.map((l) => l.port));
  const sessionPing = {
    intervalMs:
      s['stream-ping-interval-seconds'] !== undefined
        ? s['stream-ping-interval-seconds'] * 1000
        : DEFAULT_SESSION_PING_INTERVAL_MS,
    timeoutMs:
      s['stream-ping-timeout-seconds'] !== undefined
        ? s['stream-ping-timeout-seconds'] * 1000
        : DEFAULT_SESSION_PING_TIMEOUT_MS,
  };
  const deps = {
    store,
    distribution: distributor,
    log,
    clock,
    controllerUrls: provisionalUrls,
    caFingerprint: tls.caFingerprint,
    caCertPem: tls.caCertPem,
  };
  const app = buildApp(deps, {
    tls: { keyPem: tls.keyPem, certChainPem: tls.certChainPem },
    // A stream that ends (an agent stopped, or a connection found dead by the PINGs) is evaluated
    // at once: with its peers' failing probes it is what fails a dead box over quickly.
    connectRoutes: agentServiceRoutes({
      store,
      distributor,
      log,
      clock,
      overlayCidr: s['overlay-cidr'],
      heartbeatIntervalMs,
      onReport: refreshSoon,
      onStreamClosed: refreshSoon,
    }),
    connectContextValues: agentContextValues,
    sessionPing,
    health: {
      monitor: healthView,
      metrics,
      ...(s['metrics-token'] !== undefined ? { metricsToken: s['metrics-token'] } : {}),
    },
    ui: { events: { hub: uiEvents } },
  });
  // Streams end before the server waits for connections to drain.
  app.addHook('preClose', async () => {
    healthMonitor.stop();
    if (refreshTimer) clearTimeout(refreshTimer);
    await replication?.stop();
    await distributor.stop();
  });

  // The first address is fastify's own server; every further one (one per network the host sits
  // on) gets its own HTTPS server with the same TLS identity, handing each request to the same
  // fastify router (REST API and the agents' Connect service alike). A node server listens once.
  const extra: ExtraListener[] = [];
  // Closed after the preClose hook above has ended the streams, while fastify closes its own server.
  app.addHook('preClose', async () => {
    await Promise.all(extra.map((x) => x.close()));
  });
  const ports: number[] = [];
  let index = 0;
  try {
    await app.listen({ host: listens[0]!.host, port: listens[0]!.port });
    const addr = app.server.address();
    ports.push(typeof addr === 'object' && addr ? addr.port : listens[0]!.port);
    for (index = 1; index < listens.length; index++) {
      const x = await listenExtra(app, tls, listens[index]!, {
        ...sessionPing,
        log: log.child({ component: 'keepalive' }),
      });
      extra.push(x);
      ports.push(x.port);
    }
  } catch (e) {
    const which = s.listen.length > 1 ? `listen[${index}]` : 'listen';
    await Promise.all(extra.map((x) => x.close())).catch(() => undefined);
    await app.close().catch(() => undefined); // also stops the distributor (preClose)
    await distributor.stop().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw new CrosslinkError(
      'config_invalid',
      `${which}: cannot listen on ${s.listen[index]}: ${(e as Error).message}`,
      [{ path: which, message: (e as Error).message }],
      { cause: e },
    );
  }
  // Health evaluation runs once: here, or on the PostgreSQL replica that holds leadership.
  if (replication)
    replication.lead((isLeader) =>
      shared ? shared.lead(isLeader) : isLeader ? healthMonitor.start() : healthMonitor.stop(),
    );
  else healthMonitor.start();
  const auditSyslog = await startAuditSyslog(s, store, log);
  const port = ports[0]!;
  // With port 0 (tests) the real ports are known only now.
  if (listens.some((l) => l.port === 0) && !s.url?.length) deps.controllerUrls = urlsFor(ports);
  const listenUrls = listens.map((l, i) => `https://${l.host.includes(':') ? `[${l.host}]` : l.host}:${ports[i]}`);
  const listenUrl = listenUrls[0]!;
  print(
    `crosslink controller listening on ${listenUrls.join(', ')} (agents and CLI: ${deps.controllerUrls.join(', ')})\nCA fingerprint: ${tls.caFingerprint}\n`,
  );
  log.info(
    { listen: listenUrls, urls: deps.controllerUrls, caFingerprint: tls.caFingerprint, database: store.kind },
    'controller started',
  );

  let closing: Promise<void> | null = null;
  let markClosed!: () => void;
  const closed = new Promise<void>((r) => {
    markClosed = r;
  });
  const onSignal = (sig: NodeJS.Signals) => {
    log.info({ signal: sig }, 'shutting down');
    void close();
  };
  async function close(): Promise<void> {
    closing ??= (async () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      try {
        await auditSyslog?.stop();
        await app.close();
      } finally {
        await store.close().catch((e: unknown) => log.error({ err: e }, 'closing the store failed'));
        log.info('controller stopped');
        markClosed();
      }
    })();
    return closing;
  }
  if (opts.handleSignals ?? true) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  return {
    url: deps.controllerUrls[0]!,
    urls: deps.controllerUrls,
    listenUrl,
    listenUrls,
    port,
    ports,
    caFingerprint: tls.caFingerprint,
    dataDir,
    store,
    app,
    monitor: healthMonitor,
    closed,
    close,
  };
}

/** `--syslog URL`: the audit log's new entries to a syslog receiver (controller/audit/syslog.ts). */
async function startAuditSyslog(
  s: ResolvedSettings,
  store: Store,
  log: Logger,
): Promise<{ stop(): Promise<void> } | null> {
  if (!s.syslog) return null;
  const exporter = new SyslogExporter({
    target: parseSyslogUrl(s.syslog, 'syslog'),
    ...(s['syslog-ca'] ? { caFile: s['syslog-ca'], caFileOption: 'syslog-ca' } : {}),
    log,
  });
  exporter.start();
  const forwarder = new AuditSyslogForwarder({ store, send: (m) => exporter.send(m), hostname: hostname(), log });
  await forwarder.start();
  return {
    async stop() {
      forwarder.stop();
      await forwarder.tick(); // the entries of the last second, shutdown's own included
      await exporter.flushed(1000);
      exporter.close();
    },
  };
}

/**
 * A subnet changing hands, as a history event "subnet:NAME": ok while its primary serves it,
 * degraded while a standby does or while its boxes choose among themselves (none healthy to the
 * controller), down while nobody can.
 */
export function handoverEvent(h: Handover, atMs: number): HealthEvent {
  const stateOf = (role: Handover['role'], isUnconfirmed: boolean) =>
    isUnconfirmed || role === 'standby' ? 'degraded' : role === 'primary' ? 'ok' : 'down';
  const list = h.unhealthy.join(', ');
  const instead = h.from && h.from !== h.to ? ` instead of ${h.from}` : '';
  const reason =
    h.to === ''
      ? `${h.subnet}: no agent can serve it now (was ${h.from})${list ? ` (not serving: ${list})` : ''}`
      : h.isUnconfirmed
        ? `${h.subnet}: its boxes choose which serves it, none healthy to the controller (unhealthy: ${list}); ${h.to} (${h.role}) first${instead}`
        : `${h.subnet}: now served by ${h.to} (${h.role})${instead}${list ? ` (not serving: ${list})` : ''}`;
  return {
    subject: `subnet:${h.subnet}`,
    kind: 'subnet',
    from: stateOf(h.fromRole, h.wasUnconfirmed),
    to: stateOf(h.role, h.isUnconfirmed),
    atMs,
    reason,
  };
}
