// The one contract every Host implementation passes: the in-memory fake (fake-host.test.ts) and the
// Linux adapters in a network namespace (linux/linux.test.ts). The reconciler's tests run against
// the fake, so whatever the fake does here the real box must do too.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { isCrosslinkError } from '../../lib/errors.js';
import { renderFirewall } from './firewall-render.js';
import type { Host, WireGuardMode } from './ports.js';
import type { WgPeerDesired } from '../reconcile/host-state.js';
import { firewall, flow } from './firewall.fixture.js';
import { generateWgPrivateKey, wgPublicKey } from './wg-key.js';

/** Changes made "by hand", behind the adapters' back (drift and ownership tests). */
export interface HostBackdoor {
  /** Adds a route with another protocol number (e.g. static) on a link that is not ours. */
  addForeignRoute(prefix: string): Promise<void>;
  /** Prefixes of the routes with another protocol number that are present. */
  foreignRoutes(): Promise<string[]>;
  deleteFirewallTable(): Promise<void>;
  /** 'rule': inserts a rule into our forward chain; 'element': deletes one element of a set. */
  tamperFirewall(kind: 'rule' | 'element'): Promise<void>;
  /** Removes one peer (`wg set IF peer KEY remove`). */
  deletePeer(ifname: string, publicKey: string): Promise<void>;
  /** Sets a link down (`ip link set IF down`). */
  setLinkDown(ifname: string): Promise<void>;
}

export interface HostHarness {
  host: Host;
  /** WireGuard interface name to use; unique machine-wide (wireguard-go sockets are shared). */
  ifname: string;
  mode: WireGuardMode;
  backdoor: HostBackdoor;
}

/** Builds a fresh host for one test case and registers its cleanup with t.teardown. */
export type MakeHarness = (t: Test) => Promise<HostHarness>;

/** Drift seen through a watcher may take a moment to show: poll like a resync would. */
async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

function keyFile(t: Test): { path: string; publicKey: string } {
  const dir = mkdtempSync(join(tmpdir(), 'xlh-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const priv = generateWgPrivateKey();
  const path = join(dir, 'private.key');
  writeFileSync(path, priv + '\n', { mode: 0o600 });
  return { path, publicKey: wgPublicKey(priv) };
}

function peer(allowedIps: string[], endpoint = '', keepalive = 0): WgPeerDesired {
  return {
    publicKey: wgPublicKey(generateWgPrivateKey()),
    endpoint,
    allowedIps,
    persistentKeepaliveSeconds: keepalive,
  };
}

const FW = firewall({
  outbound: [flow('web', ['10.1.0.0/24'], ['10.2.0.0/24'], 'tcp', [8080])],
  inbound: [flow('ping', ['10.2.0.0/24'], ['10.1.0.0/24'], 'icmp')],
  localPrefixes: ['10.1.0.0/24'],
});

export function hostContract(t: Test, make: MakeHarness): void {
  t.test('interface: create, observe, remove (idempotent)', async (t) => {
    const { host, ifname, mode } = await make(t);
    t.equal(await host.wireguard.observe(ifname), null, 'absent before create');
    t.equal((await host.links.observe(ifname)).exists, false);
    await host.wireguard.create(ifname, mode);
    await host.wireguard.create(ifname, mode); // no-op
    const dev = await host.wireguard.observe(ifname);
    t.ok(dev, 'observed after create');
    t.same(dev?.peers, []);
    const link = await host.links.observe(ifname);
    t.equal(link.exists, true);
    t.equal(link.isUp, false, 'created down');
    await host.wireguard.remove(ifname);
    t.equal(await host.wireguard.observe(ifname), null, 'gone after remove');
    t.equal((await host.links.observe(ifname)).exists, false);
    await host.wireguard.remove(ifname); // no-op
  });

  t.test('wireguard: sync peers, observe them back; a second sync changes one peer only', async (t) => {
    const { host, ifname, mode } = await make(t);
    const key = keyFile(t);
    await host.wireguard.create(ifname, mode);
    const a = peer(['10.2.0.0/24', '100.64.0.2/32'], '192.0.2.2:51820', 25);
    const b = peer(['100.64.0.3', '10.3.0.9/24', '2001:DB8:3::/48']);
    const c = peer(['100.64.0.4/32'], '[2001:db8::4]:51820');
    await host.wireguard.sync(ifname, { privateKeyFile: key.path, listenPort: 51820, peers: [a, b, c] });
    const dev = (await host.wireguard.observe(ifname))!;
    t.equal(dev.publicKey, key.publicKey);
    t.equal(dev.listenPort, 51820);
    const expected = [
      {
        publicKey: a.publicKey,
        endpoint: '192.0.2.2:51820',
        allowedIps: ['10.2.0.0/24', '100.64.0.2/32'],
        persistentKeepaliveSeconds: 25,
      },
      {
        publicKey: b.publicKey,
        endpoint: '',
        allowedIps: ['10.3.0.0/24', '100.64.0.3/32', '2001:db8:3::/48'],
        persistentKeepaliveSeconds: 0,
      },
      {
        publicKey: c.publicKey,
        endpoint: '[2001:db8::4]:51820',
        allowedIps: ['100.64.0.4/32'],
        persistentKeepaliveSeconds: 0,
      },
    ].sort((x, y) => (x.publicKey < y.publicKey ? -1 : 1));
    t.same(
      dev.peers.map(({ publicKey, endpoint, allowedIps, persistentKeepaliveSeconds }) => ({
        publicKey,
        endpoint,
        allowedIps,
        persistentKeepaliveSeconds,
      })),
      expected,
    );
    for (const p of dev.peers) {
      t.equal(p.latestHandshakeUnix, 0);
      t.equal(typeof p.rxBytes, 'bigint');
    }

    // Same config again: nothing changes.
    await host.wireguard.sync(ifname, { privateKeyFile: key.path, listenPort: 51820, peers: [c, b, a] });
    t.same(await host.wireguard.observe(ifname), dev, 'a repeated sync is a no-op');

    // One peer changed, one removed, one added: the untouched peer is still there, unchanged.
    const b2 = { ...b, allowedIps: ['100.64.0.3/32'], persistentKeepaliveSeconds: 10 };
    const d = peer(['100.64.0.5/32']);
    await host.wireguard.sync(ifname, { privateKeyFile: key.path, listenPort: 51820, peers: [a, b2, d] });
    const dev2 = (await host.wireguard.observe(ifname))!;
    t.same(
      dev2.peers.map((p) => p.publicKey),
      [a, b2, d].map((p) => p.publicKey).sort(),
    );
    t.same(
      dev2.peers.find((p) => p.publicKey === a.publicKey),
      dev.peers.find((p) => p.publicKey === a.publicKey),
      'unchanged peer kept as it was',
    );
    const ob2 = dev2.peers.find((p) => p.publicKey === b.publicKey)!;
    t.same([ob2.allowedIps, ob2.persistentKeepaliveSeconds], [['100.64.0.3/32'], 10], 'changed peer updated');

    await host.wireguard.sync(ifname, { privateKeyFile: key.path, listenPort: 51820, peers: [] });
    t.same((await host.wireguard.observe(ifname))!.peers, [], 'all peers removed');
  });

  t.test('wireguard: sync of a missing interface fails with the command and stderr', async (t) => {
    const { host, ifname } = await make(t);
    const key = keyFile(t);
    try {
      await host.wireguard.sync(ifname, { privateKeyFile: key.path, listenPort: 51820, peers: [] });
      t.fail('expected a failure');
    } catch (e) {
      t.ok(isCrosslinkError(e) && e.code === 'host_command_failed', 'HostCommandError');
    }
  });

  t.test('drift by hand: a peer removed and the link set down are observed', async (t) => {
    const { host, ifname, mode, backdoor } = await make(t);
    const key = keyFile(t);
    await host.wireguard.create(ifname, mode);
    await host.links.setUp(ifname, 1420);
    const a = peer(['100.64.0.2/32']);
    const b = peer(['100.64.0.3/32']);
    await host.wireguard.sync(ifname, { privateKeyFile: key.path, listenPort: 51820, peers: [a, b] });
    t.equal((await host.wireguard.observe(ifname))?.peers.length, 2);
    await backdoor.deletePeer(ifname, a.publicKey);
    const dev = await eventually(
      () => host.wireguard.observe(ifname),
      (d) => d?.peers.length === 1,
    );
    t.same(
      dev?.peers.map((p) => p.publicKey),
      [b.publicKey],
      'the peer removed by hand is gone',
    );
    t.equal((await host.links.observe(ifname)).isUp, true);
    await backdoor.setLinkDown(ifname);
    const link = await eventually(
      () => host.links.observe(ifname),
      (l) => !l.isUp,
    );
    t.equal(link.isUp, false, 'the link set down by hand is observed down');
  });

  t.test('links: up, mtu and addresses (canonical, sorted, idempotent)', async (t) => {
    const { host, ifname, mode } = await make(t);
    await host.wireguard.create(ifname, mode);
    await host.links.setUp(ifname, 1380);
    await host.links.addAddress(ifname, '100.64.0.7/10');
    await host.links.addAddress(ifname, '2001:DB8:0::7/64');
    await host.links.addAddress(ifname, '100.64.0.7/10'); // again: no error
    let link = await host.links.observe(ifname);
    t.same(link, { exists: true, isUp: true, mtu: 1380, addresses: ['100.64.0.7/10', '2001:db8::7/64'] });
    await host.links.delAddress(ifname, '2001:db8::7/64');
    await host.links.delAddress(ifname, '2001:db8::7/64'); // absent: no error
    link = await host.links.observe(ifname);
    t.same(link.addresses, ['100.64.0.7/10']);
    await t.rejects(host.links.setUp('xlnosuchif0', 1420), 'setUp of a missing link fails');
  });

  t.test('routes: only proto 147 is observed and changed; routes by hand stay untouched', async (t) => {
    const { host, ifname, mode, backdoor } = await make(t);
    await host.wireguard.create(ifname, mode);
    await host.links.setUp(ifname, 1420);
    await backdoor.addForeignRoute('10.99.0.0/24');
    t.same(await host.routes.observe(), [], 'a foreign route is not observed');

    const r = (prefix: string) => ({ prefix, dev: ifname });
    await host.routes.apply({ add: [r('10.3.0.0/24'), r('2001:db8:2::/48'), r('10.2.0.0/24')], del: [] });
    t.same(await host.routes.observe(), [r('10.2.0.0/24'), r('10.3.0.0/24'), r('2001:db8:2::/48')]);
    await host.routes.apply({ add: [r('10.2.0.0/24')], del: [] }); // already there: no error
    await host.routes.apply({ add: [r('10.4.0.0/24')], del: [r('10.3.0.0/24'), r('10.5.0.0/24')] }); // 10.5 absent: no error
    t.same(await host.routes.observe(), [r('10.2.0.0/24'), r('10.4.0.0/24'), r('2001:db8:2::/48')]);

    // Deleting "our" route on the foreign prefix does not touch the foreign one.
    await host.routes.apply({ add: [], del: [r('10.99.0.0/24')] });
    t.same(await backdoor.foreignRoutes(), ['10.99.0.0/24'], 'foreign route still there');
    // Adding on the foreign prefix is refused rather than replacing someone else's route; the
    // other changes of the batch are still applied.
    try {
      await host.routes.apply({ add: [r('10.99.0.0/24'), r('10.6.0.0/24')], del: [] });
      t.fail('expected a failure');
    } catch (e) {
      t.ok(isCrosslinkError(e) && e.code === 'host_command_failed', 'HostCommandError');
    }
    t.same(await backdoor.foreignRoutes(), ['10.99.0.0/24'], 'foreign route untouched');
    t.same(await host.routes.observe(), [r('10.2.0.0/24'), r('10.4.0.0/24'), r('10.6.0.0/24'), r('2001:db8:2::/48')]);

    await host.routes.apply({ add: [], del: await host.routes.observe() });
    t.same(await host.routes.observe(), []);
    await host.routes.apply({ add: [r('10.7.0.0/24')], del: [] });
    await host.wireguard.remove(ifname);
    t.same(await host.routes.observe(), [], 'routes go with the interface');
    t.same(await backdoor.foreignRoutes(), ['10.99.0.0/24']);
  });

  t.test(
    'prepare (where a port offers it) writes nothing; the prepared sync and route batch apply as unprepared ones',
    async (t) => {
      const { host, ifname, mode } = await make(t);
      const key = keyFile(t);
      await host.wireguard.create(ifname, mode);
      await host.links.setUp(ifname, 1420);
      const device = {
        privateKeyFile: key.path,
        listenPort: 51820,
        peers: [peer(['10.2.0.0/24', '100.64.0.2/32'], '192.0.2.2:51820', 25)],
      };
      const r = (prefix: string) => ({ prefix, dev: ifname });
      const changes = { add: [r('10.3.0.0/24'), r('10.2.0.0/24')], del: [] };
      host.wireguard.prepare?.(ifname, device);
      host.routes.prepare?.(changes);
      t.same((await host.wireguard.observe(ifname))!.peers, [], 'no peer yet');
      t.same(await host.routes.observe(), [], 'no route yet');
      await host.wireguard.sync(ifname, device);
      await host.routes.apply(changes);
      t.same(
        (await host.wireguard.observe(ifname))!.peers.map((p) => [p.publicKey, p.allowedIps]),
        [[device.peers[0]!.publicKey, ['10.2.0.0/24', '100.64.0.2/32']]],
      );
      t.same(await host.routes.observe(), [r('10.2.0.0/24'), r('10.3.0.0/24')]);
      // Used once: the same objects again go through the unprepared path and change nothing.
      await host.wireguard.sync(ifname, device);
      await host.routes.apply(changes);
      t.same(await host.routes.observe(), [r('10.2.0.0/24'), r('10.3.0.0/24')]);
    },
  );

  t.test('firewall: replace, stable fingerprint, drift changes it, remove is idempotent', async (t) => {
    const { host, ifname, backdoor } = await make(t);
    const ruleset = renderFirewall(FW, { wgInterface: ifname });
    t.same(await host.firewall.observe(), { exists: false, fingerprint: '' });
    const fp = await host.firewall.replace(ruleset);
    t.match(fp, /^[0-9a-f]{64}$/);
    t.same(await host.firewall.observe(), { exists: true, fingerprint: fp });
    t.same(await host.firewall.observe(), { exists: true, fingerprint: fp }, 'stable');
    t.equal(await host.firewall.replace(ruleset), fp, 'same ruleset, same fingerprint');
    if (host.firewall.counters) {
      const zero = { packets: 0n, bytes: 0n };
      t.same(
        await host.firewall.counters(),
        {
          dropped_inbound: zero,
          dropped_local: zero,
          dropped_outbound: zero,
          'flows/inbound/ping': zero,
          'flows/outbound/web': zero,
          'new/inbound/ping': zero,
          'new/outbound/web': zero,
        },
        'the drop counters and, per rule and direction, its connections and flows',
      );
    }

    await backdoor.tamperFirewall('rule');
    const afterRule = await eventually(
      () => host.firewall.observe(),
      (o) => o.fingerprint !== fp,
    );
    t.equal(afterRule.exists, true);
    t.not(afterRule.fingerprint, fp, 'a rule added by hand changes the fingerprint');

    t.equal(await host.firewall.replace(ruleset), fp, 'put right');
    await backdoor.tamperFirewall('element');
    const afterElement = await eventually(
      () => host.firewall.observe(),
      (o) => o.fingerprint !== fp,
    );
    t.not(afterElement.fingerprint, fp, 'a set element deleted by hand changes the fingerprint');

    t.equal(await host.firewall.replace(ruleset), fp);
    await backdoor.deleteFirewallTable();
    t.same(
      await eventually(
        () => host.firewall.observe(),
        (o) => !o.exists,
      ),
      { exists: false, fingerprint: '' },
      'table deleted by hand',
    );

    const other = renderFirewall(firewall({}), { wgInterface: ifname });
    const fp2 = await host.firewall.replace(other);
    t.not(fp2, fp, 'another ruleset, another fingerprint');
    t.same(await host.firewall.observe(), { exists: true, fingerprint: fp2 });
    await t.rejects(host.firewall.replace('table inet crosslink { this is not nft'), 'a bad ruleset is refused');
    t.same(
      await host.firewall.observe(),
      { exists: true, fingerprint: fp2 },
      'a refused ruleset leaves the table as it was',
    );

    await host.firewall.remove();
    await host.firewall.remove(); // no-op
    t.same(await host.firewall.observe(), { exists: false, fingerprint: '' });
    if (host.firewall.counters) t.same(await host.firewall.counters(), {}, 'no counters without a table');
  });

  t.test('sysctl: get and set forwarding', async (t) => {
    const { host } = await make(t);
    await host.sysctl.set('net.ipv4.ip_forward', '1');
    t.equal(await host.sysctl.get('net.ipv4.ip_forward'), '1');
    await host.sysctl.set('net.ipv4.ip_forward', '0');
    t.equal(await host.sysctl.get('net.ipv4.ip_forward'), '0');
    await t.rejects(host.sysctl.get('net.ipv4.no_such_key'));
  });
}
