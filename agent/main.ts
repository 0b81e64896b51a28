// The agent's composition root: state dir and keys, enrollment, fail-static start from the saved
// config, the config stream, reports, the local status endpoint, and signals. Everything it wires
// is passed in (AgentDeps), so tests run the whole agent against a fake host and a fake controller.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { create } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import { Backoff } from '../lib/backoff.js';
import type { Clock } from '../lib/clock.js';
import { CrosslinkError, isCrosslinkError } from '../lib/errors.js';
import { parseJoinToken } from '../lib/join-token.js';
import { ApplyErrorSchema, PeerStatusSchema, type AgentConfig } from '../proto/gen/crosslink/v1/agent_pb.js';
import type { ControlClient, UnderlayEndpoint } from './control/client.js';
import type { Host, WireGuardMode } from './host/ports.js';
import { countConfigError, createAgentMetrics, createStatusServer, parseListenAddress, type AgentMetrics, type AgentStatus, type PeerStatusView, type StatusServer } from './health/status-server.js';
import type { AgentSettings, FirewallRenderer } from './reconcile/desired.js';
import { Reconciler, realTimers, type ApplyFailure, type Timers } from './reconcile/loop.js';
import { HandshakeStarter } from './reconcile/handshake.js';
import { teardown } from './reconcile/teardown.js';
import { enrollmentUrls, StateDir, type Enrollment } from './state.js';
import { systemClock } from '../lib/clock.js';
import { createLinuxHost, type LinuxHost } from './host/linux/host.js';
import { ProcessRunner } from './host/linux/run.js';
import { detectWireGuardMode as probeWireGuardMode } from './host/linux/wireguard.js';
import { renderFirewall } from './host/firewall-render.js';
import { createControlClient } from './control/connect.js';
import { watchHostEvents } from './reconcile/events.js';
import { Prober } from './health/prober.js';
import { osLocalAddresses } from './health/sockets.js';

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
}

export interface ControlClientFactory {
  (opts: { controllerUrls: readonly string[]; caFingerprint: string; credential?: string; log: Logger; clock: Clock }): ControlClient;
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

export const DEFAULT_REPORT_INTERVAL_MS = 10_000;
const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The host name as an agent name ("Leeds_GW.example" -> "leeds-gw"), or "" if nothing is left. */
/** The name before enrolment: --name, else the name the join token was made for, else the host's. */
function configuredName(opts: Pick<AgentRunOptions, 'name' | 'join'>): string {
  if (opts.name) return opts.name;
  try {
    if (opts.join) return parseJoinToken(opts.join).agentName ?? defaultAgentName();
  } catch {
    // A malformed token is reported by enroll() with its reason.
  }
  return defaultAgentName();
}

export function defaultAgentName(host = hostname()): string {
  return host.split('.')[0]!.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
}

// Failures of enrollment that another attempt cannot fix.
const PERMANENT = new Set(['join_token_invalid', 'protocol_mismatch', 'config_invalid', 'invalid_request', 'unauthenticated', 'forbidden']);

function errorCode(e: unknown): string | undefined {
  if (isCrosslinkError(e)) return e.code;
  const c = (e as { code?: unknown })?.code;
  return typeof c === 'string' ? c : undefined;
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((res) => {
  const h = setTimeout(res, ms);
  signal.addEventListener('abort', () => { clearTimeout(h); res(); }, { once: true });
});

async function enroll(opts: AgentRunOptions, deps: AgentDeps, state: StateDir, publicKey: string, signal: AbortSignal): Promise<Enrollment | null> {
  if (!opts.join) {
    throw new CrosslinkError('config_invalid', `not enrolled yet: give a join token (--join or "join:" in the config file); ${state.dir} holds no credential`, [{ path: 'join', message: 'required for the first run' }]);
  }
  const token = parseJoinToken(opts.join);
  // The name the token was made for wins over the host name; an explicit --name must agree with it.
  const name = opts.name || token.agentName || defaultAgentName();
  if (token.agentName && name !== token.agentName) {
    throw new CrosslinkError('config_invalid', `the join token was made for agent "${token.agentName}", not "${name}": drop --name or ask for a token for "${name}"`, [{ path: 'name', message: 'does not match the join token' }]);
  }
  if (!NAME_RE.test(name)) throw new CrosslinkError('config_invalid', `agent name "${name}" is not lowercase [a-z0-9-], 1-63 chars`, [{ path: 'name', message: 'invalid name' }]);
  const log = deps.log.child({ controller: token.controllerUrls.join(' ') });
  const client = deps.createControlClient({ controllerUrls: token.controllerUrls, caFingerprint: token.caFingerprint, log, clock: deps.clock });
  const backoff = new Backoff({ initialMs: 1_000, maxMs: 60_000, jitter: 0.5 });
  while (!signal.aborted) {
    try {
      const res = await client.enroll(token.secret, { name, publicKey, endpoint: opts.endpoint, endpoints: opts.endpoints, isRelay: opts.isRelay, advertisedSubnets: opts.advertise, agentVersion: opts.agentVersion });
      const e: Enrollment = {
        controllerUrl: token.controllerUrls[0]!, controllerUrls: token.controllerUrls, caFingerprint: token.caFingerprint, credential: res.credential, agentId: res.agentId,
        name, overlayAddress: res.overlayAddress, protocolVersion: res.protocolVersion, enrolledAtMs: deps.clock.nowMs(),
      };
      await state.saveEnrollment(e);
      log.info({ agent: name, agentId: res.agentId, overlay: res.overlayAddress }, 'enrolled');
      return e;
    } catch (err) {
      const code = errorCode(err);
      if (code && PERMANENT.has(code)) throw err;
      const delayMs = backoff.next();
      log.warn({ err: (err as Error).message, retryInMs: delayMs }, 'enrollment failed; retrying');
      await sleep(delayMs, signal);
    }
  }
  return null;
}

/** Starts the agent; resolves once it runs (the saved config already applied). */
export async function startAgent(opts: AgentRunOptions, deps: AgentDeps): Promise<RunningAgent> {
  const { clock, host } = deps;
  const log = deps.log;
  const state = new StateDir(resolve(opts.stateDir), log);
  await state.init();
  const keys = await state.keys();
  let enrollment = await state.loadEnrollment();
  const name = enrollment?.name ?? configuredName(opts);
  if (enrollment && opts.name && opts.name !== enrollment.name) {
    log.warn({ configured: opts.name, enrolled: enrollment.name }, 'name differs from the enrolled name; keeping the enrolled one');
  }
  const mode = opts.wireguard === 'auto' ? await deps.detectWireguardMode() : opts.wireguard;
  const settings: AgentSettings = {
    interfaceName: opts.interfaceName, listenPort: opts.listenPort, privateKeyFile: keys.privateKeyFile,
    publicKey: keys.publicKey, mtu: opts.mtu, wireguardMode: mode,
  };
  const alog = log.child({ agent: name });
  const reconciler = new Reconciler({
    host, clock, log: alog.child({ part: 'reconcile' }), settings, renderFirewall: deps.renderFirewall,
    resyncIntervalMs: opts.resyncIntervalMs, timers: deps.timers,
  });
  // A new link whose two first handshakes crossed would wait 5 s for WireGuard's retry (handshake.ts).
  new HandshakeStarter({ reconciler, wireguard: host.wireguard, timers: deps.timers ?? realTimers, log: alog.child({ part: 'handshake' }) });

  const startedAtMs = clock.nowMs();
  const conn = { isConnected: false, staleSinceMs: startedAtMs, reason: 'not connected yet' as string | null };
  let control: ControlClient | null = null;
  let savedHash = '';
  // The config being enforced, as received (saved once it has been applied without errors).
  let lastConfig: AgentConfig | null = await state.loadConfig();

  // Peer echo through the tunnel and path probes; a round whose verdicts changed is reported at once.
  let lastRoundKey = '';
  const prober = deps.createProber?.({
    log: alog.child({ part: 'probe' }), clock,
    onRound: () => {
      const names = Object.values(reconciler.desiredState?.peerNames ?? {}).sort();
      const key = [
        ...names.map((n) => `${n}:${prober!.peerFields(n).isReachable}`),
        ...prober!.probeResults().map((x) => `${x.name}:${x.isOk}`),
      ].join(',');
      if (key !== lastRoundKey) {
        lastRoundKey = key;
        void reportNow();
      }
    },
  }) ?? null;

  const readCounters = async (): Promise<Record<string, { packets: number; bytes: number }>> => {
    try {
      const c = await host.firewall.counters?.();
      return Object.fromEntries(Object.entries(c ?? {}).map(([k, v]) => [k, { packets: Number(v.packets), bytes: Number(v.bytes) }]));
    } catch {
      return {};
    }
  };

  const readPeers = async (): Promise<PeerStatusView[]> => {
    let dev;
    try {
      dev = await host.wireguard.observe(opts.interfaceName);
    } catch {
      return [];
    }
    const names = reconciler.desiredState?.peerNames ?? {};
    const nowMs = clock.nowMs();
    return (dev?.peers ?? []).map((p) => ({
      ...(prober ? { probe: prober.peerFields(names[p.publicKey] ?? '') } : {}),
      name: names[p.publicKey] ?? p.publicKey.slice(0, 8),
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      latestHandshakeUnix: p.latestHandshakeUnix,
      latestHandshake: p.latestHandshakeUnix > 0 ? new Date(p.latestHandshakeUnix * 1000).toISOString() : null,
      handshakeAgeSeconds: p.latestHandshakeUnix > 0 ? Math.max(0, Math.round(nowMs / 1000 - p.latestHandshakeUnix)) : null,
      rxBytes: Number(p.rxBytes),
      txBytes: Number(p.txBytes),
    })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  };

  const status = async (): Promise<AgentStatus> => {
    const r = reconciler.status;
    const nowMs = clock.nowMs();
    return {
      name,
      version: opts.agentVersion,
      interface: opts.interfaceName,
      publicKey: keys.publicKey,
      overlayAddress: reconciler.desiredState?.addresses[0] ?? enrollment?.overlayAddress ?? '',
      controller: {
        url: enrollment ? enrollmentUrls(enrollment).join(' ') : '',
        isConnected: conn.isConnected,
        staleSince: conn.isConnected ? null : new Date(conn.staleSinceMs).toISOString(),
        staleSeconds: conn.isConnected ? 0 : Math.max(0, (nowMs - conn.staleSinceMs) / 1000),
        reason: conn.isConnected ? null : conn.reason,
      },
      generation: { seen: Number(r.generationSeen), applied: Number(r.generationApplied), desired: Number(r.generationDesired) },
      lastApply: r.lastApplyAtMs === null ? null : { at: new Date(r.lastApplyAtMs).toISOString(), durationMs: r.lastApplyDurationMs ?? 0, steps: r.lastStepCount },
      isApplied: r.generationDesired > 0n && r.generationApplied === r.generationDesired && r.errors.length === 0,
      errors: r.errors,
      peers: await readPeers(),
      probes: (prober?.probeResults() ?? []).map((x) => ({
        name: x.name, isOk: x.isOk, detail: x.detail, rttMs: x.rttMs,
        checkedAt: x.checkedAtUnixMs > 0n ? new Date(Number(x.checkedAtUnixMs)).toISOString() : null,
      })),
      firewallCounters: await readCounters(),
    };
  };

  const metrics = createAgentMetrics(status);

  // Reports: one at a time; a request while one is in flight is folded into one more afterwards.
  let reporting: Promise<void> | null = null;
  let isReportPending = false;
  const sendReport = async (): Promise<void> => {
    if (!control) return;
    const r = reconciler.status;
    const peers = await readPeers();
    const toErr = (e: ApplyFailure) => create(ApplyErrorSchema, { step: e.step, command: e.command, exitCode: e.exitCode, stderr: e.stderr.slice(0, 4096), isTerminal: e.isTerminal });
    await control.report({
      generationApplied: r.generationApplied,
      generationSeen: r.generationSeen,
      applyErrors: r.errors.map(toErr),
      peers: peers.map((p) => create(PeerStatusSchema, {
        name: p.name, publicKey: p.publicKey, endpoint: p.endpoint, latestHandshakeUnix: BigInt(p.latestHandshakeUnix),
        rxBytes: BigInt(p.rxBytes), txBytes: BigInt(p.txBytes),
        ...(p.probe ? { isProbed: p.probe.isProbed, isReachable: p.probe.isReachable, rttMs: p.probe.rttMs, lossRatio: p.probe.lossRatio } : {}),
      })),
      advertisedSubnets: opts.advertise,
      agentVersion: opts.agentVersion,
      probeResults: prober?.probeResults() ?? [],
      agentTimeUnixMs: BigInt(clock.nowMs()),
    });
  };
  const reportNow = (): Promise<void> => {
    if (reporting) {
      isReportPending = true;
      return reporting;
    }
    reporting = sendReport()
      .catch((err: unknown) => alog.debug({ err: (err as Error).message }, 'report failed (controller unreachable?)'))
      .finally(() => {
        reporting = null;
        if (isReportPending) {
          isReportPending = false;
          void reportNow();
        }
      });
    return reporting;
  };

  let lastReportedKey = '';
  reconciler.onApply((o) => {
    metrics.observeApply(o);
    // Probe what is enforced: the config this outcome belongs to.
    if (prober && lastConfig && lastConfig.contentHash === o.contentHash) prober.setConfig(lastConfig);
    if (o.errors.length === 0 && o.contentHash !== savedHash) {
      const cfg = lastConfig;
      if (cfg && cfg.contentHash === o.contentHash) {
        savedHash = o.contentHash;
        state.saveConfig(cfg).catch((err: unknown) => alog.error({ err }, 'could not save the applied config'));
      }
    }
    // Report after every apply that changed something or whose outcome differs from the last report.
    const key = `${o.generation}:${o.errors.map((e) => `${e.step}/${e.exitCode}`).join(',')}`;
    if (o.steps.length > 0 || key !== lastReportedKey) {
      lastReportedKey = key;
      void reportNow();
    }
  });

  // Status endpoint first: it must answer even while enrollment or the controller hangs.
  let server: StatusServer | null = null;
  let statusAddress: { host: string; port: number } | null = null;
  if (opts.statusListen) {
    const addr = parseListenAddress(opts.statusListen);
    if (!addr) throw new CrosslinkError('config_invalid', `status-listen "${opts.statusListen}" is not host:port`, [{ path: 'status-listen', message: 'not host:port' }]);
    server = createStatusServer({ getStatus: status, metrics, log: alog });
    statusAddress = await server.listen(addr.host, addr.port);
    alog.info({ address: `${statusAddress.host}:${statusAddress.port}` }, 'status endpoint listening');
  }

  // Fail static: enforce the last applied config before anything talks to the controller.
  if (lastConfig) {
    const res = reconciler.setDesired(lastConfig);
    if (res.error) countConfigError(metrics);
    savedHash = lastConfig.contentHash;
    const out = await reconciler.reconcile('startup');
    alog.info({ generation: String(lastConfig.generation), steps: out?.steps.length ?? 0, errors: out?.errors.length ?? 0 }, 'applied the saved config before contacting the controller');
  }
  reconciler.start();
  prober?.start();
  // Fail static for gateways too, but only once the controller has stayed away for a while.
  const gatewayTimer = setTimeout(() => {
    if (!conn.isConnected) alog.warn('controller still unreachable; claiming the saved config\'s gateway addresses');
    reconciler.allowGatewayClaim();
  }, opts.gatewayClaimAfterMs ?? 60_000);
  gatewayTimer.unref();
  const events = deps.watchHostEvents?.({ interfaceName: opts.interfaceName, kick: () => reconciler.kick(), log: alog });

  const abort = new AbortController();
  let watch: { stop(): Promise<void> } | null = null;
  let reportTimer: NodeJS.Timeout | null = null;

  const connect = async () => {
    if (!enrollment) {
      enrollment = await enroll({ ...opts, name }, deps, state, keys.publicKey, abort.signal);
      if (!enrollment) return;
    }
    control = deps.createControlClient({
      controllerUrls: enrollmentUrls(enrollment), caFingerprint: enrollment.caFingerprint, credential: enrollment.credential,
      log: alog.child({ part: 'control' }), clock,
    });
    watch = control.watch({
      onConfig: (cfg) => {
        // The controller has spoken: this config says whether the box serves, so its gateways
        // may be claimed (or released). The config first: a claim is only ever made for a desired
        // state the controller sent (see Reconciler.runOnce).
        const res = reconciler.setDesired(cfg);
        reconciler.allowGatewayClaim();
        if (res.error) {
          countConfigError(metrics);
          void reportNow();
        } else {
          lastConfig = cfg;
        }
      },
      onState: (s) => {
        if (s.isConnected && !conn.isConnected) alog.info('config stream connected');
        if (!s.isConnected && conn.isConnected) alog.warn({ reason: s.reason }, 'config stream down; enforcing the last config');
        if (!s.isConnected && conn.isConnected) conn.staleSinceMs = s.atMs;
        conn.isConnected = s.isConnected;
        conn.reason = s.isConnected ? null : (s.reason ?? 'disconnected');
        if (s.isConnected) void reportNow();
      },
    }, {
      knownContentHash: () => reconciler.desiredState?.contentHash ?? '',
      endpoint: opts.endpoint,
      endpoints: opts.endpoints,
      isRelay: opts.isRelay,
      advertisedSubnets: opts.advertise,
      agentVersion: opts.agentVersion,
    });
    reportTimer = setInterval(() => void reportNow(), opts.reportIntervalMs ?? DEFAULT_REPORT_INTERVAL_MS);
    reportTimer.unref();
  };
  // Enrollment may wait for the controller; the agent is already running meanwhile.
  const connecting = connect().catch((err: unknown) => {
    alog.error({ err: (err as Error).message, code: errorCode(err) }, 'cannot reach the controller for good; still enforcing the last config');
    conn.reason = (err as Error).message;
    throw err;
  });
  connecting.catch(() => undefined);

  let isStopped = false;
  return {
    reconciler,
    metrics,
    statusAddress,
    status,
    reportNow,
    connecting,
    async stop() {
      if (isStopped) return;
      isStopped = true;
      abort.abort();
      if (reportTimer) clearInterval(reportTimer);
      events?.stop();
      prober?.stop();
      clearTimeout(gatewayTimer);
      await connecting.catch(() => undefined);
      await watch?.stop();
      // Connect clients hold an HTTP/2 session open; release it (other clients have no close()).
      await (control as (ControlClient & { close?: () => Promise<void> }) | null)?.close?.().catch(() => undefined);
      await reconciler.stop();
      await reporting;
      await server?.close();
      alog.info('agent stopped; the data plane stays in place');
    },
  };
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
      agent.stop().then(() => rejectRun(err), rejectRun);
    });
  });
}

/** `crosslink agent down`: removes the interface, Crosslink's routes and its nft table. */
export async function agentDown(opts: { interfaceName: string }, deps: { host: Host; log: Logger }): Promise<ApplyFailure[]> {
  const errors = await teardown(deps.host, opts.interfaceName);
  if (errors.length === 0) deps.log.info({ interface: opts.interfaceName }, 'removed the interface, routes and nft table');
  return errors;
}

/** The real adapters: Linux host over wg/ip/nft, Connect RPC client, the nft renderer, and host
 *  events from the host's own `ip monitor` (the one its route and link reads are cached behind). */
export async function realAgentDeps(log: Logger): Promise<AgentDeps & { host: LinuxHost }> {
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
    createProber: ({ log: plog, clock, onRound }) => new Prober({ runner, clock, log: plog, localAddresses: osLocalAddresses, onRound }),
  };
}

/** The real host alone (for `agent down`). */
export function realHost(): LinuxHost {
  return createLinuxHost({ runner: new ProcessRunner() });
}
