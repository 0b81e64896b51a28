// In-memory Host: a small fake kernel that behaves like the Linux adapters for everything the ports
// expose (it passes the same contract suite, agent/host/host.contract.ts). It counts calls, can be told
// to fail an operation (partial-failure tests), and has a "by hand" backdoor for drift tests.
import { readFile } from 'node:fs/promises';
import { HostCommandError } from '../../lib/errors.js';
import { canonicalInterfaceAddress, sortByPrefix } from './canonical.js';
import { FakeFirewall } from './fake-firewall.js';
import {
  FAKE_WRITE_OPS,
  OP_ARGV,
  fakeCommandError,
  type Failure,
  type FailureOptions,
  type FakeOp,
} from './fake-ops.js';
import { FakeRouteTable } from './fake-routes.js';
import { observeWgDevice, syncWgDevice, type FakeWgDevice } from './fake-wireguard.js';
import type { FirewallPort, Host, LinkPort, RoutePort, SysctlPort, WireGuardMode, WireGuardPort } from './ports.js';
import type {
  LinkObserved,
  RouteObserved,
  WgDeviceDesired,
  WgDeviceObserved,
  WgPeerObserved,
} from '../reconcile/host-state.js';

export { FAKE_OPS, FAKE_WRITE_OPS, type FailureOptions, type FakeOp } from './fake-ops.js';

interface FakeLink {
  kind: 'wireguard' | 'other';
  mode?: WireGuardMode;
  isUp: boolean;
  mtu: number;
  addresses: Set<string>;
  wg?: FakeWgDevice;
}

export interface FakeHostOptions {
  /** Reads the private key file given to wireguard.sync (default: the real file system). */
  readPrivateKey?: (path: string) => Promise<string>;
  /** Initial sysctl values; unknown keys fail like a missing /proc/sys entry. */
  sysctls?: Record<string, string>;
}

export class FakeHost implements Host {
  readonly wireguard: WireGuardPort;
  readonly links: LinkPort;
  readonly routes: RoutePort;
  readonly firewall: FirewallPort;
  readonly sysctl: SysctlPort;

  /** Calls per operation since construction or resetCounts(). */
  readonly calls = new Map<FakeOp, number>();
  /** Every call in order: operation and arguments (for assertions on what was written). */
  readonly log: Array<{ op: FakeOp; args: unknown[] }> = [];
  /** Gateway announcements (gratuitous ARP / unsolicited NA) in order: "IF ADDRESS/LEN". */
  readonly announcements: string[] = [];

  private readonly linkTable = new Map<string, FakeLink>();
  private readonly routeTable = new FakeRouteTable();
  private readonly nft = new FakeFirewall();
  private readonly sysctlValues: Map<string, string>;
  private readonly failures = new Map<FakeOp, Failure>();
  private readonly readPrivateKey: (path: string) => Promise<string>;

  constructor(opts: FakeHostOptions = {}) {
    this.readPrivateKey = opts.readPrivateKey ?? ((path) => readFile(path, 'utf8'));
    this.sysctlValues = new Map(
      Object.entries(
        opts.sysctls ?? {
          'net.ipv4.ip_forward': '0',
          'net.ipv6.conf.all.forwarding': '0',
          'net.ipv4.conf.all.rp_filter': '0',
        },
      ),
    );
    this.linkTable.set('lo', { kind: 'other', isUp: true, mtu: 65536, addresses: new Set(['127.0.0.1/8', '::1/128']) });
    this.wireguard = {
      observe: (ifname) => this.call('wireguard.observe', [ifname], () => this.wgObserve(ifname)),
      create: (ifname, mode) => this.call('wireguard.create', [ifname, mode], () => this.wgCreate(ifname, mode)),
      sync: (ifname, desired) =>
        this.callAsync('wireguard.sync', [ifname, desired], () => this.wgSync(ifname, desired)),
      remove: (ifname) => this.call('wireguard.remove', [ifname], () => this.removeLink(ifname)),
    };
    this.links = {
      observe: (ifname) => this.call('links.observe', [ifname], () => this.linkObserve(ifname)),
      setUp: (ifname, mtu) =>
        this.call('links.setUp', [ifname, mtu], () => {
          const l = this.mustLink(ifname, 'links.setUp');
          l.isUp = true;
          l.mtu = mtu;
        }),
      addAddress: (ifname, cidr) =>
        this.call('links.addAddress', [ifname, cidr], () => {
          this.mustLink(ifname, 'links.addAddress').addresses.add(canonicalInterfaceAddress(cidr));
        }),
      delAddress: (ifname, cidr) =>
        this.call('links.delAddress', [ifname, cidr], () => {
          this.mustLink(ifname, 'links.delAddress').addresses.delete(canonicalInterfaceAddress(cidr));
        }),
      observeAll: () =>
        this.call('links.observeAll', [], () =>
          [...this.linkTable]
            .filter(([name]) => name !== 'lo')
            .flatMap(([ifname, l]) => [...l.addresses].map((cidr) => ({ ifname, cidr })))
            .sort((x, y) =>
              x.ifname < y.ifname ? -1 : x.ifname > y.ifname ? 1 : x.cidr < y.cidr ? -1 : x.cidr > y.cidr ? 1 : 0,
            ),
        ),
      addGateway: (ifname, cidr) =>
        this.call('links.addGateway', [ifname, cidr], () => {
          this.mustLink(ifname, 'links.addGateway').addresses.add(canonicalInterfaceAddress(cidr));
          this.announcements.push(`${ifname} ${canonicalInterfaceAddress(cidr)}`);
        }),
    };
    this.routes = {
      observe: () => this.call('routes.observe', [], () => this.ownRoutes()),
      apply: (changes) =>
        this.call('routes.apply', [changes], () => this.routeTable.apply(changes, (dev) => this.linkTable.has(dev))),
    };
    this.firewall = {
      observe: () => this.call('firewall.observe', [], () => this.nft.observe()),
      replace: (ruleset, opts) =>
        this.call('firewall.replace', [ruleset], () => {
          opts?.whileCommitting?.();
          return this.nft.replace(ruleset);
        }),
      remove: () => this.call('firewall.remove', [], () => this.nft.remove()),
      counters: () => this.call('firewall.counters', [], () => this.nft.counters()),
    };
    this.sysctl = {
      get: (key) =>
        this.call('sysctl.get', [key], () => {
          const v = this.sysctlValues.get(key);
          if (v === undefined)
            throw fakeCommandError(
              'sysctl.get',
              `sysctl: cannot stat /proc/sys/${key.replace(/\./g, '/')}: No such file or directory`,
            );
          return v;
        }),
      set: (key, value) =>
        this.call('sysctl.set', [key, value], () => {
          if (!this.sysctlValues.has(key))
            throw fakeCommandError(
              'sysctl.set',
              `sysctl: cannot stat /proc/sys/${key.replace(/\./g, '/')}: No such file or directory`,
            );
          this.sysctlValues.set(key, value);
        }),
    };
  }

  // --- counting and failure injection -------------------------------------------------------

  /** Number of write operations (FAKE_WRITE_OPS) since construction or resetCounts(). */
  writeCount(): number {
    let n = 0;
    for (const op of FAKE_WRITE_OPS) n += this.calls.get(op) ?? 0;
    return n;
  }

  /** The write operations (FAKE_WRITE_OPS) called since construction or resetCounts(), in order. */
  get writes(): FakeOp[] {
    return this.log.filter((c) => FAKE_WRITE_OPS.includes(c.op)).map((c) => c.op);
  }

  resetCounts(): void {
    this.calls.clear();
    this.log.length = 0;
  }

  /** The next `times` calls of `op` fail with a HostCommandError (Infinity: until clearFailure);
   *  `argv` names another command line than the adapter's usual one. */
  failNext(op: FakeOp, opts: FailureOptions & { times?: number } = {}): void {
    this.failures.set(op, {
      remaining: opts.times ?? 1,
      exitCode: opts.exitCode ?? 1,
      stderr: opts.stderr ?? `injected failure of ${op}`,
      argv: opts.argv,
    });
  }

  failAlways(op: FakeOp, opts: FailureOptions = {}): void {
    this.failNext(op, { ...opts, times: Infinity });
  }

  clearFailure(op?: FakeOp): void {
    if (op) this.failures.delete(op);
    else this.failures.clear();
  }

  // --- "by hand" backdoor ---------------------------------------------------------------------

  /** A non-WireGuard link such as "eth0". */
  addLink(name: string, opts: { isUp?: boolean; mtu?: number; addresses?: string[] } = {}): void {
    this.linkTable.set(name, {
      kind: 'other',
      isUp: opts.isUp ?? true,
      mtu: opts.mtu ?? 1500,
      addresses: new Set((opts.addresses ?? []).map(canonicalInterfaceAddress)),
    });
  }

  /** Deletes a link by hand (its routes and addresses go with it, as in the kernel). */
  deleteLink(name: string): void {
    this.linkTable.delete(name);
    this.routeTable.deleteDev(name);
  }

  /** A route someone else made (another protocol number), e.g. "static" = 4. */
  addForeignRoute(prefix: string, dev = 'lo', proto = 4): void {
    this.routeTable.addForeign(prefix, dev, proto);
  }

  /** Every route with its protocol, including other owners' (what `ip route show` would list). */
  allRoutes(): Array<{ prefix: string; dev: string; proto: number }> {
    return this.routeTable.all();
  }

  deleteRouteByHand(prefix: string): void {
    this.routeTable.deletePrefix(prefix);
  }

  deleteFirewallTable(): void {
    this.nft.remove();
  }

  /** Changes the installed table the way `nft insert rule ...` by hand would. */
  tamperFirewall(extraRule = 'ip saddr 192.0.2.66 accept'): void {
    this.nft.tamper(extraRule);
  }

  /** Deletes one set element by hand (the first element line of the table). */
  deleteFirewallElement(): void {
    this.nft.deleteElement();
  }

  /** Loads a table by hand (`nft -f` behind the agent's back); no syntax check. */
  loadFirewallByHand(text: string): void {
    this.nft.table = text;
  }

  /** Removes one peer by hand (`wg set IF peer KEY remove`). */
  deletePeerByHand(ifname: string, publicKey: string): void {
    if (!this.linkTable.get(ifname)?.wg?.peers.delete(publicKey)) throw new Error(`no peer ${publicKey} on ${ifname}`);
  }

  /** Sets a link down by hand (`ip link set IF down`). */
  setLinkDownByHand(ifname: string): void {
    const l = this.linkTable.get(ifname);
    if (!l) throw new Error(`no link ${ifname}`);
    l.isUp = false;
  }

  /** `sysctl -w KEY=VALUE` by hand. */
  setSysctlByHand(key: string, value: string): void {
    this.sysctlValues.set(key, value);
  }

  // --- looking without calling (not counted, not failed; copies) -----------------------------

  /** What wireguard.observe would return. */
  wgDevice(ifname: string): WgDeviceObserved | null {
    return structuredCloneSafe(this.wgObserve(ifname));
  }

  /** Names of the WireGuard interfaces present. */
  wgInterfaces(): string[] {
    return [...this.linkTable]
      .filter(([, l]) => l.kind === 'wireguard')
      .map(([name]) => name)
      .sort();
  }

  /** What links.observe would return. */
  linkState(ifname: string): LinkObserved {
    return this.linkObserve(ifname);
  }

  /** The installed ruleset text (null: no table). */
  firewallText(): string | null {
    return this.nft.table;
  }

  /** Traffic hitting a named counter. */
  bumpCounter(name: string, packets: number, bytes = packets * 100): void {
    this.nft.bumpCounter(name, packets, bytes);
  }

  /** What a handshake and traffic would do to a peer's statistics. */
  setPeerStats(
    ifname: string,
    publicKey: string,
    stats: Partial<Pick<WgPeerObserved, 'endpoint' | 'latestHandshakeUnix' | 'rxBytes' | 'txBytes'>>,
  ): void {
    const peer = this.linkTable.get(ifname)?.wg?.peers.get(publicKey);
    if (!peer) throw new Error(`no peer ${publicKey} on ${ifname}`);
    Object.assign(peer, stats);
  }

  sysctlValue(key: string): string | undefined {
    return this.sysctlValues.get(key);
  }

  // --- internals ------------------------------------------------------------------------------

  private before(op: FakeOp, args: unknown[]): void {
    this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
    this.log.push({ op, args });
    const f = this.failures.get(op);
    if (f) {
      f.remaining -= 1;
      if (f.remaining <= 0) this.failures.delete(op);
      throw new HostCommandError(f.argv ? [...f.argv] : OP_ARGV[op], f.exitCode, f.stderr);
    }
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- a fault before() injects must reject, as a real host's would
  private async call<T>(op: FakeOp, args: unknown[], fn: () => T): Promise<T> {
    this.before(op, args);
    return structuredCloneSafe(fn());
  }

  private async callAsync<T>(op: FakeOp, args: unknown[], fn: () => Promise<T>): Promise<T> {
    this.before(op, args);
    return fn();
  }

  private mustLink(ifname: string, op: FakeOp): FakeLink {
    const l = this.linkTable.get(ifname);
    if (!l) throw fakeCommandError(op, `Cannot find device "${ifname}"`);
    return l;
  }

  private wgObserve(ifname: string): WgDeviceObserved | null {
    const l = this.linkTable.get(ifname);
    if (!l || l.kind !== 'wireguard' || !l.wg) return null;
    return observeWgDevice(l.wg);
  }

  private wgCreate(ifname: string, mode: WireGuardMode): void {
    if (this.linkTable.has(ifname)) return;
    this.linkTable.set(ifname, {
      kind: 'wireguard',
      mode,
      isUp: false,
      mtu: 1420,
      addresses: new Set(),
      wg: { privateKey: '', listenPort: 40000 + (this.linkTable.size % 20000), peers: new Map() },
    });
  }

  private async wgSync(ifname: string, desired: WgDeviceDesired): Promise<void> {
    const l = this.linkTable.get(ifname);
    if (!l || !l.wg) throw fakeCommandError('wireguard.sync', 'Unable to modify interface: No such device');
    const privateKey = (await this.readPrivateKey(desired.privateKeyFile)).trim();
    syncWgDevice(l.wg, desired, privateKey);
  }

  private removeLink(ifname: string): void {
    this.deleteLink(ifname);
  }

  private linkObserve(ifname: string): LinkObserved {
    const l = this.linkTable.get(ifname);
    if (!l) return { exists: false, isUp: false, mtu: 0, addresses: [] };
    return { exists: true, isUp: l.isUp, mtu: l.mtu, addresses: sortByPrefix([...l.addresses], (a) => a) };
  }

  /** What routes.observe would return (Crosslink's routes only). */
  ownRoutes(): RouteObserved[] {
    return this.routeTable.own();
  }
}

/** Results are copied so callers can never mutate the fake's state through them. */
function structuredCloneSafe<T>(v: T): T {
  return v === undefined ? v : structuredClone(v);
}
