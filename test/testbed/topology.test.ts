// The pure layout: names, addresses and ip batch lines from a description; runs without root.
import t from 'tap';
import { isCrosslinkError } from '../../lib/errors.js';
import { planTopology, type TestbedDescription } from './topology.js';

const desc: TestbedDescription = {
  controller: true,
  lans: [{ name: 'ward', gateway: '10.1.0.254' }],
  boxes: [
    { name: 'a', lans: [{ lan: 'ward', address: '10.1.0.1/24', address6: 'fd01::1/64' }] },
    {
      name: 'b',
      lans: [
        { lan: 'ward', address: '10.1.0.2/24' },
        { lan: 'office', address: '10.2.0.1/16' },
      ],
    },
  ],
  hosts: [
    { name: 'nurse', lan: 'ward', address: '10.1.0.10/24', address6: 'fd01::10/64' },
    { name: 'clerk', lan: 'office', address: '10.2.3.4/16', gateway: '10.2.0.9' },
  ],
};

t.test('layout of a small topology', async (t) => {
  const topo = planTopology(desc, 'xltest');
  t.same(topo.namespaces, [
    'xltest-wan',
    'xltest-controller',
    'xltest-lan-ward',
    'xltest-lan-office',
    'xltest-a',
    'xltest-b',
    'xltest-nurse',
    'xltest-clerk',
  ]);
  t.match(topo.controller, { address: '172.31.0.2', gateway: '172.31.0.1', address6: 'fd31:0:0::2' });
  const [a, b] = topo.boxes;
  if (!a || !b) throw new Error('expected two boxes');
  t.match(a, { index: 1, wanAddress: '172.31.1.2', wanGateway: '172.31.1.1', wgInterface: 'xltestw1' });
  t.match(b.lans[1], {
    lan: 'office',
    interface: 'lan1',
    address: '10.2.0.1',
    prefixLength: 16,
    subnet: '10.2.0.0/16',
  });
  t.match(a.lans[0], { subnet6: 'fd01::/64', address6: 'fd01::1' });
  const [nurse, clerk] = topo.hosts;
  if (!nurse || !clerk) throw new Error('expected two hosts');
  t.equal(nurse.gateway, '10.1.0.254', 'LAN gateway wins over the first box');
  t.equal(nurse.gateway6, 'fd01::1', 'no LAN gateway6: the first box with an IPv6 address on the LAN');
  t.equal(clerk.gateway, '10.2.0.9', "the host's own gateway wins");
  t.equal(clerk.subnet, '10.2.0.0/16');
  t.same(
    topo.veths.filter((l) => l.includes('xltest-lan-ward')),
    [
      'link add p0 netns xltest-lan-ward type veth peer name lan0 netns xltest-a',
      'link add p1 netns xltest-lan-ward type veth peer name lan0 netns xltest-b',
      'link add p2 netns xltest-lan-ward type veth peer name eth0 netns xltest-nurse',
    ],
  );
  for (const l of [...topo.veths, ...topo.batches.flatMap((x) => x.lines)]) {
    for (const m of l.matchAll(/(?:name|link add|dev) (\S+)/g)) t.ok(m[1]!.length <= 15, `interface name ${m[1]}`);
  }
  t.same(
    topo.batches.map((x) => x.phase),
    [1, 2, 2, 2, 2, 2, 1, 1],
    'router and bridges first',
  );
  t.ok(topo.sysctls.find((s) => s.netns === 'xltest-a')?.settings.includes('net.ipv4.ip_forward=1'));
  t.notOk(topo.sysctls.find((s) => s.netns === 'xltest-nurse')?.settings.includes('net.ipv4.ip_forward=1'));
  t.same(planTopology(desc, 'xltest'), topo, 'deterministic');
});

t.test('two underlays with no route between them', async (t) => {
  const topo = planTopology(
    {
      controller: true,
      underlays: ['n3-wan', 'psn-wan'],
      boxes: [
        { name: 'gp', underlays: ['n3-wan'], lans: [{ lan: 'gp-lan', address: '10.30.1.1/24' }] },
        { name: 'civic', underlays: ['psn-wan'], lans: [{ lan: 'civic-lan', address: '10.50.1.1/24' }] },
        { name: 'hub', underlays: ['n3-wan', 'psn-wan'], lans: [{ lan: 'hub-lan', address: '10.40.1.1/24' }] },
      ],
    },
    'xltest',
  );
  t.same(
    topo.underlays.map((u) => [u.name, u.network, u.netns]),
    [
      ['underlay', 'n3-wan', 'xltest-wan-n3-wan'],
      ['psn-wan', 'psn-wan', 'xltest-wan-psn-wan'],
    ],
  );
  const [gp, civic, hub] = topo.boxes;
  if (!gp || !civic || !hub) throw new Error('expected three boxes');
  t.same(
    gp.underlays.map((u) => [u.underlay, u.interface, u.address]),
    [['n3-wan', 'wan', '172.31.1.2']],
  );
  t.same(
    civic.underlays.map((u) => [u.underlay, u.interface, u.address]),
    [['psn-wan', 'wan', '172.30.2.2']],
  );
  t.equal(civic.wanAddress, '172.30.2.2', "a box's wanAddress is on its first underlay");
  t.same(
    hub.underlays.map((u) => [u.underlay, u.interface, u.address, u.address6]),
    [
      ['n3-wan', 'wan', '172.31.3.2', 'fd31:0:3::2'],
      ['psn-wan', 'wan1', '172.30.3.2', 'fd31:1:3::2'],
    ],
  );
  t.same(
    topo.controller!.underlays.map((u) => u.address),
    ['172.31.0.2', '172.30.0.2'],
    'the controller host is on both',
  );
  const hubLines = topo.batches.find((b) => b.netns === 'xltest-hub')!.lines;
  t.ok(hubLines.includes('route add default via 172.31.3.1'), 'default route over the first cable');
  t.ok(hubLines.includes('route add 172.30.0.0/16 via 172.30.3.1'), 'the second cable reaches only its own underlay');
  // No veth joins the two routers: nothing can be routed from one underlay to the other.
  t.notOk(topo.veths.some((l) => l.includes('xltest-wan-n3-wan') && l.includes('xltest-wan-psn-wan')));
  t.same(
    topo.underlayPorts.get('hub')!.map((p) => [p.underlay, p.interface]),
    [
      ['n3-wan', 'u3'],
      ['psn-wan', 'u3'],
    ],
  );
  t.throws(
    () =>
      planTopology(
        {
          underlays: ['n3-wan'],
          boxes: [{ name: 'a', underlays: ['psn'], lans: [{ lan: 'l', address: '10.0.0.1/24' }] }],
        },
        'xltest',
      ),
    { message: /boxes\[0\]\.underlays\[0\]: no underlay named "psn" \(declared: n3-wan\)/ },
  );
});

const invalid: [string, TestbedDescription, RegExp][] = [
  ['bad prefix', { prefix: 'x', boxes: [] }, /prefix/],
  [
    'duplicate names',
    {
      boxes: [{ name: 'a', lans: [{ lan: 'l', address: '10.0.0.1/24' }] }],
      hosts: [{ name: 'a', lan: 'l', address: '10.0.0.2/24' }],
    },
    /hosts\[0\]\.name: "a" is used twice/,
  ],
  ['reserved name', { boxes: [{ name: 'wan', lans: [{ lan: 'l', address: '10.0.0.1/24' }] }] }, /reserved/],
  ['unknown LAN', { boxes: [], hosts: [{ name: 'h', lan: 'nowhere', address: '10.0.0.2/24' }] }, /hosts\[0\]\.lan/],
  [
    'address without length',
    { boxes: [{ name: 'a', lans: [{ lan: 'l', address: '10.0.0.1' }] }] },
    /boxes\[0\]\.lans\[0\]\.address:/,
  ],
  [
    'IPv6 where IPv4 belongs',
    { boxes: [{ name: 'a', lans: [{ lan: 'l', address: 'fd00::1/64' }] }] },
    /expected an IPv4/,
  ],
  ['box without LAN', { boxes: [{ name: 'a', lans: [] }] }, /at least one LAN/],
];
for (const [name, d, re] of invalid) {
  t.test(`rejects: ${name}`, async (t) => {
    let caught: unknown;
    try {
      planTopology(d, d.prefix ?? 'xltest');
    } catch (e) {
      caught = e;
    }
    t.ok(isCrosslinkError(caught) && caught.code === 'config_invalid', 'config_invalid');
    t.match((caught as Error).message, re);
  });
}
