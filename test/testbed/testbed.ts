// The namespace testbed: builds an underlay, a controller host, edge boxes, LANs and LAN hosts from
// a short description (see topology.ts), runs commands and traffic probes in them, and removes
// everything it made — processes by PID, namespaces by name — also when a test fails or is
// interrupted. The root namespace's routes, links and firewall are never touched: veth pairs are
// created with both ends placed straight into namespaces of this run.
import { rmSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { CrosslinkError } from '../../lib/errors.js';
import { UnderlayImpairments, type UnderlayBlockOptions } from './impairments.js';
import {
  run,
  signalPid,
  spawnIn,
  type RunOptions,
  type RunResult,
  type SpawnedProcess,
  type SpawnOptions,
} from './exec.js';
import {
  ensureWorkDir,
  installExitHooks,
  killPids,
  live,
  namespacesWithPrefix,
  pidsInNetns,
  randomPrefix,
  removeByPrefix,
  removeNamespaces,
  removeNamespacesSync,
  wgSocketsWithPrefix,
} from './leftovers.js';
import { testbedRequirements } from './requirements.js';
import {
  planTopology,
  type Box,
  type ControllerHost,
  type Host,
  type Lan,
  type TestbedDescription,
  type TestbedNode,
  type Topology,
  type Underlay,
} from './topology.js';
import {
  ECHO_SERVER,
  listenerFor,
  ping,
  pythonPath,
  tcpProbe,
  udpProbe,
  type PingOptions,
  type PingResult,
  type ProbeOptions,
  type TcpProbeResult,
  type UdpProbeOptions,
  type Listener,
  type UdpProbeResult,
} from './traffic.js';

export { namespacesWithPrefix, workDirFor } from './leftovers.js';
export type { UnderlayBlockOptions } from './impairments.js';
export type { Listener } from './traffic.js';
export type {
  Box,
  ControllerHost,
  Host,
  Lan,
  TestbedDescription,
  TestbedNode,
  Underlay,
  UnderlayLink,
} from './topology.js';

/** A node object, or the name of a box, host, LAN, the controller, or "underlay". */
export type NodeRef = TestbedNode | string;

export interface CreateOptions {
  /** A tap test (or anything with teardown()): the testbed is destroyed when it ends. */
  t?: { teardown(fn: () => unknown): void };
  /** Between SIGTERM and SIGKILL when stopping processes. Default 2000. */
  graceMs?: number;
  /** Keep workDir (logs, key files) after destroy. Default false, or true when CROSSLINK_TESTBED_KEEP=1. */
  isWorkDirKept?: boolean;
}

export class Testbed {
  readonly topology: Topology;
  /** Scratch directory for logs and key files (/tmp/crosslink-testbed-<prefix>); removed by destroy() unless kept. */
  readonly workDir: string;
  private readonly graceMs: number;
  private readonly isWorkDirKept: boolean;
  private readonly procs = new Map<number, SpawnedProcess>();
  private readonly impairments: UnderlayImpairments;
  private destroying: Promise<void> | undefined;

  private constructor(topology: Topology, workDir: string, opts: CreateOptions) {
    this.topology = topology;
    this.workDir = workDir;
    this.graceMs = opts.graceMs ?? 2000;
    this.isWorkDirKept = opts.isWorkDirKept ?? process.env.CROSSLINK_TESTBED_KEEP === '1';
    this.impairments = new UnderlayImpairments(topology, (ref) => this.node(ref));
  }

  /** What this machine lacks to run a testbed; empty when it can. Tests fail (not skip) on a non-empty list. */
  static requirements(): string[] {
    return testbedRequirements();
  }

  /** Throws one clear error naming everything missing (scripts/setup.sh installs the packages). */
  static assertRequirements(): void {
    const missing = Testbed.requirements();
    if (missing.length > 0) {
      throw new Error(
        `the namespace testbed cannot run here; missing: ${missing.join('; ')}. Run scripts/setup.sh as root.`,
      );
    }
  }

  /** Builds the topology. On failure everything made so far is removed before the error is thrown. */
  static async create(desc: TestbedDescription, opts: CreateOptions = {}): Promise<Testbed> {
    Testbed.assertRequirements();
    let prefix: string;
    if (desc.prefix !== undefined) {
      prefix = desc.prefix;
      const existing = namespacesWithPrefix(prefix);
      if (existing.length > 0) {
        throw new CrosslinkError(
          'conflict',
          `namespaces with prefix "${prefix}-" already exist (${existing.join(', ')}); remove them with Testbed.destroyByPrefix`,
        );
      }
    } else {
      prefix = randomPrefix();
    }
    const topology = planTopology(desc, prefix);
    const bed = new Testbed(topology, ensureWorkDir(prefix, true), opts);
    live.add(bed);
    installExitHooks();
    opts.t?.teardown(() => bed.destroyReporting());
    try {
      await bed.build();
    } catch (e) {
      await bed.destroy().catch(() => {});
      throw e;
    }
    return bed;
  }

  /**
   * A handle on a testbed that another process built from the same description and prefix (e.g. the
   * running demo): same layout, nothing built, no processes tracked, not destroyed on exit unless
   * `isOwned` is set.
   */
  static attach(
    desc: TestbedDescription & { prefix: string },
    opts: CreateOptions & { isOwned?: boolean } = {},
  ): Testbed {
    const topology = planTopology(desc, desc.prefix);
    const existing = new Set(namespacesWithPrefix(desc.prefix));
    const absent = topology.namespaces.filter((n) => !existing.has(n));
    if (absent.length > 0)
      throw new CrosslinkError('not_found', `testbed ${desc.prefix} is not running: no namespace ${absent.join(', ')}`);
    const bed = new Testbed(topology, ensureWorkDir(desc.prefix, false), opts);
    if (opts.isOwned) {
      live.add(bed);
      installExitHooks();
      opts.t?.teardown(() => bed.destroyReporting());
    }
    return bed;
  }

  /**
   * Leaves the testbed running when this process exits (the demo): no clean-up on exit or signal.
   * Spawn its long-running processes with `isDetached` and a logFile so they outlive the process;
   * remove it later with Testbed.destroyByPrefix(prefix).
   */
  release(): void {
    live.delete(this);
  }

  /**
   * Removes what a testbed with this prefix left behind, from any process (e.g. `make demo-down`):
   * kills the processes inside its namespaces by PID, deletes the namespaces by name, removes its
   * WireGuard sockets and work directory. Returns the namespaces it deleted.
   */
  static async destroyByPrefix(prefix: string, graceMs = 2000): Promise<string[]> {
    return removeByPrefix(prefix, graceMs);
  }

  private async build(): Promise<void> {
    const t = this.topology;
    await run(['ip', '-batch', '-'], { input: t.namespaces.map((n) => `netns add ${n}\n`).join('') });
    await Promise.all(t.sysctls.map((s) => run(['sysctl', '-q', '-w', ...s.settings], { netns: s.netns })));
    await run(['ip', '-batch', '-'], { input: t.veths.map((l) => `${l}\n`).join('') });
    for (const phase of [1, 2] as const) {
      await Promise.all(
        t.batches
          .filter((b) => b.phase === phase)
          .map((b) => run(['ip', '-n', b.netns, '-batch', '-'], { input: b.lines.map((l) => `${l}\n`).join('') })),
      );
    }
  }

  get prefix(): string {
    return this.topology.prefix;
  }

  get boxes(): readonly Box[] {
    return this.topology.boxes;
  }

  get hosts(): readonly Host[] {
    return this.topology.hosts;
  }

  get lans(): readonly Lan[] {
    return this.topology.lans;
  }

  get underlay(): Underlay {
    return this.topology.underlay;
  }

  get underlays(): readonly Underlay[] {
    return this.topology.underlays;
  }

  /** The controller host; throws when the description had none. */
  get controller(): ControllerHost {
    if (!this.topology.controller) throw new Error('this testbed has no controller host');
    return this.topology.controller;
  }

  /** Every namespace this testbed created. */
  get namespaces(): readonly string[] {
    return this.topology.namespaces;
  }

  box(name: string): Box {
    const b = this.topology.boxes.find((x) => x.name === name);
    if (!b) throw new Error(`no box named "${name}"`);
    return b;
  }

  host(name: string): Host {
    const h = this.topology.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host named "${name}"`);
    return h;
  }

  lan(name: string): Lan {
    const l = this.topology.lans.find((x) => x.name === name);
    if (!l) throw new Error(`no LAN named "${name}"`);
    return l;
  }

  node(ref: NodeRef): TestbedNode {
    if (typeof ref !== 'string') return ref;
    const t = this.topology;
    const found =
      t.underlays.find((u) => u.name === ref) ??
      (t.controller?.name === ref ? t.controller : undefined) ??
      t.boxes.find((x) => x.name === ref) ??
      t.hosts.find((x) => x.name === ref) ??
      t.lans.find((x) => x.name === ref);
    if (!found) throw new Error(`no node named "${ref}" in this testbed`);
    return found;
  }

  /** Runs argv to completion inside the node's namespace. */
  exec(node: NodeRef, argv: readonly string[], opts: Omit<RunOptions, 'netns'> = {}): Promise<RunResult> {
    this.assertAlive();
    return run(argv, { ...opts, netns: this.node(node).netns });
  }

  /**
   * Starts a long-running process inside the node's namespace, tracked by PID until destroy().
   * A relative logFile is placed in workDir.
   */
  spawn(node: NodeRef, argv: readonly string[], opts: SpawnOptions = {}): SpawnedProcess {
    this.assertAlive();
    const logFile = opts.logFile && !isAbsolute(opts.logFile) ? join(this.workDir, opts.logFile) : opts.logFile;
    const proc = spawnIn(this.node(node).netns, argv, { ...opts, ...(logFile ? { logFile } : {}) });
    this.procs.set(proc.pid, proc);
    return proc;
  }

  /** Every process this testbed started, running or not. */
  get processes(): readonly SpawnedProcess[] {
    return [...this.procs.values()];
  }

  /**
   * Stops a process: SIGTERM (or `signal`), SIGKILL after the grace period. The PID must be one this
   * testbed started or one living inside its namespaces (e.g. a wireguard-go an agent daemonised).
   */
  async kill(pid: number, opts: { signal?: NodeJS.Signals; graceMs?: number } = {}): Promise<void> {
    const proc = this.procs.get(pid);
    if (proc) {
      await proc.stop({ graceMs: this.graceMs, ...opts });
      return;
    }
    const ours = (await Promise.all(this.topology.namespaces.map(pidsInNetns))).flat();
    if (!ours.includes(pid))
      throw new Error(`pid ${pid} was not started by this testbed and is not inside its namespaces`);
    if (opts.signal && opts.signal !== 'SIGTERM') signalPid(pid, opts.signal);
    await killPids([pid], opts.graceMs ?? this.graceMs);
  }

  /** PIDs of every process currently inside the node's namespace. */
  pidsIn(node: NodeRef): Promise<number[]> {
    return pidsInNetns(this.node(node).netns);
  }

  // ---- traffic ------------------------------------------------------------------------------

  tcpProbe(from: NodeRef, toAddr: string, port: number, opts: ProbeOptions = {}): Promise<TcpProbeResult> {
    return tcpProbe(this.node(from).netns, toAddr, port, opts);
  }

  /** True when a TCP connection from `from` to toAddr:port completes within timeoutMs (default 2000). */
  async tcpConnect(
    from: NodeRef,
    toAddr: string,
    port: number,
    timeoutMs = 2000,
    opts: Omit<ProbeOptions, 'timeoutMs'> = {},
  ): Promise<boolean> {
    return (await this.tcpProbe(from, toAddr, port, { ...opts, timeoutMs })) === 'open';
  }

  udpProbe(from: NodeRef, toAddr: string, port: number, opts: UdpProbeOptions = {}): Promise<UdpProbeResult> {
    return udpProbe(this.node(from).netns, toAddr, port, opts);
  }

  /** True when a datagram to an echo server (listen(..., 'udp', port)) comes back within the timeout. */
  async udpExchange(from: NodeRef, toAddr: string, port: number, opts: UdpProbeOptions = {}): Promise<boolean> {
    return (await this.udpProbe(from, toAddr, port, opts)) === 'reply';
  }

  ping(from: NodeRef, addr: string, opts: PingOptions = {}): Promise<PingResult> {
    return ping(this.node(from).netns, addr, opts);
  }

  /** Starts a TCP or UDP echo server on `port` (all addresses, IPv4 and IPv6, unless bindAddress). */
  async listen(
    node: NodeRef,
    proto: 'tcp' | 'udp',
    port: number,
    opts: { bindAddress?: string } = {},
  ): Promise<Listener> {
    const proc = this.spawn(node, [pythonPath(), '-u', '-c', ECHO_SERVER, proto, String(port), opts.bindAddress ?? '']);
    return listenerFor(proc, proto, port, this.graceMs);
  }

  // ---- underlay impairments (impairments.ts) --------------------------------------------------

  /** The underlay networks a node is cabled to. */
  underlaysOf(ref: NodeRef): string[] {
    return this.impairments.underlaysOf(ref);
  }

  /** Drops traffic between two underlay nodes (boxes or the controller), both ways, in the underlay router. */
  blockUnderlay(a: NodeRef, b: NodeRef, opts: UnderlayBlockOptions = {}): Promise<void> {
    return this.impairments.blockUnderlay(a, b, opts);
  }

  unblockUnderlay(a: NodeRef, b: NodeRef): Promise<void> {
    return this.impairments.unblockUnderlay(a, b);
  }

  /** Drops `percent` % of all packets crossing the node's underlay link, each direction; 0 removes it. */
  setUnderlayLoss(node: NodeRef, percent: number): Promise<void> {
    return this.impairments.setUnderlayLoss(node, percent);
  }

  /** Pulls (false) or plugs back (true) the node's underlay cables; `underlay` names one network, else all. */
  setUnderlayLinkUp(node: NodeRef, isUp: boolean, underlay?: string): Promise<void> {
    return this.impairments.setUnderlayLinkUp(node, isUp, underlay);
  }

  /** Sets any interface in a node's namespace up or down (e.g. a box's lan0 to take it off its LAN). */
  setLinkUp(node: NodeRef, ifname: string, isUp: boolean): Promise<void> {
    return this.impairments.setLinkUp(node, ifname, isUp);
  }

  /** The nft script for one underlay router's impairments (default: the first); replaces the whole table atomically. */
  renderUnderlayFirewall(underlay: string = this.topology.underlay.network): string {
    return this.impairments.renderUnderlayFirewall(underlay);
  }

  // ---- teardown -------------------------------------------------------------------------------

  get isDestroyed(): boolean {
    return this.destroying !== undefined;
  }

  private assertAlive(): void {
    if (this.destroying) throw new Error(`testbed ${this.prefix} has been destroyed`);
  }

  /**
   * Stops every process it started (by PID), then anything else still inside its namespaces (by
   * PID, e.g. a daemonised wireguard-go), deletes its namespaces (by name; their veths go with
   * them) and its stale WireGuard sockets. Safe to call more than once.
   */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  /** destroy() for a test's teardown: a failure is written to stderr with its stack before it is
   *  rethrown (tap reports only "error thrown in teardown"). */
  async destroyReporting(): Promise<void> {
    try {
      await this.destroy();
    } catch (e) {
      process.stderr.write(`testbed ${this.prefix}: teardown failed: ${(e as Error).stack ?? String(e)}\n`);
      throw e;
    }
  }

  private async teardown(): Promise<void> {
    try {
      await this.teardownSteps();
    } finally {
      live.delete(this);
    }
  }

  private async teardownSteps(): Promise<void> {
    await Promise.all([...this.procs.values()].map((p) => p.stop({ graceMs: this.graceMs })));
    await removeNamespaces(this.topology.namespaces, this.graceMs);
    this.removeLeftovers();
    const left = namespacesWithPrefix(this.prefix);
    if (left.length > 0) throw new Error(`testbed ${this.prefix}: namespaces left after destroy: ${left.join(', ')}`);
  }

  /** destroy() for exit and signal handlers, where nothing asynchronous runs any more. */
  destroySync(): void {
    // Still registered: never destroyed, or an asynchronous destroy() was cut short by exit.
    if (!live.has(this)) return;
    live.delete(this);
    this.destroying ??= Promise.resolve();
    const tracked = [...this.procs.values()].filter((p) => p.isRunning).map((p) => p.pid);
    removeNamespacesSync(this.topology.namespaces, tracked, this.graceMs);
    this.removeLeftovers();
  }

  private removeLeftovers(): void {
    // wireguard-go removes its socket on a clean exit, not when killed.
    for (const sock of wgSocketsWithPrefix(this.prefix)) rmSync(sock, { force: true });
    if (!this.isWorkDirKept) rmSync(this.workDir, { recursive: true, force: true });
  }
}
