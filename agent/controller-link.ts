// The agent's tie to the controller: enrollment (once, retried until the controller answers), then
// the config stream, whose configs go to the reconciler and whose state the status shows, and the
// periodic report. The agent runs without it meanwhile, enforcing the last config (fail static).
import type { Logger } from 'pino';
import type { AgentConfig, TraceRequest } from '../proto/gen/crosslink/v1/agent_pb.js';
import type { ControlClient } from './control/client.js';
import type { ClockSkew } from './control/clock-skew.js';
import { CLOCK_SKEW_BOUND_MS } from './host/firewall-time.js';
import type { ConfigSaver } from './config-saver.js';
import { enroll, errorCode } from './enroll.js';
import { countConfigError, type AgentMetrics } from './health/status-server.js';
import type { AgentDeps, AgentRunOptions } from './main.js';
import type { Reconciler } from './reconcile/loop.js';
import type { AgentSettings } from './reconcile/desired.js';
import type { ControllerConnection } from './status-reader.js';
import { enrollmentUrls, type Enrollment, type StateDir } from './state.js';

export const DEFAULT_REPORT_INTERVAL_MS = 10_000;

export interface ControllerLinkDeps {
  opts: AgentRunOptions;
  /** The agent's name (enrolled, or the one to enroll with). */
  name: string;
  publicKey: string;
  state: StateDir;
  /** The enrollment loaded from the state dir; null: enroll first. */
  enrollment: Enrollment | null;
  /** The agent's deps; enrollment logs through their log (naming the controller). */
  agentDeps: Pick<AgentDeps, 'createControlClient' | 'clock' | 'log'>;
  /** The agent's own log. */
  log: Logger;
  /** Updated as the config stream comes and goes; the status shows it. */
  connection: ControllerConnection;
  reconciler: Reconciler;
  metrics: AgentMetrics;
  saver: ConfigSaver;
  reportNow(): void;
  /** This box's clock against the controller's (heartbeats), and the settings its skew goes to. */
  clockSkew: ClockSkew;
  settings: AgentSettings;
  /** A live trace the controller asks for (agent/trace/live-tracer.ts); absent: ignored. */
  onTraceRequest?(request: TraceRequest, control: ControlClient): void;
}

export class ControllerLink {
  private currentEnrollment: Enrollment | null;
  private client: ControlClient | null = null;
  private watch: { stop(): Promise<void> } | null = null;
  private reportTimer: NodeJS.Timeout | null = null;
  private readonly abort = new AbortController();
  private connecting: Promise<void> | null = null;

  constructor(private readonly deps: ControllerLinkDeps) {
    this.currentEnrollment = deps.enrollment;
  }

  get enrollment(): Enrollment | null {
    return this.currentEnrollment;
  }

  /** The client to the controller; null until enrolled. */
  get control(): ControlClient | null {
    return this.client;
  }

  /** Enrolls if need be and watches the config stream; settles once watching, rejects on a
   *  permanent failure (logged, and shown as the reason the controller is not connected). */
  start(): Promise<void> {
    this.connecting ??= this.connect().catch((err: unknown) => {
      this.deps.log.error(
        { err: (err as Error).message, code: errorCode(err) },
        'cannot reach the controller for good; still enforcing the last config',
      );
      this.deps.connection.reason = (err as Error).message;
      throw err;
    });
    return this.connecting;
  }

  /** Stops enrolling and reporting at once; `close()` then releases the stream and client. */
  cancel(): void {
    this.abort.abort();
    if (this.reportTimer) clearInterval(this.reportTimer);
  }

  async close(): Promise<void> {
    await this.connecting?.catch(() => undefined);
    await this.watch?.stop();
    // Connect clients hold an HTTP/2 session open; release it (other clients have no close()).
    await this.client?.close?.().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const { opts, log } = this.deps;
    const { clock } = this.deps.agentDeps;
    if (!this.currentEnrollment) {
      this.currentEnrollment = await enroll(
        { ...opts, name: this.deps.name },
        this.deps.agentDeps,
        this.deps.state,
        this.deps.publicKey,
        this.abort.signal,
      );
      if (!this.currentEnrollment) return;
    }
    const e = this.currentEnrollment;
    const control = this.deps.agentDeps.createControlClient({
      controllerUrls: enrollmentUrls(e),
      caFingerprint: e.caFingerprint,
      credential: e.credential,
      log: log.child({ part: 'control' }),
      clock,
    });
    this.client = control;
    this.watch = control.watch(
      {
        onConfig: (cfg) => this.onConfig(cfg),
        onState: (s) => this.onState(s),
        onHeartbeat: (h) => this.onHeartbeat(h),
        onTraceRequest: (r) => this.deps.onTraceRequest?.(r, control),
      },
      {
        knownContentHash: () => this.deps.reconciler.desiredState?.contentHash ?? '',
        endpoint: opts.endpoint,
        endpoints: opts.endpoints,
        isRelay: opts.isRelay,
        advertisedSubnets: opts.advertise,
        agentVersion: opts.agentVersion,
      },
    );
    this.reportTimer = setInterval(() => this.deps.reportNow(), opts.reportIntervalMs ?? DEFAULT_REPORT_INTERVAL_MS);
    this.reportTimer.unref();
  }

  private onConfig(cfg: AgentConfig): void {
    const { reconciler } = this.deps;
    // The controller has spoken: this config says whether the box serves, so its gateways
    // may be claimed (or released). The config first: a claim is only ever made for a desired
    // state the controller sent (see Reconciler.runOnce).
    const res = reconciler.setDesired(cfg);
    reconciler.allowGatewayClaim();
    if (res.error) {
      countConfigError(this.deps.metrics);
      this.deps.reportNow();
    } else {
      this.deps.saver.accept(cfg);
    }
  }

  /** The controller's clock against ours: beyond the bound, rule windows move to the safer side. */
  private onHeartbeat(h: { serverTimeMs: number; receivedAtMs: number }): void {
    const skew = this.deps.clockSkew;
    if (!skew.observe(h.serverTimeMs, h.receivedAtMs)) return;
    const { log } = this.deps;
    if (skew.isSkewed)
      log.warn(
        { clockSkewMs: skew.measuredMs, boundMs: CLOCK_SKEW_BOUND_MS },
        "this box's clock is off the controller's beyond the bound: rule windows are enforced on the safer side of both clocks; fix NTP",
      );
    else log.info({ clockSkewMs: skew.measuredMs }, "this box's clock is back in step with the controller's");
    // Render the enforced config again with the new skew (desiredState reads it from the settings).
    this.deps.settings.clockSkewMs = skew.appliedMs;
    const enforced = this.deps.saver.current;
    if (enforced) this.deps.reconciler.setDesired(enforced);
  }

  private onState(s: { isConnected: boolean; reason?: string; atMs: number }): void {
    const conn = this.deps.connection;
    const { log } = this.deps;
    if (s.isConnected && !conn.isConnected) log.info('config stream connected');
    if (!s.isConnected && conn.isConnected)
      log.warn({ reason: s.reason }, 'config stream down; enforcing the last config');
    if (!s.isConnected && conn.isConnected) conn.staleSinceMs = s.atMs;
    conn.isConnected = s.isConnected;
    conn.reason = s.isConnected ? null : (s.reason ?? 'disconnected');
    if (s.isConnected) this.deps.reportNow();
  }
}
