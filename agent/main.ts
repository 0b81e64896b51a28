// The agent's composition root: wires the state dir and keys, the reconciler, the prober, the
// status (status-reader.ts) and its endpoint, the reports (reporter.ts), the saved config
// (config-saver.ts, applied first: fail static) and the controller (controller-link.ts), and
// handles signals. Everything it wires is passed in (AgentDeps), so tests run the whole agent
// against a fake host and a fake controller.
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../lib/clock.js';
import { CrosslinkError } from '../lib/errors.js';
import type { AgentConfig } from '../proto/gen/crosslink/v1/agent_pb.js';
import { ConfigSaver } from './config-saver.js';
import type { ControlClient, UnderlayEndpoint } from './control/client.js';
import { createControlClient } from './control/connect.js';
import { ControllerLink } from './controller-link.js';
import { configuredName } from './enroll.js';
import { Prober } from './health/prober.js';
import { osLocalAddresses } from './health/sockets.js';
import {
  countConfigError,
  createAgentMetrics,
  createStatusServer,
  parseListenAddress,
  type AgentMetrics,
  type AgentStatus,
} from './health/status-server.js';
import { renderFirewall } from './host/firewall-render.js';
import { createLinuxHost, type LinuxHost } from './host/linux/host.js';
import { ProcessRunner } from './host/linux/run.js';
import { detectWireGuardMode as probeWireGuardMode } from './host/linux/wireguard.js';
import type { Host, WireGuardMode } from './host/ports.js';
import type { AgentSettings, FirewallRenderer } from './reconcile/desired.js';
import { watchHostEvents } from './reconcile/events.js';
import { HandshakeStarter } from './reconcile/handshake.js';
import { FailoverEngine, type LivenessPort } from './failover/engine.js';
import { createLivenessPort } from './liveness/failover-port.js';
import { Reconciler, realTimers, type ApplyFailure, type Timers } from './reconcile/loop.js';
import { teardown } from './reconcile/teardown.js';
import { Reporter } from './reporter.js';
import { StateDir } from './state.js';
import { ClockSkew } from './control/clock-skew.js';
import { StatusReader, type ControllerConnection } from './status-reader.js';
import { FlowCollector, type FlowCollectorOptions } from './flows/collector.js';
import { startFlowPipeline } from './flows/pipeline.js';
import { createLiveTracer, type LiveTracerFactory } from './trace/real-tracer.js';
import type { LiveTracer } from './trace/live-tracer.js';

export type WireGuardChoice = WireGuardMode | 'auto';

/** Everything `crosslink agent run` takes, after flags and the config file are merged. */
export interface AgentRunOptions {
  stateDir: string;
  /** Join token; needed only until the agent has enrolled. */
  join?: string;
  /** Agent name; defaults to the enrolled name, then the host name. */
  name?: string;
  interfaceName: string;
  listenPort: number;
  /** Underlay "host:port" other boxes reach this one at; "" = none. With named underlays, the first. */
  endpoint: string;
  /** One per named underlay; empty when the box has only a bare HOST:PORT (the underlay "default"). */
  endpoints?: UnderlayEndpoint[];
  /** The box consents to relay other boxes' encrypted datagrams between its underlays. */
  isRelay?: boolean;
  advertise: string[];
  /** "host:port" of the local status endpoint; "" = off. */
  statusListen: string;
  wireguard: WireGuardChoice;
  mtu: number;
  agentVersion: string;
  resyncIntervalMs?: number;
  reportIntervalMs?: number;
  /** With the controller unreachable this long after start, the saved config's virtual gateways
   *  are claimed anyway (fail static). Default 60 s. */
  gatewayClaimAfterMs?: number;
  /** The flow log's size limit (STATE_DIR/flows.jsonl and its one rotation); 0: no flow log file. */
  flowLogMaxBytes?: number;
  /** IPFIX collectors ("HOST:PORT") the flow records go to, over UDP. */
  ipfixCollectors?: string[];
  /** RFC 5424 syslog of the flow records (udp://, tcp:// or tls://HOST:PORT), and its CA file. */
  syslog?: string;
  syslogCa?: string;
}

export interface ControlClientFactory {
  (opts: {
    controllerUrls: readonly string[];
    caFingerprint: string;
    credential?: string;
    log: Logger;
    clock: Clock;
  }): ControlClient;
}

export interface AgentDeps {
  host: Host;
  createControlClient: ControlClientFactory;
  renderFirewall: FirewallRenderer;
  clock: Clock;
  log: Logger;
  /** Which WireGuard to use when the choice is "auto" (the real one: linux/wireguard.ts detectWireGuardMode). */
  detectWireguardMode: () => Promise<WireGuardMode>;
  /** Starts watching the host for changes to what the agent owns; calls kick() on each. Absent: the
   *  resync alone notices drift. */
  watchHostEvents?: (opts: { interfaceName: string; kick: () => void; log: Logger }) => { stop(): void };
  timers?: Timers;
  /** Builds the prober (peer and path probes). Absent: no probes (reports carry none). */
  createProber?: (opts: { log: Logger; clock: Clock; onRound: () => void }) => Prober;
  /** Builds the data-plane liveness (echo through the tunnel, LAN advertisements) that failover at
   *  the edges runs on. Absent: serving groups stay with their first candidate (the controller's order). */
  createLiveness?: (opts: { log: Logger; clock: Clock; timers: Timers }) => LivenessPort;
  /** Builds the flow log's collector (conntrack events of the flows the rules admitted). Absent:
   *  no flow records. */
  createFlowCollector?: (opts: Omit<FlowCollectorOptions, 'runner'>) => Pick<FlowCollector, 'start' | 'stop'>;
  /** Builds the live tracer (`crosslink trace --live`). Absent: trace requests are ignored (the
   *  controller lists the box as not answering). */
  createLiveTracer?: LiveTracerFactory;
}

export interface RunningAgent {
  reconciler: Reconciler;
  metrics: AgentMetrics;
  /** Where the status endpoint listens, when it does. */
  statusAddress: { host: string; port: number } | null;
  status(): Promise<AgentStatus>;
  /** Sends a report now (also done after every apply and periodically). */
  reportNow(): Promise<void>;
  /** Settles once enrolled and watching the config stream; rejects on a permanent failure. */
  connecting: Promise<void>;
  /** Stops the agent. The data plane stays as it is: traffic keeps flowing. */
  stop(): Promise<void>;
}

export { DEFAULT_REPORT_INTERVAL_MS } from './controller-link.js';
export { defaultAgentName } from './enroll.js';

/** Starts the agent; resolves once it runs (the saved config already applied). */
export async function startAgent(opts: AgentRunOptions, deps: AgentDeps): Promise<RunningAgent> {
  const { clock, host } = deps;
  const { state, keys, enrollment, name, log: alog, reconciler, settings } = await openAgent(opts, deps);
  const clockSkew = new ClockSkew();
  const connection: ControllerConnection = {
    isConnected: false,
    staleSinceMs: clock.nowMs(),
    reason: 'not connected yet',
  };
  const saver = new ConfigSaver({ state, log: alog }, await state.loadConfig());
  // Peer echo through the tunnel and path probes; a round whose verdicts changed is reported at once.
  const prober =
    deps.createProber?.({ log: alog.child({ part: 'probe' }), clock, onRound: () => reporter.afterProbeRound() }) ??
    null;
  // Failover at the edges: acts on the echo and the LAN, never waits for the controller.
  const liveness = deps.createLiveness?.({
    log: alog.child({ part: 'liveness' }),
    clock,
    timers: deps.timers ?? realTimers,
  });
  const failover = liveness
    ? new FailoverEngine({
        target: reconciler,
        liveness,
        addresses: async () => (await host.links.observeAll?.()) ?? [],
        clock,
        timers: deps.timers ?? realTimers,
        log: alog.child({ part: 'failover' }),
      })
    : null;

  const reader = new StatusReader({
    host,
    reconciler,
    prober,
    clock,
    name,
    publicKey: keys.publicKey,
    interfaceName: opts.interfaceName,
    agentVersion: opts.agentVersion,
    enrollment: () => link.enrollment,
    connection,
    clockSkew,
    enforcedConfig: () => saver.current,
  });
  const status = async () => {
    const s = await reader.status();
    const view = failover?.statusView();
    return view ? { ...s, failover: view } : s;
  };
  const metrics = createAgentMetrics(status);
  const reporter = new Reporter({
    control: () => link.control,
    reconciler,
    prober,
    peers: () => reader.peerReports(),
    firewallCounters: () => reader.countersNow(),
    clock,
    advertisedSubnets: opts.advertise,
    agentVersion: opts.agentVersion,
    log: alog,
  });
  const reportNow = () => reporter.reportNow();
  const tracer: LiveTracer | null =
    deps.createLiveTracer?.({
      log: alog.child({ part: 'trace' }),
      config: () => saver.current,
      ruleMarks: () => reconciler.desiredState?.firewall.ruleMarks,
      report: (r): Promise<void> => {
        const control: ControlClient | null = link.control;
        return control?.reportTrace ? control.reportTrace(r) : Promise.resolve();
      },
    }) ?? null;
  // A trace table left by a run that was killed mid-trace must not stay.
  await tracer
    ?.removeLeftovers()
    .catch((err: unknown) =>
      alog.warn({ err: (err as Error).message }, 'could not look for live-trace tables left behind'),
    );
  const link = new ControllerLink({
    opts,
    name,
    publicKey: keys.publicKey,
    state,
    enrollment,
    agentDeps: deps,
    log: alog,
    connection,
    reconciler,
    metrics,
    saver,
    reportNow: () => void reportNow(),
    clockSkew,
    settings,
    onTraceRequest: tracer ? (r) => tracer.handle(r) : undefined,
  });

  reconciler.onApply((o) => {
    metrics.observeApply(o);
    // Probe what is enforced: the config this outcome belongs to.
    const enforced = saver.configOf(o);
    if (prober && enforced) prober.setConfig(enforced);
    saver.afterApply(o);
    reporter.afterApply(o);
  });

  // Status endpoint first: it must answer even while enrollment or the controller hangs.
  const server = await listenForStatus(opts.statusListen, { getStatus: status, metrics, log: alog });
  await applySavedConfig(saver.current, reconciler, metrics, alog);
  reconciler.start();
  failover?.start();
  prober?.start();
  const flows = deps.createFlowCollector
    ? startFlowPipeline(opts, {
        box: name,
        marks: () => reconciler.desiredState?.firewall.ruleMarks,
        zones: () => reconciler.desiredState?.zones,
        createCollector: deps.createFlowCollector,
        log: alog,
      })
    : null;
  const gatewayTimer = claimGatewaysLater(opts.gatewayClaimAfterMs ?? 60_000, connection, reconciler, alog);
  const events = deps.watchHostEvents?.({
    interfaceName: opts.interfaceName,
    kick: () => reconciler.kick(),
    log: alog,
  });

  // Enrollment may wait for the controller; the agent is already running meanwhile.
  const connecting = link.start();
  connecting.catch(() => undefined);

  let isStopped = false;
  return {
    reconciler,
    metrics,
    statusAddress: server?.address ?? null,
    status,
    reportNow,
    connecting,
    async stop() {
      if (isStopped) return;
      isStopped = true;
      link.cancel();
      events?.stop();
      prober?.stop();
      await flows?.stop();
      await tracer?.stop();
      await failover?.stop();
      clearTimeout(gatewayTimer);
      await link.close();
      await reconciler.stop();
      await reporter.idle();
      await server?.close();
      alog.info('agent stopped; the data plane stays in place');
    },
  };
}

/** The state dir, keys and enrollment, the agent's name, and its reconciler (not started). */
async function openAgent(opts: AgentRunOptions, deps: AgentDeps) {
  const { clock, host, log } = deps;
  const state = new StateDir(resolve(opts.stateDir), log);
  await state.init();
  const keys = await state.keys();
  const enrollment = await state.loadEnrollment();
  const name = enrollment?.name ?? configuredName(opts);
  if (enrollment && opts.name && opts.name !== enrollment.name) {
    log.warn(
      { configured: opts.name, enrolled: enrollment.name },
      'name differs from the enrolled name; keeping the enrolled one',
    );
  }
  const mode = opts.wireguard === 'auto' ? await deps.detectWireguardMode() : opts.wireguard;
  const settings: AgentSettings = {
    interfaceName: opts.interfaceName,
    listenPort: opts.listenPort,
    privateKeyFile: keys.privateKeyFile,
    publicKey: keys.publicKey,
    mtu: opts.mtu,
    wireguardMode: mode,
  };
  const alog = log.child({ agent: name });
  const reconciler = new Reconciler({
    host,
    clock,
    log: alog.child({ part: 'reconcile' }),
    settings,
    renderFirewall: deps.renderFirewall,
    resyncIntervalMs: opts.resyncIntervalMs,
    timers: deps.timers,
  });
  // A new link whose two first handshakes crossed would wait 5 s for WireGuard's retry (handshake.ts).
  new HandshakeStarter({
    reconciler,
    wireguard: host.wireguard,
    timers: deps.timers ?? realTimers,
    log: alog.child({ part: 'handshake' }),
  });
  return { state, keys, enrollment, name, log: alog, reconciler, settings };
}

/** Fail static for gateways too, but only once the controller has stayed away for `afterMs`. */
function claimGatewaysLater(
  afterMs: number,
  connection: Readonly<ControllerConnection>,
  reconciler: Reconciler,
  log: Logger,
): NodeJS.Timeout {
  const timer = setTimeout(() => {
    if (!connection.isConnected)
      log.warn("controller still unreachable; claiming the saved config's gateway addresses");
    reconciler.allowGatewayClaim();
  }, afterMs);
  timer.unref();
  return timer;
}

/** Starts the local status endpoint when `listen` ("host:port") is set; null when it is "". */
async function listenForStatus(
  listen: string,
  o: Parameters<typeof createStatusServer>[0],
): Promise<{ address: { host: string; port: number }; close(): Promise<void> } | null> {
  if (!listen) return null;
  const addr = parseListenAddress(listen);
  if (!addr)
    throw new CrosslinkError('config_invalid', `status-listen "${listen}" is not host:port`, [
      { path: 'status-listen', message: 'not host:port' },
    ]);
  const server = createStatusServer(o);
  const address = await server.listen(addr.host, addr.port);
  o.log.info({ address: `${address.host}:${address.port}` }, 'status endpoint listening');
  return { address, close: () => server.close() };
}

/** Fail static: enforces the last applied config before anything talks to the controller. */
async function applySavedConfig(
  saved: AgentConfig | null,
  reconciler: Reconciler,
  metrics: AgentMetrics,
  log: Logger,
): Promise<void> {
  if (!saved) return;
  const res = reconciler.setDesired(saved);
  if (res.error) countConfigError(metrics);
  const out = await reconciler.reconcile('startup');
  log.info(
    { generation: String(saved.generation), steps: out?.steps.length ?? 0, errors: out?.errors.length ?? 0 },
    'applied the saved config before contacting the controller',
  );
}

/**
 * Runs the agent until SIGTERM/SIGINT, then stops it and leaves the data plane in place.
 * Rejects when it cannot start (bad settings, not enrolled and no token, a refused join token).
 */
export async function runAgent(opts: AgentRunOptions, deps: AgentDeps): Promise<void> {
  const agent = await startAgent(opts, deps);
  await new Promise<void>((resolveRun, rejectRun) => {
    const onSignal = (sig: NodeJS.Signals) => {
      deps.log.info({ signal: sig }, 'stopping');
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      agent.stop().then(resolveRun, rejectRun);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // A permanent enrollment failure ends the run (the service manager shows why).
    agent.connecting.catch((err: unknown) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      agent.stop().then(() => rejectRun(err instanceof Error ? err : new Error(String(err))), rejectRun);
    });
  });
}

/** `crosslink agent down`: removes the interface, Crosslink's routes and its nft table. */
export async function agentDown(
  opts: { interfaceName: string },
  deps: { host: Host; log: Logger },
): Promise<ApplyFailure[]> {
  const errors = await teardown(deps.host, opts.interfaceName);
  if (errors.length === 0)
    deps.log.info({ interface: opts.interfaceName }, 'removed the interface, routes and nft table');
  return errors;
}

/** The real adapters: Linux host over wg/ip/nft, Connect RPC client, the nft renderer, and host
 *  events from the host's own `ip monitor` (the one its route and link reads are cached behind). */
export function realAgentDeps(log: Logger): AgentDeps & { host: LinuxHost } {
  const runner = new ProcessRunner();
  const host = createLinuxHost({ runner });
  const feed = host.events;
  return {
    host,
    createControlClient,
    renderFirewall,
    clock: systemClock,
    log,
    detectWireguardMode: () => probeWireGuardMode(runner),
    watchHostEvents: feed ? (o) => watchHostEvents({ ...o, feed }) : undefined,
    createProber: ({ log: plog, clock, onRound }) =>
      new Prober({ runner, clock, log: plog, localAddresses: osLocalAddresses, onRound }),
    createLiveness: (o) => createLivenessPort(o),
    createFlowCollector: (o) => new FlowCollector({ ...o, runner }),
    createLiveTracer: (o) => createLiveTracer({ ...o, runner }),
  };
}

/** The real host alone (for `agent down`). */
export function realHost(): LinuxHost {
  return createLinuxHost({ runner: new ProcessRunner() });
}
