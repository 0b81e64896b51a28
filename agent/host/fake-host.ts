// In-memory Host: a small fake kernel that behaves like the Linux adapters for everything the ports
// expose (it passes the same contract suite, agent/host/host.contract.ts). It counts calls, can be told
// to fail an operation (partial-failure tests), and has a "by hand" backdoor for drift tests.
import { readFile } from 'node:fs/promises';
import { HostCommandError } from '../../lib/errors.js';
import { canonicalInterfaceAddress, canonicalPrefix, canonicalPrefixList, sortByPrefix } from './canonical.js';
import { firewallFingerprint } from './firewall-fingerprint.js';
import {
  CROSSLINK_NFT_TABLE,
  CROSSLINK_RT_PROTO,
  type FirewallPort,
  type Host,
  type LinkPort,
  type RoutePort,
  type SysctlPort,
  type WireGuardMode,
  type WireGuardPort,
} from './ports.js';
import type {
  FirewallCounter,
  FirewallObserved,
  LinkObserved,
  RouteObserved,
  WgDeviceDesired,
  WgDeviceObserved,
  WgPeerObserved,
} from '../reconcile/host-state.js';
import { renderWgConfig } from './wg-config.js';
import { wgPublicKey } from './wg-key.js';

export const FAKE_OPS = [
  'wireguard.observe',
  'wireguard.create',
  'wireguard.sync',
  'wireguard.remove',
  'links.observe',
  'links.setUp',
  'links.addAddress',
  'links.delAddress',
  'links.observeAll',
  'links.addGateway',
  'routes.observe',
  'routes.apply',
  'firewall.observe',
  'firewall.replace',
  'firewall.remove',
  'firewall.counters',
  'sysctl.get',
  'sysctl.set',
] as const;
export type FakeOp = (typeof FAKE_OPS)[number];

/** Operations that change the host. A reconcile with nothing to do must call none of them. */
export const FAKE_WRITE_OPS: readonly FakeOp[] = [
  'wireguard.create',
  'wireguard.sync',
  'wireguard.remove',
  'links.setUp',
  'links.addAddress',
  'links.delAddress',
  'links.addGateway',
  'routes.apply',
  'firewall.replace',
  'firewall.remove',
  'sysctl.set',
];

/** The command line the Linux adapter would have run, so injected failures look like real ones. */
const OP_ARGV: Record<FakeOp, string[]> = {
  'wireguard.observe': ['wg', 'show', 'IF', 'dump'],
  'wireguard.create': ['wireguard-go', 'IF'],
  'wireguard.sync': ['wg', 'syncconf', 'IF', 'FILE'],
  'wireguard.remove': ['ip', 'link', 'del', 'dev', 'IF'],
  'links.observe': ['ip', '-json', 'addr', 'show', 'dev', 'IF'],
  'links.setUp': ['ip', 'link', 'set', 'dev', 'IF', 'up'],
  'links.addAddress': ['ip', 'addr', 'replace', 'CIDR', 'dev', 'IF'],
  'links.delAddress': ['ip', 'addr', 'del', 'CIDR', 'dev', 'IF'],
  'links.observeAll': ['ip', '-json', 'addr', 'show'],
  'links.addGateway': ['ip', 'addr', 'replace', 'CIDR', 'dev', 'IF'],
  'routes.observe': ['ip', '-json', 'route', 'show', 'proto', String(CROSSLINK_RT_PROTO)],
  'routes.apply': ['ip', '-force', '-batch', '-'],
  'firewall.observe': ['nft', 'list', 'table', 'inet', CROSSLINK_NFT_TABLE],
  'firewall.replace': ['nft', '-f', 'FILE'],
  'firewall.remove': ['nft', 'delete', 'table', 'inet', CROSSLINK_NFT_TABLE],
  'firewall.counters': ['nft', '-j', 'list', 'counters', 'table', 'inet', CROSSLINK_NFT_TABLE],
  'sysctl.get': ['sysctl', '-n', 'KEY'],
  'sysctl.set': ['sysctl', '-w', 'KEY=VALUE'],
};

interface Failure {
  remaining: number; // Infinity: until cleared
  exitCode: number;
  stderr: string;
  /** The command line the error names (default: OP_ARGV's). */
  argv?: readonly string[];
}

interface FakeLink {
  kind: 'wireguard' | 'other';
  mode?: WireGuardMode;
  isUp: boolean;
  mtu: number;
  addresses: Set<string>;
  wg?: { privateKey: string; listenPort: number; peers: Map<string, WgPeerObserved> };
}

interface FakeRoute {
  prefix: string;
  dev: string;
  proto: number;
}

export interface FakeHostOptions {
  /** Reads the private key file given to wireguard.sync (default: the real file system). */
  readPrivateKey?: (path: string) => Promise<string>;
  /** Initial sysctl values; unknown keys fail like a missing /proc/sys entry. */
  sysctls?: Record<string, string>;
}

export interface FailureOptions {
  exitCode?: number;
  stderr?: string;
  argv?: readonly string[];
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
  private routeTable: FakeRoute[] = [];
  private table: string | null = null;
  private readonly counterValues = new Map<string, FirewallCounter>();
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
      apply: (changes) => this.call('routes.apply', [changes], () => this.routesApply(changes)),
    };
    this.firewall = {
      observe: () => this.call('firewall.observe', [], () => this.fwObserve()),
      replace: (ruleset, opts) =>
        this.call('firewall.replace', [ruleset], () => {
          opts?.whileCommitting?.();
          return this.fwReplace(ruleset);
        }),
      remove: () =>
        this.call('firewall.remove', [], () => {
          this.table = null;
          this.counterValues.clear();
        }),
      counters: () =>
        this.call('firewall.counters', [], () =>
          Object.fromEntries(
            [...this.counterValues].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, { ...v }]),
          ),
        ),
    };
    this.sysctl = {
      get: (key) =>
        this.call('sysctl.get', [key], () => {
          const v = this.sysctlValues.get(key);
          if (v === undefined)
            throw this.commandError(
              'sysctl.get',
              `sysctl: cannot stat /proc/sys/${key.replace(/\./g, '/')}: No such file or directory`,
            );
          return v;
        }),
      set: (key, value) =>
        this.call('sysctl.set', [key, value], () => {
          if (!this.sysctlValues.has(key))
            throw this.commandError(
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
    this.routeTable = this.routeTable.filter((r) => r.dev !== name);
  }

  /** A route someone else made (another protocol number), e.g. "static" = 4. */
  addForeignRoute(prefix: string, dev = 'lo', proto = 4): void {
    this.routeTable.push({ prefix: canonicalPrefix(prefix), dev, proto });
  }

  /** Every route with its protocol, including other owners' (what `ip route show` would list). */
  allRoutes(): Array<{ prefix: string; dev: string; proto: number }> {
    return sortByPrefix(
      this.routeTable.map((r) => ({ ...r })),
      (r) => r.prefix,
      (r) => `${r.dev}/${r.proto}`,
    );
  }

  deleteRouteByHand(prefix: string): void {
    const p = canonicalPrefix(prefix);
    this.routeTable = this.routeTable.filter((r) => r.prefix !== p);
  }

  deleteFirewallTable(): void {
    this.table = null;
    this.counterValues.clear();
  }

  /** Changes the installed table the way `nft insert rule ...` by hand would. */
  tamperFirewall(extraRule = 'ip saddr 192.0.2.66 accept'): void {
    if (this.table === null) throw new Error('no table to tamper with');
    this.table = this.table.replace(/(chain forward \{\n[^\n]*\n)/, `$1\t\t${extraRule}\n`);
    if (!this.table.includes(extraRule)) this.table += `\n# ${extraRule}\n`;
  }

  /** Deletes one set element by hand (the first element line of the table). */
  deleteFirewallElement(): void {
    if (this.table === null) throw new Error('no table to tamper with');
    const lines = this.table.split('\n');
    const i = lines.findIndex((l) => /^\t\t\t\S/.test(l));
    if (i < 0) throw new Error('no set element to delete');
    lines.splice(i, 1);
    this.table = lines.join('\n');
  }

  /** Loads a table by hand (`nft -f` behind the agent's back); no syntax check. */
  loadFirewallByHand(text: string): void {
    this.table = text;
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
    return this.table;
  }

  /** Traffic hitting a named counter. */
  bumpCounter(name: string, packets: number, bytes = packets * 100): void {
    const c = this.counterValues.get(name);
    if (!c) throw new Error(`no counter ${name}`);
    c.packets += BigInt(packets);
    c.bytes += BigInt(bytes);
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

  private commandError(op: FakeOp, stderr: string, exitCode = 1): HostCommandError {
    return new HostCommandError(OP_ARGV[op], exitCode, stderr);
  }

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
    if (!l) throw this.commandError(op, `Cannot find device "${ifname}"`);
    return l;
  }

  private wgObserve(ifname: string): WgDeviceObserved | null {
    const l = this.linkTable.get(ifname);
    if (!l || l.kind !== 'wireguard' || !l.wg) return null;
    const peers = [...l.wg.peers.values()].sort((a, b) =>
      a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0,
    );
    return {
      publicKey: l.wg.privateKey === '' ? '' : wgPublicKey(l.wg.privateKey),
      listenPort: l.wg.listenPort,
      peers: peers.map((p) => ({ ...p, allowedIps: [...p.allowedIps] })),
    };
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
    if (!l || !l.wg) throw this.commandError('wireguard.sync', 'Unable to modify interface: No such device');
    const privateKey = (await this.readPrivateKey(desired.privateKeyFile)).trim();
    renderWgConfig(privateKey, desired.listenPort, desired.peers); // same validation as the real file
    const wg = l.wg;
    wg.privateKey = privateKey;
    if (desired.listenPort > 0) wg.listenPort = desired.listenPort;
    const next = new Map<string, WgPeerObserved>();
    for (const p of desired.peers) {
      const old = wg.peers.get(p.publicKey);
      // Like `wg syncconf`: an unchanged peer keeps its session and statistics; no endpoint given
      // leaves the old one.
      next.set(p.publicKey, {
        publicKey: p.publicKey,
        endpoint: p.endpoint !== '' ? p.endpoint : (old?.endpoint ?? ''),
        allowedIps: canonicalPrefixList(p.allowedIps),
        persistentKeepaliveSeconds: p.persistentKeepaliveSeconds,
        latestHandshakeUnix: old?.latestHandshakeUnix ?? 0,
        rxBytes: old?.rxBytes ?? 0n,
        txBytes: old?.txBytes ?? 0n,
      });
    }
    wg.peers.clear();
    for (const [k, v] of next) wg.peers.set(k, v);
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
    const own = this.routeTable
      .filter((r) => r.proto === CROSSLINK_RT_PROTO)
      .map((r) => ({ prefix: r.prefix, dev: r.dev }));
    return sortByPrefix(
      own,
      (r) => r.prefix,
      (r) => r.dev,
    );
  }

  private routesApply(changes: { add: RouteObserved[]; del: RouteObserved[] }): void {
    const add = changes.add.map((r) => ({ prefix: canonicalPrefix(r.prefix), dev: r.dev }));
    const del = changes.del.map((r) => ({ prefix: canonicalPrefix(r.prefix), dev: r.dev }));
    const replaced = new Set(add.map((r) => r.prefix).filter((p) => del.some((d) => d.prefix === p)));
    const errors: string[] = [];
    // Same order and semantics as `ip -force -batch -`: replaces and adds first, then deletes;
    // a failing line does not stop the others.
    for (const r of add) {
      if (!this.linkTable.has(r.dev)) {
        errors.push(`Cannot find device "${r.dev}"`);
        continue;
      }
      const same = this.routeTable.filter((x) => x.prefix === r.prefix);
      if (replaced.has(r.prefix)) {
        const foreign = same.find((x) => x.proto !== CROSSLINK_RT_PROTO);
        if (foreign) {
          errors.push('RTNETLINK answers: File exists');
          continue;
        }
        this.routeTable = this.routeTable.filter((x) => x.prefix !== r.prefix);
        this.routeTable.push({ ...r, proto: CROSSLINK_RT_PROTO });
      } else if (same.length > 0) {
        errors.push('RTNETLINK answers: File exists');
      } else {
        this.routeTable.push({ ...r, proto: CROSSLINK_RT_PROTO });
      }
    }
    for (const r of del) {
      if (replaced.has(r.prefix)) continue;
      const i = this.routeTable.findIndex(
        (x) => x.prefix === r.prefix && x.dev === r.dev && x.proto === CROSSLINK_RT_PROTO,
      );
      if (i < 0) errors.push('RTNETLINK answers: No such process');
      else this.routeTable.splice(i, 1);
    }
    // Success means the end state was reached (re-adding a route that is there, or deleting one
    // that is gone, is not a failure).
    const own = this.ownRoutes();
    const isDone =
      add.every((r) => own.some((o) => o.prefix === r.prefix && o.dev === r.dev)) &&
      del
        .filter((r) => !replaced.has(r.prefix))
        .every((r) => !own.some((o) => o.prefix === r.prefix && o.dev === r.dev));
    if (!isDone) throw this.commandError('routes.apply', errors.join('\n'));
  }

  private fwObserve(): FirewallObserved {
    if (this.table === null) return { exists: false, fingerprint: '' };
    return { exists: true, fingerprint: firewallFingerprint(this.table) };
  }

  private fwReplace(ruleset: string): string {
    if (
      !new RegExp(`^table inet ${CROSSLINK_NFT_TABLE} \\{`, 'm').test(ruleset) ||
      ruleset.split('{').length !== ruleset.split('}').length
    ) {
      throw this.commandError('firewall.replace', 'Error: syntax error');
    }
    this.table = ruleset;
    // Recreating the table recreates its counters at zero, as nft does.
    this.counterValues.clear();
    for (const [, name = ''] of ruleset.matchAll(/^\s*counter (\w+) \{/gm))
      this.counterValues.set(name, { packets: 0n, bytes: 0n });
    return firewallFingerprint(ruleset);
  }
}

/** Results are copied so callers can never mutate the fake's state through them. */
function structuredCloneSafe<T>(v: T): T {
  return v === undefined ? v : structuredClone(v);
}
