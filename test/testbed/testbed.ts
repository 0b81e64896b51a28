// The namespace testbed: builds an underlay, a controller host, edge boxes, LANs and LAN hosts from
// a short description (see topology.ts), runs commands and traffic probes in them, and removes
// everything it made — processes by PID, namespaces by name — also when a test fails or is
// interrupted. The root namespace's routes, links and firewall are never touched: veth pairs are
// created with both ends placed straight into namespaces of this run.
import { existsSync, rmSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { CrosslinkError } from '../../lib/errors.js';
import {
  run,
  runSync,
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
  killPidsSync,
  namespacesWithPrefix,
  onPath,
  parsePids,
  pidsInNetns,
  randomPrefix,
  wgSocketsWithPrefix,
  workDirFor,
} from './leftovers.js';
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
  type UnderlayPort,
} from './topology.js';
import {
  ECHO_SERVER,
  ping,
  pythonPath,
  tcpProbe,
  udpProbe,
  type PingOptions,
  type PingResult,
  type ProbeOptions,
  type TcpProbeResult,
  type UdpProbeOptions,
  type UdpProbeResult,
} from './traffic.js';

export { namespacesWithPrefix, workDirFor } from './leftovers.js';
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

export interface Listener {
  pid: number;
  proto: 'tcp' | 'udp';
  port: number;
  process: SpawnedProcess;
  /** Distinct source addresses of connections (TCP) or datagrams (UDP) seen so far, in order of first sight. */
  sources(): string[];
  /**
   * Waits until a connection or datagram from `address` has been seen. The echo server logs it a
   * moment after the client already has its answer, so check sources() only after this.
   */
  waitForSource(address: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface UnderlayBlockOptions {
  /** What to drop between the two nodes. Default 'udp' (WireGuard), leaving ping and TCP alone. */
  proto?: 'udp' | 'all';
}

const FIREWALL_TABLE = 'crosslink_testbed';

export class Testbed {
  readonly topology: Topology;
  /** Scratch directory for logs and key files (/tmp/crosslink-testbed-<prefix>); removed by destroy() unless kept. */
  readonly workDir: string;
  private readonly graceMs: number;
  private readonly isWorkDirKept: boolean;
  private readonly procs = new Map<number, SpawnedProcess>();
  private readonly blocks = new Map<string, { a: string; b: string; proto: 'udp' | 'all' }>();
  private readonly lossPercent = new Map<string, number>();
  private destroying: Promise<void> | undefined;

  private constructor(topology: Topology, workDir: string, opts: CreateOptions) {
    this.topology = topology;
    this.workDir = workDir;
    this.graceMs = opts.graceMs ?? 2000;
    this.isWorkDirKept = opts.isWorkDirKept ?? process.env.CROSSLINK_TESTBED_KEEP === '1';
  }

  /** What this machine lacks to run a testbed; empty when it can. Tests fail (not skip) on a non-empty list. */
  static requirements(): string[] {
    const missing: string[] = [];
    if (process.getuid?.() !== 0) missing.push('root (network namespaces need it): run the tests as root');
    const tools: [string, string][] = [
      ['ip', 'iproute2'],
      ['nft', 'nftables'],
      ['wireguard-go', 'wireguard-go'],
      ['wg', 'wireguard-tools'],
      ['ping', 'iputils-ping'],
      ['sysctl', 'procps'],
    ];
    for (const [cmd, pkg] of tools) if (!onPath(cmd)) missing.push(`${cmd} (Debian package ${pkg})`);
    if (!existsSync('/usr/bin/python3') && !onPath('python3'))
      missing.push('python3 (the traffic probes are python3 programs)');
    if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun (wireguard-go needs the tun device)');
    return missing;
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
    if (!/^[a-z][a-z0-9]{1,9}$/.test(prefix)) throw new Error(`not a testbed prefix: ${prefix}`);
    const namespaces = namespacesWithPrefix(prefix);
    const pids = (await Promise.all(namespaces.map(pidsInNetns))).flat();
    await killPids(pids, graceMs);
    if (namespaces.length > 0) {
      await run(['ip', '-force', '-batch', '-'], {
        input: namespaces.map((n) => `netns del ${n}\n`).join(''),
        check: false,
      });
    }
    for (const sock of wgSocketsWithPrefix(prefix)) rmSync(sock, { force: true });
    rmSync(workDirFor(prefix), { recursive: true, force: true });
    return namespaces;
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
    await proc.waitForOutput(/^ready$/m, 10_000);
    return {
      pid: proc.pid,
      proto,
      port,
      process: proc,
      sources: () => [...new Set([...proc.output().matchAll(/^from (\S+)$/gm)].map((m) => m[1]!))],
      waitForSource: async (address, timeoutMs = 5000) => {
        await proc.waitForOutput(
          new RegExp(`^from ${address.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'),
          timeoutMs,
        );
      },
      close: async () => {
        await proc.stop({ graceMs: this.graceMs });
      },
    };
  }

  // ---- underlay impairments -------------------------------------------------------------------

  /** The node's cables, first underlay first. */
  private underlayPorts(ref: NodeRef): { name: string; ports: UnderlayPort[] } {
    const node = this.node(ref);
    const ports = this.topology.underlayPorts.get(node.name);
    if (!ports || (node.kind !== 'box' && node.kind !== 'controller'))
      throw new Error(`${node.name} is not attached to the underlay`);
    return { name: node.name, ports };
  }

  /** The underlay networks a node is cabled to. */
  underlaysOf(ref: NodeRef): string[] {
    return this.underlayPorts(ref).ports.map((p) => p.underlay);
  }

  /** Drops traffic between two underlay nodes (boxes or the controller), both ways, in the underlay router. */
  async blockUnderlay(a: NodeRef, b: NodeRef, opts: UnderlayBlockOptions = {}): Promise<void> {
    const [na, nb] = [this.underlayPorts(a).name, this.underlayPorts(b).name];
    const [x, y] = na <= nb ? [na, nb] : [nb, na];
    this.blocks.set(`${x}|${y}`, { a: x, b: y, proto: opts.proto ?? 'udp' });
    await this.applyUnderlayFirewall();
  }

  async unblockUnderlay(a: NodeRef, b: NodeRef): Promise<void> {
    const [x, y] = [this.underlayPorts(a).name, this.underlayPorts(b).name].sort();
    this.blocks.delete(`${x}|${y}`);
    await this.applyUnderlayFirewall();
  }

  /** Drops `percent` % of all packets crossing the node's underlay link, each direction; 0 removes it. */
  async setUnderlayLoss(node: NodeRef, percent: number): Promise<void> {
    if (!Number.isInteger(percent) || percent < 0 || percent > 100)
      throw new Error('percent must be an integer 0..100');
    const { name } = this.underlayPorts(node);
    if (percent === 0) this.lossPercent.delete(name);
    else this.lossPercent.set(name, percent);
    await this.applyUnderlayFirewall();
  }

  /**
   * Pulls (false) or plugs back (true) the node's underlay cables: the router's side of each link.
   * `underlay` names one network; absent, every cable the node has.
   */
  async setUnderlayLinkUp(node: NodeRef, isUp: boolean, underlay?: string): Promise<void> {
    const { name, ports } = this.underlayPorts(node);
    const chosen = ports.filter((p) => underlay === undefined || p.underlay === underlay);
    if (chosen.length === 0) throw new Error(`${name} is not cabled to underlay "${underlay}"`);
    await Promise.all(chosen.map((p) => run(['ip', '-n', p.netns, 'link', 'set', p.interface, isUp ? 'up' : 'down'])));
  }

  /** Sets any interface in a node's namespace up or down (e.g. a box's lan0 to take it off its LAN). */
  async setLinkUp(node: NodeRef, ifname: string, isUp: boolean): Promise<void> {
    await run(['ip', '-n', this.node(node).netns, 'link', 'set', ifname, isUp ? 'up' : 'down']);
  }

  /** The nft script for one underlay router's impairments (default: the first); replaces the whole table atomically. */
  renderUnderlayFirewall(underlay: string = this.topology.underlay.network): string {
    const rules: string[] = [];
    const on = (name: string): UnderlayPort | undefined =>
      this.underlayPorts(name).ports.find((p) => p.underlay === underlay);
    for (const { a, b, proto } of [...this.blocks.values()].sort((p, q) =>
      `${p.a}|${p.b}`.localeCompare(`${q.a}|${q.b}`),
    )) {
      const pa = on(a);
      const pb = on(b);
      if (!pa || !pb) continue;
      const l4 = proto === 'udp' ? ' meta l4proto udp' : '';
      for (const [s, d] of [
        [pa, pb],
        [pb, pa],
      ] as const) {
        rules.push(
          `ip saddr ${s.address} ip daddr ${d.address}${l4} drop`,
          `ip6 saddr ${s.address6} ip6 daddr ${d.address6}${l4} drop`,
        );
      }
    }
    for (const [name, percent] of [...this.lossPercent.entries()].sort(([p], [q]) => p.localeCompare(q))) {
      const port = on(name);
      if (!port) continue;
      const sample = percent === 100 ? '' : ` numgen random mod 100 < ${percent}`;
      rules.push(`iifname "${port.interface}"${sample} drop`, `oifname "${port.interface}"${sample} drop`);
    }
    return [
      `table inet ${FIREWALL_TABLE}`,
      `delete table inet ${FIREWALL_TABLE}`,
      `table inet ${FIREWALL_TABLE} {`,
      '  chain forward {',
      '    type filter hook forward priority 0; policy accept;',
      ...rules.map((r) => `    ${r}`),
      '  }',
      '}',
      '',
    ].join('\n');
  }

  private async applyUnderlayFirewall(): Promise<void> {
    await Promise.all(
      this.topology.underlays.map((u) =>
        run(['nft', '-f', '-'], { netns: u.netns, input: this.renderUnderlayFirewall(u.network) }),
      ),
    );
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
    const strays = (await Promise.all(this.topology.namespaces.map(pidsInNetns))).flat();
    await killPids(strays, this.graceMs);
    await run(['ip', '-force', '-batch', '-'], {
      input: this.topology.namespaces.map((n) => `netns del ${n}\n`).join(''),
      check: false,
    });
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
    const strays = this.topology.namespaces.flatMap((n) => parsePids(runSync(['ip', 'netns', 'pids', n]).stdout));
    killPidsSync([...new Set([...tracked, ...strays])], Math.min(this.graceMs, 1000));
    for (const n of this.topology.namespaces) runSync(['ip', 'netns', 'del', n]);
    this.removeLeftovers();
  }

  private removeLeftovers(): void {
    // wireguard-go removes its socket on a clean exit, not when killed.
    for (const sock of wgSocketsWithPrefix(this.prefix)) rmSync(sock, { force: true });
    if (!this.isWorkDirKept) rmSync(this.workDir, { recursive: true, force: true });
  }
}
