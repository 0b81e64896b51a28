// A Crosslink fleet on a namespace testbed: the real controller in the controller namespace and one
// real agent per box, started as `crosslink` processes from dist/ (build first: `make build`),
// enrolled with join tokens and driven through the REST API. Shared by the end-to-end scenarios,
// the demo and the benchmark.
//
// The API is reached from the test process through a Unix socket: a small forwarder runs inside
// the controller namespace (namespaces can't be reached from the root namespace over IP, but a
// socket file is visible to both), so API calls are cheap and their timing exact — the benchmark
// measures from the moment the PUT /v1/policy answer arrives. `fleet.cli()` runs the real CLI inside
// the controller namespace for what a user would type.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { pinnedTlsOptions } from '../../lib/pin.js';
import type { HealthEvent } from '../../controller/health/types.js';
import type { RunResult, SpawnedProcess } from '../testbed/exec.js';
import type { Box, Testbed } from '../testbed/testbed.js';
import {
  CONTROLLER_PORT,
  FORWARDER,
  STATUS_LISTEN,
  WG_LISTEN_PORT,
  cliPath,
  endpointArgs,
  tail,
} from './fleet-commands.js';
import {
  FleetApiError,
  type AgentView,
  type ApiResult,
  type FleetAgent,
  type FleetAgentSpec,
  type FleetOptions,
} from './fleet-types.js';
import { pollUntil } from './poll.js';

export { CONTROLLER_PORT, STATUS_LISTEN, WG_LISTEN_PORT, cliPath, endpointArgs, repoRoot } from './fleet-commands.js';
export {
  FleetApiError,
  type AgentView,
  type ApiResult,
  type FleetAgentSpec,
  type FleetOptions,
} from './fleet-types.js';
export { pollUntil } from './poll.js';

export class Fleet {
  readonly bed: Testbed;
  readonly dataDir: string;
  /** The controller's URL on the first underlay (the CLI's, inside the controller namespace). */
  readonly controllerUrl: string;
  /** One URL per underlay the controller host is cabled to: join tokens carry them all. */
  readonly controllerUrls: string[];
  readonly controllerLog: string;
  /** Unix socket that reaches the controller's port from this process. */
  readonly apiSocket: string;
  adminToken = '';
  caFingerprint = '';
  private caPem = '';
  private controllerProc: SpawnedProcess | null = null;
  private forwarder: SpawnedProcess | null = null;
  private readonly agents = new Map<string, FleetAgent>();
  private readonly opts: FleetOptions;

  private constructor(bed: Testbed, opts: FleetOptions) {
    this.bed = bed;
    this.opts = opts;
    this.dataDir = join(bed.workDir, 'controller');
    this.controllerUrls = bed.controller.underlays.map((u) => `https://${u.address}:${CONTROLLER_PORT}`);
    this.controllerUrl = this.controllerUrls[0]!;
    this.controllerLog = join(bed.workDir, 'controller.log');
    this.apiSocket = join(bed.workDir, 'api.sock');
  }

  /**
   * Starts the controller, enrolls one agent per spec (a join token each), applies the policy if
   * one is given and waits until every agent runs it.
   */
  static async start(bed: Testbed, opts: FleetOptions): Promise<Fleet> {
    const fleet = new Fleet(bed, opts);
    await fleet.startController();
    await Promise.all(opts.agents.map((a) => fleet.addAgent(a)));
    const policy = opts.policyText ?? (opts.policyFile ? readFileSync(opts.policyFile, 'utf8') : undefined);
    if (policy !== undefined) {
      await fleet.applyPolicy(policy);
      if (opts.isConvergedWaited ?? true) await fleet.waitConverged({ timeoutMs: opts.timeoutMs ?? 60_000 });
    }
    return fleet;
  }

  /** Environment for the CLI inside the controller namespace. */
  get cliEnv(): Record<string, string> {
    return {
      CROSSLINK_CONTROLLER: this.controllerUrl,
      CROSSLINK_TOKEN: this.adminToken,
      CROSSLINK_CA_FINGERPRINT: this.caFingerprint,
    };
  }

  get agentNames(): string[] {
    return [...this.agents.keys()];
  }

  /** Log file of an agent (in bed.workDir). */
  agentLog(name: string): string {
    return this.agent(name).logFile;
  }

  agentBox(name: string): Box {
    return this.agent(name).box;
  }

  /** PID of the agent process, or null when stopped. */
  agentPid(name: string): number | null {
    const p = this.agent(name).proc;
    return p && p.isRunning ? p.pid : null;
  }

  get controllerPid(): number | null {
    return this.controllerProc && this.controllerProc.isRunning ? this.controllerProc.pid : null;
  }

  private agent(name: string): FleetAgent {
    const a = this.agents.get(name);
    if (!a) throw new Error(`no agent named "${name}" in this fleet`);
    return a;
  }

  // ---- controller -----------------------------------------------------------------------------

  /**
   * Starts (or restarts, on the same data dir) the controller and waits until its API answers.
   * `args` replaces the fleet's `controllerArgs` for this start and later ones (a restart with other settings).
   */
  async startController(opts: { args?: string[] } = {}): Promise<void> {
    if (opts.args !== undefined) this.opts.controllerArgs = opts.args;
    if (this.controllerPid !== null) throw new Error('the controller is already running');
    await mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    const logStart = existsSync(this.controllerLog) ? readFileSync(this.controllerLog).length : 0;
    const argv = [
      process.execPath,
      cliPath(),
      'controller',
      'serve',
      '--data-dir',
      this.dataDir,
      '--listen',
      `0.0.0.0:${CONTROLLER_PORT}`,
      ...this.controllerUrls.flatMap((u) => ['--url', u]),
    ];
    if (this.opts.heartbeatIntervalSeconds !== undefined)
      argv.push('--heartbeat-interval-seconds', String(this.opts.heartbeatIntervalSeconds));
    argv.push(...(this.opts.controllerArgs ?? []));
    this.controllerProc = this.bed.spawn(this.bed.controller, argv, {
      logFile: this.controllerLog,
      isDetached: this.opts.isDetached ?? false,
      env: this.opts.env,
    });
    const proc = this.controllerProc;
    const m = await pollUntil(
      'the controller to print its CA fingerprint',
      () => {
        if (!proc.isRunning)
          throw new Error(
            `the controller exited: ${JSON.stringify(proc.exitStatus)}; see ${this.controllerLog}: ${tail(this.controllerLog)}`,
          );
        return (
          /CA fingerprint: ([0-9a-f:]+)/i.exec(readFileSync(this.controllerLog, 'utf8').slice(logStart)) ?? undefined
        );
      },
      { timeoutMs: this.opts.timeoutMs ?? 60_000, intervalMs: 50 },
    );
    this.caFingerprint = m[1]!;
    this.caPem = readFileSync(join(this.dataDir, 'ca.crt'), 'utf8');
    this.adminToken = readFileSync(join(this.dataDir, 'admin.token'), 'utf8').trim();
    if (!this.forwarder || !this.forwarder.isRunning) {
      this.forwarder = this.bed.spawn(this.bed.controller, [
        process.execPath,
        '-e',
        FORWARDER,
        this.apiSocket,
        this.bed.controller.address,
        String(CONTROLLER_PORT),
      ]);
      await this.forwarder.waitForOutput(/ready/, 10_000);
    }
    await pollUntil('the controller API', async () => (await this.api('GET', '/v1/agents')).status === 200, {
      timeoutMs: 20_000,
      intervalMs: 50,
    });
  }

  /** Stops the controller by PID: SIGKILL by default (an outage), or SIGTERM for a clean stop. */
  async stopController(opts: { signal?: NodeJS.Signals } = {}): Promise<void> {
    const p = this.controllerProc;
    if (!p || !p.isRunning) return;
    await this.bed.kill(p.pid, { signal: opts.signal ?? 'SIGKILL' });
    this.controllerProc = null;
  }

  // ---- API --------------------------------------------------------------------------------------

  /** One REST call with the admin token; throws FleetApiError on a status >= 400. */
  async api<T = unknown>(
    method: string,
    path: string,
    opts: { json?: unknown; headers?: Record<string, string>; token?: string; timeoutMs?: number } = {},
  ): Promise<ApiResult<T>> {
    const body = opts.json === undefined ? undefined : JSON.stringify(opts.json);
    const headers: Record<string, string> = {
      accept: 'application/json',
      authorization: `Bearer ${opts.token ?? this.adminToken}`,
      ...(opts.headers ?? {}),
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    return new Promise<ApiResult<T>>((resolvePromise, reject) => {
      const req = https.request(
        {
          socketPath: this.apiSocket,
          path,
          method,
          headers,
          agent: false,
          ...pinnedTlsOptions(this.caPem, this.caFingerprint),
          timeout: opts.timeoutMs ?? 15_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const atMs = Date.now();
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : null;
            } catch {
              // not JSON: keep the text
            }
            const status = res.statusCode ?? 0;
            if (status >= 400) reject(new FleetApiError(status, parsed, method, path));
            else resolvePromise({ status, body: parsed as T, atMs });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () =>
        req.destroy(new Error(`${method} ${path}: no answer within ${opts.timeoutMs ?? 15_000} ms`)),
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Runs `crosslink ARGS` inside the controller namespace with the connection in the environment. */
  cli(args: readonly string[], opts: { check?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
    return this.bed.exec(this.bed.controller, [process.execPath, cliPath(), ...args], {
      env: this.cliEnv,
      check: opts.check ?? false,
      timeoutMs: opts.timeoutMs ?? 30_000,
    });
  }

  /**
   * PUT /v1/policy with the current version as If-Match. Returns the new version and acceptedAtMs,
   * the moment the controller's answer arrived (it has committed and pushed the configs).
   */
  async applyPolicy(
    text: string,
    comment?: string,
  ): Promise<{ version: number; acceptedAtMs: number; sentAtMs: number }> {
    let current = 0;
    try {
      current = (await this.api<{ version: number }>('GET', '/v1/policy')).body.version;
    } catch (e) {
      if (!(e instanceof FleetApiError && e.status === 404)) throw e;
    }
    const sentAtMs = Date.now();
    const r = await this.api<{ version: number; isDistributed: boolean }>('PUT', '/v1/policy', {
      json: { document: text, ...(comment ? { comment } : {}) },
      headers: { 'if-match': `"${current}"` },
    });
    return { version: r.body.version, acceptedAtMs: r.atMs, sentAtMs };
  }

  /** The controller's health history of one subject ("subnet:x", "serving:a", "link:a:b") since `sinceMs`. */
  async history(subject: string, sinceMs: number): Promise<HealthEvent[]> {
    const q = `subject=${encodeURIComponent(subject)}&since=${sinceMs}`;
    return (await this.api<{ events: HealthEvent[] }>('GET', `/v1/health/history?${q}`)).body.events;
  }

  async listAgents(): Promise<AgentView[]> {
    return (await this.api<{ agents: AgentView[] }>('GET', '/v1/agents')).body.agents;
  }

  async showAgent(name: string): Promise<AgentView> {
    return (await this.api<AgentView>('GET', `/v1/agents/${encodeURIComponent(name)}`)).body;
  }

  /**
   * Waits until every (non-revoked) agent of the fleet is connected and reports the desired
   * generation applied. `names` narrows it to some agents.
   */
  async waitConverged(opts: { timeoutMs?: number; names?: string[] } = {}): Promise<AgentView[]> {
    const names = new Set(opts.names ?? this.agentNames);
    let last: AgentView[] = [];
    try {
      return await pollUntil(
        'every agent to apply the desired generation',
        async () => {
          last = (await this.listAgents()).filter((a) => names.has(a.name) && !a.isRevoked);
          const missing = [...names].filter((n) => !last.some((a) => a.name === n));
          if (missing.length > 0) return undefined;
          return last.every(
            (a) => a.isConnected && a.desiredGeneration > 0 && a.appliedGeneration === a.desiredGeneration,
          )
            ? last
            : undefined;
        },
        { timeoutMs: opts.timeoutMs ?? 30_000, intervalMs: 100 },
      );
    } catch (e) {
      const summary = last
        .map(
          (a) => `${a.name}: ${a.isConnected ? 'connected' : 'offline'} ${a.appliedGeneration}/${a.desiredGeneration}`,
        )
        .join(', ');
      throw new Error(`${(e as Error).message} (${summary || 'no agents listed'})`, { cause: e });
    }
  }

  // ---- agents -----------------------------------------------------------------------------------

  /** Makes a join token for the agent and starts it on its box. */
  async addAgent(spec: FleetAgentSpec): Promise<void> {
    const name = spec.name ?? spec.box;
    if (this.agents.has(name)) throw new Error(`agent ${name} is already in the fleet`);
    const box = this.bed.box(spec.box);
    const token = (await this.api<{ token: string }>('POST', '/v1/join-tokens', { json: { name, ttlSeconds: 3600 } }))
      .body.token;
    const a: FleetAgent = {
      spec: { ...spec, name },
      box,
      stateDir: join(this.bed.workDir, `agent-${name}`),
      logFile: join(this.bed.workDir, `agent-${name}.log`),
      joinToken: token,
      proc: null,
    };
    this.agents.set(name, a);
    await this.startAgent(name);
  }

  /**
   * Starts the agent process (again): the same state dir, so a restart keeps its enrollment and last
   * config. `args` replaces the fleet's `agentArgs` for this start (a restart with other settings).
   */
  async startAgent(
    name: string,
    opts: { env?: Record<string, string>; args?: string[] } = {},
  ): Promise<SpawnedProcess> {
    const a = this.agent(name);
    if (a.proc?.isRunning) throw new Error(`agent ${name} is already running`);
    const advertise = a.spec.advertise ?? a.box.lans.flatMap((l) => (l.subnet6 ? [l.subnet, l.subnet6] : [l.subnet]));
    await mkdir(a.stateDir, { recursive: true, mode: 0o700 });
    const argv = [
      process.execPath,
      cliPath(),
      'agent',
      'run',
      '--join',
      a.joinToken,
      '--name',
      name,
      '--state-dir',
      a.stateDir,
      '--interface',
      a.box.wgInterface,
      '--listen-port',
      String(WG_LISTEN_PORT),
      ...endpointArgs(this.bed, a.box),
      ...(a.spec.relay ? ['--relay'] : []),
      '--advertise',
      advertise.join(','),
      '--status-listen',
      STATUS_LISTEN,
      '--wireguard',
      'userspace',
      // No flow log (conntrack -E and a tcpdump per agent) unless a test asks for it: a fleet puts
      // 8 agents, 2 fleets at a time, on this machine's 2 cores, where one box has one agent; the
      // flow log is tested in agent/host/linux/traffic.test.ts and its cost in bench:forwarding.
      '--flow-log-mb',
      '0',
      ...(opts.args ?? this.opts.agentArgs ?? []),
      ...(a.spec.extraArgs ?? []),
    ];
    const env = opts.env || this.opts.env ? { ...this.opts.env, ...opts.env } : undefined;
    a.proc = this.bed.spawn(a.box, argv, { logFile: a.logFile, isDetached: this.opts.isDetached ?? false, env });
    return a.proc;
  }

  /** Stops the agent process by PID (SIGTERM: a clean stop that leaves the data plane; SIGKILL: a crash). */
  async stopAgent(name: string, opts: { signal?: NodeJS.Signals } = {}): Promise<void> {
    const a = this.agent(name);
    if (!a.proc || !a.proc.isRunning) return;
    await this.bed.kill(a.proc.pid, { signal: opts.signal ?? 'SIGTERM' });
    a.proc = null;
  }

  /** POST /v1/agents/NAME/revoke; returns when the controller accepted it. */
  async revoke(name: string): Promise<{ acceptedAtMs: number }> {
    const r = await this.api('POST', `/v1/agents/${encodeURIComponent(name)}/revoke`);
    return { acceptedAtMs: r.atMs };
  }

  /** The agent's local /status (works with the controller away), read inside its box. */
  async agentStatus(name: string): Promise<Record<string, unknown>> {
    const r = await this.bed.exec(
      this.agent(name).box,
      [process.execPath, cliPath(), 'agent', 'status', '--json', '--status-listen', STATUS_LISTEN],
      { check: false },
    );
    if (r.code === 2 || !r.stdout.trim()) throw new Error(`agent status of ${name}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  }

  /** `wg show <if> dump` on the agent's box: the peers' public keys and allowed IPs. */
  async wgPeers(
    name: string,
  ): Promise<{ publicKey: string; endpoint: string; allowedIps: string[]; latestHandshake: number }[]> {
    const box = this.agent(name).box;
    const r = await this.bed.exec(box, ['wg', 'show', box.wgInterface, 'dump']);
    return r.stdout
      .trim()
      .split('\n')
      .slice(1)
      .filter(Boolean)
      .map((l) => {
        const f = l.split('\t');
        return {
          publicKey: f[0]!,
          endpoint: f[2]!,
          allowedIps: f[3] === '(none)' ? [] : f[3]!.split(','),
          latestHandshake: Number(f[4]),
        };
      });
  }

  /** Stops every process the fleet started (the testbed also does on destroy). */
  async stop(): Promise<void> {
    await Promise.all([...this.agents.keys()].map((n) => this.stopAgent(n)));
    await this.stopController({ signal: 'SIGTERM' });
    await this.closeForwarder();
  }

  /** Stops the API forwarder (the demo, before leaving the fleet running). */
  async closeForwarder(): Promise<void> {
    if (this.forwarder?.isRunning) await this.bed.kill(this.forwarder.pid);
    this.forwarder = null;
  }
}
