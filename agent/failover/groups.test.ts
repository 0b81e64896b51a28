// Serving groups through the reconciler on the FakeHost: a sending box gives a group's prefixes to
// the candidate the failover view names (the first before any view), moving them touches only those
// two peers; a candidate box holds the group's gateway only while the view says so, and leaves it
// alone before the first view. Bad groups are refused with the field named.
import { create } from '@bufbuild/protobuf';
import t from 'tap';
import { silentLogger } from '../../lib/logger.js';
import {
  LivenessSchema,
  LocalSubnetSchema,
  PeerSchema,
  ServingGroupSchema,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import { FakeHost } from '../host/fake-host.js';
import { renderFirewall } from '../host/firewall-render.js';
import { publicKeyOf } from '../state.js';
import { InvalidConfigError } from '../reconcile/desired.js';
import { Reconciler } from '../reconcile/loop.js';
import { config, keyOf, SETTINGS } from '../reconcile/reconcile.fixture.js';

const PRIVATE_KEY = Buffer.alloc(32, 0x49).toString('base64');
const settings = { ...SETTINGS, publicKey: publicKeyOf(PRIVATE_KEY) };

const peer = (name: string, n: number, allowed: string[]) =>
  create(PeerSchema, {
    name,
    publicKey: keyOf(n),
    endpoint: `192.0.2.${n}:51820`,
    allowedIps: allowed,
    overlayIp: allowed[0]!.split('/')[0]!,
  });

const sender = (gen: number) =>
  config(gen, {
    agentName: 'gp',
    peers: [
      peer('civic-a', 1, ['100.64.0.1/32']),
      peer('civic-b', 2, ['100.64.0.2/32']),
      peer('other', 3, ['100.64.0.3/32', '172.16.0.0/24']),
    ],
    routes: ['10.50.1.0/24', '172.16.0.0/24'],
    servingGroups: [
      create(ServingGroupSchema, { name: 'civic-lan', prefixes: ['10.50.1.0/24'], candidates: ['civic-a', 'civic-b'] }),
    ],
    liveness: create(LivenessSchema, { intervalMs: 100, multiplier: 3, holdDownMs: 2000, port: 51899 }),
  });

const candidate = (gen: number) =>
  config(gen, {
    agentName: 'civic-b',
    peers: [peer('civic-a', 1, ['100.64.0.1/32']), peer('gp', 4, ['100.64.0.4/32', '10.30.1.0/24'])],
    routes: ['10.30.1.0/24'],
    localSubnets: [
      create(LocalSubnetSchema, {
        name: 'civic-lan',
        zone: 'psn',
        prefixes: ['10.50.1.0/24'],
        gateways: ['10.50.1.1/24'],
      }),
    ],
    servingGroups: [
      create(ServingGroupSchema, {
        name: 'civic-lan',
        prefixes: ['10.50.1.0/24'],
        candidates: ['civic-a', 'civic-b'],
        subnets: ['civic-lan'],
      }),
    ],
  });

function setup() {
  const host = new FakeHost({ readPrivateKey: async () => `${PRIVATE_KEY}\n` });
  host.addLink('lan0', { addresses: ['10.50.1.3/24'] });
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

const allowed = async (host: FakeHost) =>
  Object.fromEntries(
    ((await host.wireguard.observe(settings.interfaceName))?.peers ?? []).map((p) => [p.publicKey, p.allowedIps]),
  );

t.test('a sending box: the group goes to the first candidate, then where the view says', async (t) => {
  const { host, r } = setup();
  t.same(r.setDesired(sender(1)).error, undefined);
  t.equal(r.failoverPlan?.liveness.port, 51899, 'the liveness settings are read');
  t.same((await r.reconcile())!.errors, []);
  let a = await allowed(host);
  t.same(a[keyOf(1)], ['10.50.1.0/24', '100.64.0.1/32'], 'no view yet: the primary carries it');
  t.same(a[keyOf(2)], ['100.64.0.2/32']);
  t.ok(
    r.setFailoverView({ active: new Map([['civic-lan', 'civic-b']]), held: new Set(), isSettled: true }),
    'a change',
  );
  const out = (await r.reconcile())!;
  t.same(out.errors, []);
  a = await allowed(host);
  t.same(a[keyOf(1)], ['100.64.0.1/32'], 'moved off the primary');
  t.same(a[keyOf(2)], ['10.50.1.0/24', '100.64.0.2/32'], 'onto the standby');
  t.same(a[keyOf(3)], ['100.64.0.3/32', '172.16.0.0/24'], 'another peer untouched');
  t.notOk(
    r.setFailoverView({ active: new Map([['civic-lan', 'civic-b']]), held: new Set(), isSettled: true }),
    'the same view: no run',
  );
  t.equal(r.desiredState?.contentHash, 'hash-1', 'the config hash stays the controller’s');
});

t.test('a candidate box: the gateway only while the view says it holds it', async (t) => {
  const { host, r } = setup();
  r.allowGatewayClaim();
  r.setDesired(candidate(1));
  await host.links.addAddress('lan0', '10.50.1.1/24'); // held before a restart
  let out = (await r.reconcile())!;
  t.same(out.errors, []);
  t.same(
    out.steps.filter((s) => s.kind.startsWith('gateway')),
    [],
    'before the first view the gateway is left as it is',
  );
  r.setFailoverView({ active: new Map(), held: new Set(), isSettled: true });
  out = (await r.reconcile())!;
  t.same(
    out.steps.filter((s) => s.kind.startsWith('gateway')),
    [{ kind: 'gateway.del', ifname: 'lan0', cidr: '10.50.1.1/24' }],
    'not holding: removed',
  );
  r.setFailoverView({ active: new Map(), held: new Set(['civic-lan']), isSettled: true });
  out = (await r.reconcile())!;
  t.same(
    out.steps.filter((s) => s.kind.startsWith('gateway')),
    [{ kind: 'gateway.add', ifname: 'lan0', cidr: '10.50.1.1/24' }],
    'holding: added',
  );
});

t.test('bad groups are refused, naming the field; the previous config stays', async (t) => {
  const { r } = setup();
  r.setDesired(sender(1));
  const bad = sender(2);
  bad.servingGroups[0]!.candidates = ['civic-a', 'nobody'];
  bad.servingGroups[0]!.prefixes = ['10.50.1.0/33'];
  const res = r.setDesired(bad);
  t.ok(res.error instanceof InvalidConfigError);
  t.match(res.error?.message, /serving_groups\[0\]\.prefixes\[0\]/);
  t.match(res.error?.message, /serving_groups\[0\]\.candidates\[1\]: "nobody" is not one of this box's peers/);
  t.equal(r.desiredState?.generation, 1n);
});
