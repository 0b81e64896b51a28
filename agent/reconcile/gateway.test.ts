// Virtual gateway addresses through plan() and the reconciler on the FakeHost: added to the LAN
// interface in the gateway's network and announced while the box serves the subnet, removed when it
// stops, never touching addresses Crosslink did not add, and left alone until the claim is allowed.
import { create } from '@bufbuild/protobuf';
import t from 'tap';
import { silentLogger } from '../../lib/logger.js';
import { LocalSubnetSchema } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { FakeHost, FAKE_WRITE_OPS } from '../host/fake-host.js';
import { renderFirewall } from '../host/firewall-render.js';
import { publicKeyOf } from '../state.js';
import { config, SETTINGS } from './reconcile.fixture.js';
import { Reconciler } from './loop.js';
import { plan } from './plan.js';

const PRIVATE_KEY = Buffer.alloc(32, 0x48).toString('base64');
const settings = { ...SETTINGS, publicKey: publicKeyOf(PRIVATE_KEY) };

const serving = (gen: number) =>
  config(gen, {
    localSubnets: [
      create(LocalSubnetSchema, {
        name: 'care-records',
        zone: 'n3',
        prefixes: ['10.20.1.0/24', 'fd00:20:1::/64'],
        gateways: ['10.20.1.1/24', 'fd00:20:1::1/64'],
      }),
    ],
  });
const notServing = (gen: number) => config(gen);

function setup() {
  const host = new FakeHost({ readPrivateKey: async () => `${PRIVATE_KEY}\n` });
  host.addLink('lan0', { addresses: ['10.20.1.2/24', 'fd00:20:1::2/64'] });
  host.addLink('lan1', { addresses: ['10.20.2.2/28'] });
  const r = new Reconciler({
    host,
    clock: { nowMs: () => 0 },
    log: silentLogger(),
    settings,
    renderFirewall,
    random: () => 0.5,
  });
  return { host, r };
}

const addressesOf = async (host: FakeHost, ifname: string) => (await host.links.observe(ifname)).addresses;
const writes = (host: FakeHost) => FAKE_WRITE_OPS.reduce((n, op) => n + (host.calls.get(op) ?? 0), 0);

t.test('serving: the gateways go on the LAN in their network and are announced; idempotent', async (t) => {
  const { host, r } = setup();
  r.allowGatewayClaim();
  r.setDesired(serving(1));
  const out = (await r.reconcile())!;
  t.same(out.errors, []);
  t.same(
    out.steps.filter((s) => s.kind.startsWith('gateway')),
    [
      { kind: 'gateway.add', ifname: 'lan0', cidr: '10.20.1.1/24' },
      { kind: 'gateway.add', ifname: 'lan0', cidr: 'fd00:20:1::1/64' },
    ],
  );
  t.same(out.steps.at(-1)?.kind, 'gateway.add', 'gateways come last, after firewall, peers, routes and forwarding');
  t.same(await addressesOf(host, 'lan0'), ['10.20.1.1/24', '10.20.1.2/24', 'fd00:20:1::1/64', 'fd00:20:1::2/64']);
  t.same(host.announcements, ['lan0 10.20.1.1/24', 'lan0 fd00:20:1::1/64']);
  const before = writes(host);
  t.same((await r.reconcile())!.steps, [], 'nothing left to do');
  t.equal(writes(host), before, 'no write on the second run');
});

t.test('no longer serving: only the gateways are removed, the box address stays', async (t) => {
  const { host, r } = setup();
  r.allowGatewayClaim();
  r.setDesired(serving(1));
  await r.reconcile();
  await host.links.addAddress('lan0', '10.20.1.99/24'); // someone's own secondary address
  r.setDesired(notServing(2));
  const out = (await r.reconcile())!;
  t.same(out.errors, []);
  t.same(
    out.steps.filter((s) => s.kind.startsWith('gateway')),
    [
      { kind: 'gateway.del', ifname: 'lan0', cidr: '10.20.1.1/24' },
      { kind: 'gateway.del', ifname: 'lan0', cidr: 'fd00:20:1::1/64' },
    ],
  );
  t.same(await addressesOf(host, 'lan0'), ['10.20.1.2/24', '10.20.1.99/24', 'fd00:20:1::2/64']);
  t.same((await r.reconcile())!.steps, []);
});

t.test('before the claim is allowed (restart with a saved config) gateways are left as they are', async (t) => {
  const { host, r } = setup();
  r.setDesired(serving(1));
  t.same(
    (await r.reconcile())!.steps.filter((s) => s.kind.startsWith('gateway')),
    [],
    'not added from the saved config',
  );
  t.same(host.announcements, []);
  // A gateway still on the box from before the restart is not removed either...
  await host.links.addAddress('lan0', '10.20.1.1/24');
  r.setDesired(notServing(2));
  t.same(
    (await r.reconcile())!.steps.filter((s) => s.kind.startsWith('gateway')),
    [],
  );
  // ...until the controller has spoken: then the remembered gateway is released.
  r.allowGatewayClaim();
  const out = (await r.reconcile())!;
  t.same(
    out.steps.filter((s) => s.kind.startsWith('gateway')),
    [{ kind: 'gateway.del', ifname: 'lan0', cidr: '10.20.1.1/24' }],
  );
  t.same(await addressesOf(host, 'lan0'), ['10.20.1.2/24', 'fd00:20:1::2/64']);
});

t.test('a box with no address in the gateway network reports a failed gateway step', async (t) => {
  const host = new FakeHost({ readPrivateKey: async () => `${PRIVATE_KEY}\n` });
  host.addLink('lan0', { addresses: ['192.168.9.2/24'] });
  const r = new Reconciler({
    host,
    clock: { nowMs: () => 0 },
    log: silentLogger(),
    settings,
    renderFirewall,
    random: () => 0.5,
  });
  r.allowGatewayClaim();
  r.setDesired(serving(1));
  const out = (await r.reconcile())!;
  t.same(
    out.errors.map((e) => e.step),
    ['gateway', 'gateway'],
  );
  t.match(out.errors[0]!.message, /gateway 10\.20\.1\.1\/24: no interface of this box has an address in its network/);
  await r.stop();
});

t.test('plan is pure: no interface addresses observed means no gateway steps', async (t) => {
  const { r } = setup();
  r.allowGatewayClaim();
  r.setDesired(serving(1));
  const observed = await r.observe(r.desiredState!);
  t.ok(observed.interfaceAddresses);
  const { interfaceAddresses: _ia, ...without } = observed;
  t.same(
    plan(r.desiredState!, without).filter((s) => s.kind.startsWith('gateway')),
    [],
  );
});

t.test(
  'a restarted box: a run for the saved config that is still observing when the controller allows claims takes no gateway',
  async (t) => {
    const { host, r } = setup();
    // The saved config (the box served before it went down); its run is under way...
    r.setDesired(serving(1));
    const links = host.links;
    const observeAll = links.observeAll!.bind(links);
    let release: () => void = () => undefined;
    const held = new Promise<void>((res) => (release = res));
    links.observeAll = async () => {
      await held;
      return observeAll();
    };
    const savedRun = r.reconcile();
    await new Promise((res) => setTimeout(res, 10));
    // ...when the controller's first config says the standby serves now, and allows claims.
    r.setDesired(notServing(2));
    r.allowGatewayClaim();
    release();
    const first = (await savedRun)!;
    t.same(
      first.steps.filter((s) => s.kind.startsWith('gateway')),
      [],
      'the run for the saved config claims nothing',
    );
    const next = (await r.reconcile())!;
    t.same(
      next.steps.filter((s) => s.kind.startsWith('gateway')),
      [],
      "nor does the controller's config",
    );
    t.same(await addressesOf(host, 'lan0'), ['10.20.1.2/24', 'fd00:20:1::2/64']);
    t.same(host.announcements, [], 'no gratuitous ARP pulled the LAN away from the standby');
  },
);

t.test(
  "a started box's first config with a gateway: the early reading serves the run, with the addresses read for it",
  async (t) => {
    const { host, r } = setup();
    r.start();
    r.allowGatewayClaim();
    await r.reconcile(); // no config yet
    const wgReads = host.calls.get('wireguard.observe') ?? 0;
    r.setDesired(serving(1));
    const out = (await r.reconcile())!;
    t.same(out.errors, []);
    t.equal((host.calls.get('wireguard.observe') ?? 0) - wgReads, 1, 'one reading (the early one)');
    t.ok(
      out.steps.some((s) => s.kind === 'gateway.add'),
      'the gateways were planned from it',
    );
    t.same(await addressesOf(host, 'lan0'), ['10.20.1.1/24', '10.20.1.2/24', 'fd00:20:1::1/64', 'fd00:20:1::2/64']);
    await r.stop();
  },
);
