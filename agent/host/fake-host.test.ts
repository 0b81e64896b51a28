import t from 'tap';
import { hostContract } from './host.contract.js';
import { FakeHost } from './fake-host.js';
import { isCrosslinkError } from '../../lib/errors.js';

let n = 0;
function makeFake() {
  const host = new FakeHost();
  host.addLink('eth0', { addresses: ['192.0.2.10/24'] });
  return {
    host,
    ifname: `xlfake${n++}`,
    mode: 'userspace' as const,
    backdoor: {
      addForeignRoute: async (prefix: string) => host.addForeignRoute(prefix, 'lo', 4),
      foreignRoutes: async () =>
        host
          .allRoutes()
          .filter((r) => r.proto !== 147)
          .map((r) => r.prefix),
      deleteFirewallTable: async () => host.deleteFirewallTable(),
      tamperFirewall: async (kind: 'rule' | 'element') =>
        kind === 'rule' ? host.tamperFirewall() : host.deleteFirewallElement(),
      deletePeer: async (ifname: string, publicKey: string) => host.deletePeerByHand(ifname, publicKey),
      setLinkDown: async (ifname: string) => host.setLinkDownByHand(ifname),
    },
  };
}

t.test('fake host passes the host contract', async (t) => {
  hostContract(t, async () => makeFake());
});

t.test('fake host counts writes, not reads', async (t) => {
  const { host, ifname } = makeFake();
  await host.wireguard.create(ifname, 'userspace');
  await host.links.setUp(ifname, 1420);
  await host.wireguard.observe(ifname);
  await host.links.observe(ifname);
  await host.routes.observe();
  await host.firewall.observe();
  t.equal(host.writeCount(), 2);
  t.equal(host.calls.get('links.observe'), 1);
  host.resetCounts();
  t.equal(host.writeCount(), 0);
  t.same(host.log, []);
});

t.test('fake host fails an operation on request, like the real command would', async (t) => {
  const { host, ifname } = makeFake();
  host.failNext('wireguard.create', { stderr: 'Cannot open TUN device', exitCode: 2 });
  try {
    await host.wireguard.create(ifname, 'userspace');
    t.fail('expected a failure');
  } catch (e) {
    t.ok(isCrosslinkError(e) && e.code === 'host_command_failed');
    t.match(e, { exitCode: 2, stderr: 'Cannot open TUN device', argv: ['wireguard-go', 'IF'] });
  }
  t.equal(await host.wireguard.observe(ifname), null, 'a failed create left nothing');
  await host.wireguard.create(ifname, 'userspace'); // the failure was for one call only
  t.ok(await host.wireguard.observe(ifname));

  host.failAlways('routes.apply');
  await t.rejects(host.routes.apply({ add: [], del: [] }));
  await t.rejects(host.routes.apply({ add: [], del: [] }));
  host.clearFailure('routes.apply');
  await host.routes.apply({ add: [], del: [] });
});

t.test('fake host: peer statistics survive an unchanged sync; counters reset with the table', async (t) => {
  const { host, ifname } = makeFake();
  const pk = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
  const fake = new FakeHost({ readPrivateKey: async () => 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=' });
  await fake.wireguard.create(ifname, 'userspace');
  const desired = {
    privateKeyFile: '/nowhere',
    listenPort: 51820,
    peers: [{ publicKey: pk, endpoint: '192.0.2.2:51820', allowedIps: ['10.2.0.0/24'], persistentKeepaliveSeconds: 0 }],
  };
  await fake.wireguard.sync(ifname, desired);
  fake.setPeerStats(ifname, pk, { latestHandshakeUnix: 1700000000, rxBytes: 10n, txBytes: 20n });
  await fake.wireguard.sync(ifname, desired);
  t.match((await fake.wireguard.observe(ifname))!.peers[0], {
    latestHandshakeUnix: 1700000000,
    rxBytes: 10n,
    txBytes: 20n,
  });

  await host.firewall.replace('table inet crosslink {\n\tcounter dropped_inbound {\n\t}\n}\n');
  host.bumpCounter('dropped_inbound', 3);
  t.same(await host.firewall.counters!(), { dropped_inbound: { packets: 3n, bytes: 300n } });
  await host.firewall.replace('table inet crosslink {\n\tcounter dropped_inbound {\n\t}\n}\n');
  t.same(await host.firewall.counters!(), { dropped_inbound: { packets: 0n, bytes: 0n } });
});
