import t from 'tap';
import {
  desiredState,
  InvalidConfigError,
  SYSCTL_IPV4_FORWARD,
  SYSCTL_IPV6_FORWARD,
  type DesiredState,
} from './desired.js';
import { plan, describeStep, type ObservedState } from './plan.js';
import { canonicalEndpoint, strictCanonicalPrefix } from '../host/canonical.js';
import { NAMED, SETTINGS, config, keyOf, stubRenderFirewall } from './reconcile.fixture.js';

const desiredOf = (name: string) => desiredState(NAMED[name]!, SETTINGS, stubRenderFirewall);

/** A host that already looks exactly like `d`. */
function matching(d: DesiredState): ObservedState {
  return {
    wireguard: {
      publicKey: d.wireguard.publicKey,
      listenPort: d.wireguard.listenPort,
      peers: d.wireguard.peers.map((p) => ({
        ...p,
        allowedIps: [...p.allowedIps],
        latestHandshakeUnix: 0,
        rxBytes: 0n,
        txBytes: 0n,
      })),
    },
    link: { exists: true, isUp: true, mtu: d.mtu, addresses: [...d.addresses] },
    routes: d.routes.map((r) => ({ ...r })),
    firewall: { exists: true, fingerprint: 'fp-1' },
    firewallRecord: { hash: d.firewall.hash, fingerprint: 'fp-1' },
    sysctls: Object.fromEntries(d.sysctls.map((s) => [s.key, s.value])),
  };
}

const EMPTY_HOST: ObservedState = {
  wireguard: null,
  link: { exists: false, isUp: false, mtu: 0, addresses: [] },
  routes: [],
  firewall: { exists: false, fingerprint: '' },
  firewallRecord: null,
  sysctls: { [SYSCTL_IPV4_FORWARD]: '0', [SYSCTL_IPV6_FORWARD]: '0' },
};

t.test('a host that matches gives no steps, for every named state', async (t) => {
  for (const name of Object.keys(NAMED)) t.same(plan(desiredOf(name), matching(desiredOf(name))), [], name);
});

t.test('empty host: everything, in a fixed order', async (t) => {
  const d = desiredOf('peersRoutesFirewall');
  const steps = plan(d, EMPTY_HOST);
  t.same(
    steps.map((s) => s.kind),
    ['wireguard.create', 'link.up', 'address.add', 'firewall.replace', 'wireguard.sync', 'routes', 'sysctl.set'],
  );
  t.same(steps.map(describeStep), [
    'create xl-test0 (userspace)',
    'up xl-test0 mtu 1420',
    'address add 100.64.0.7/10 dev xl-test0',
    'firewall replace (missing)',
    'wg sync xl-test0 (2 peers, port 51820)',
    'routes add 172.16.5.0/24,172.16.9.0/24 del -',
    'sysctl net.ipv4.ip_forward=1',
  ]);
  t.same(plan(d, EMPTY_HOST), steps, 'deterministic');
  const sync = steps.find((s) => s.kind === 'wireguard.sync');
  t.notOk(sync && 'publicKey' in sync.device, 'the device handed to wg carries no public key field');
});

type Case = { name: string; state?: string; mutate: (o: ObservedState, d: DesiredState) => void; want: string[] };
const cases: Case[] = [
  {
    name: 'link down',
    mutate: (o) => {
      o.link.isUp = false;
    },
    want: ['link.up'],
  },
  {
    name: 'mtu differs',
    mutate: (o) => {
      o.link.mtu = 1500;
    },
    want: ['link.up'],
  },
  {
    name: 'address missing',
    mutate: (o) => {
      o.link.addresses = [];
    },
    want: ['address.add'],
  },
  {
    name: 'foreign address removed',
    mutate: (o) => {
      o.link.addresses.push('10.9.9.9/24');
    },
    want: ['address.del'],
  },
  {
    name: 'link-local address left alone',
    mutate: (o) => {
      o.link.addresses.push('fe80::1/64');
    },
    want: [],
  },
  {
    name: 'address changed: add then delete',
    mutate: (o) => {
      o.link.addresses = ['100.64.0.99/10'];
    },
    want: ['address.add', 'address.del'],
  },
  {
    name: 'peer deleted behind our back',
    mutate: (o) => {
      o.wireguard!.peers.pop();
    },
    want: ['wireguard.sync'],
  },
  {
    name: 'extra peer',
    mutate: (o) => {
      o.wireguard!.peers.push({ ...o.wireguard!.peers[0]!, publicKey: keyOf(99) });
    },
    want: ['wireguard.sync'],
  },
  {
    name: 'allowed ips changed',
    mutate: (o) => {
      o.wireguard!.peers[0]!.allowedIps = ['100.64.0.8/32'];
    },
    want: ['wireguard.sync'],
  },
  {
    name: 'allowed ips in another order',
    mutate: (o) => {
      o.wireguard!.peers[0]!.allowedIps.reverse();
    },
    want: [],
  },
  {
    name: 'keepalive changed',
    mutate: (o) => {
      o.wireguard!.peers[0]!.persistentKeepaliveSeconds = 0;
    },
    want: ['wireguard.sync'],
  },
  {
    name: 'literal endpoint changed',
    mutate: (o) => {
      o.wireguard!.peers[0]!.endpoint = '198.51.100.1:51820';
    },
    want: ['wireguard.sync'],
  },
  {
    name: 'handshake and bytes are not config',
    mutate: (o) => {
      o.wireguard!.peers[0]!.latestHandshakeUnix = 5;
      o.wireguard!.peers[0]!.rxBytes = 9n;
    },
    want: [],
  },
  {
    name: 'listen port changed',
    mutate: (o) => {
      o.wireguard!.listenPort = 1;
    },
    want: ['wireguard.sync'],
  },
  {
    name: 'device has another key',
    mutate: (o) => {
      o.wireguard!.publicKey = keyOf(77);
    },
    want: ['wireguard.sync'],
  },
  {
    name: 'interface gone',
    mutate: (o) => {
      o.wireguard = null;
      o.link = { exists: false, isUp: false, mtu: 0, addresses: [] };
    },
    want: ['wireguard.create', 'link.up', 'address.add', 'wireguard.sync'],
  },
  {
    name: 'route deleted',
    mutate: (o) => {
      o.routes.pop();
    },
    want: ['routes'],
  },
  {
    name: 'stray route of ours',
    mutate: (o) => {
      o.routes.push({ prefix: '192.168.0.0/16', dev: 'xl-test0' });
    },
    want: ['routes'],
  },
  {
    name: 'route on another device',
    mutate: (o) => {
      o.routes[0]!.dev = 'eth0';
    },
    want: ['routes'],
  },
  {
    name: 'firewall table missing',
    mutate: (o) => {
      o.firewall = { exists: false, fingerprint: '' };
    },
    want: ['firewall.replace'],
  },
  {
    name: 'firewall drift',
    mutate: (o) => {
      o.firewall.fingerprint = 'fp-edited';
    },
    want: ['firewall.replace'],
  },
  {
    name: 'firewall never written by us',
    mutate: (o) => {
      o.firewallRecord = null;
    },
    want: ['firewall.replace'],
  },
  {
    name: 'firewall config changed',
    mutate: (o) => {
      o.firewallRecord!.hash = 'old';
    },
    want: ['firewall.replace'],
  },
  {
    name: 'forwarding off',
    mutate: (o) => {
      o.sysctls[SYSCTL_IPV4_FORWARD] = '0';
    },
    want: ['sysctl.set'],
  },
  {
    name: 'forwarding value with newline',
    mutate: (o) => {
      o.sysctls[SYSCTL_IPV4_FORWARD] = '1\n';
    },
    want: [],
  },
  {
    name: 'ipv6 forwarding when the config has ipv6',
    state: 'threePeers',
    mutate: (o) => {
      o.sysctls[SYSCTL_IPV6_FORWARD] = '0';
    },
    want: ['sysctl.set'],
  },
  {
    name: 'empty desired endpoint ignores a roamed one',
    state: 'threePeers',
    mutate: (o) => {
      o.wireguard!.peers[1]!.endpoint = '203.0.113.5:4000';
    },
    want: [],
  },
];

t.test('one difference -> the one step that fixes it', async (t) => {
  for (const c of cases) {
    const d = desiredOf(c.state ?? 'peersRoutesFirewall');
    const o = matching(d);
    c.mutate(o, d);
    t.same(
      plan(d, o).map((s) => s.kind),
      c.want,
      c.name,
    );
  }
});

t.test('routes: one batch, adds and deletes both sorted', async (t) => {
  const d = desiredOf('peersRoutesFirewall');
  const o = matching(d);
  o.routes = [
    { prefix: '172.16.9.0/24', dev: 'xl-test0' },
    { prefix: '10.99.0.0/16', dev: 'xl-test0' },
    { prefix: '10.98.0.0/16', dev: 'xl-test0' },
  ];
  t.same(plan(d, o), [
    {
      kind: 'routes',
      add: [{ prefix: '172.16.5.0/24', dev: 'xl-test0' }],
      del: [
        { prefix: '10.98.0.0/16', dev: 'xl-test0' },
        { prefix: '10.99.0.0/16', dev: 'xl-test0' },
      ],
    },
  ]);
});

t.test('firewall reasons', async (t) => {
  const d = desiredOf('masquerade');
  const o = matching(d);
  o.firewall.fingerprint = 'changed by hand';
  t.match(plan(d, o), [{ kind: 'firewall.replace', reason: 'drift', hash: d.firewall.hash }]);
  o.firewallRecord = { hash: 'x', fingerprint: 'changed by hand' };
  t.match(plan(d, o), [{ kind: 'firewall.replace', reason: 'changed' }]);
});

t.test('ipv4-only config leaves ipv6 forwarding alone', async (t) => {
  const d = desiredOf('peersRoutesFirewall');
  t.same(d.sysctls, [{ key: SYSCTL_IPV4_FORWARD, value: '1' }]);
  t.same(
    desiredOf('threePeers').sysctls.map((s) => s.key),
    [SYSCTL_IPV4_FORWARD, SYSCTL_IPV6_FORWARD],
  );
});

t.test('desiredState canonicalises and sorts', async (t) => {
  const d = desiredState(
    config(7, {
      overlayAddress: '100.64.0.7/10',
      routes: ['172.16.9.1/24', '10.0.0.0/8', '10.0.0.0/8'],
      peers: [
        {
          ...NAMED.onePeer!.peers[0]!,
          publicKey: keyOf(30),
          allowedIps: ['FD00:0:0::/48', '100.64.0.8/32'],
          endpoint: '[2001:DB8::1]:51820',
        },
        { ...NAMED.onePeer!.peers[0]!, publicKey: keyOf(20), endpoint: 'GW.example.org:51820' },
      ],
    }),
    SETTINGS,
    stubRenderFirewall,
  );
  t.same(
    d.routes.map((r) => r.prefix),
    ['10.0.0.0/8', '172.16.9.0/24'],
  );
  t.same(
    d.wireguard.peers.map((p) => p.publicKey),
    [keyOf(20), keyOf(30)].sort(),
  );
  const p30 = d.wireguard.peers.find((p) => p.publicKey === keyOf(30))!;
  t.same(p30.allowedIps, ['100.64.0.8/32', 'fd00::/48']);
  t.equal(p30.endpoint, '[2001:db8::1]:51820');
  t.equal(d.wireguard.peers.find((p) => p.publicKey === keyOf(20))!.endpoint, 'gw.example.org:51820');
  t.equal(d.firewall.hash.length, 64);
  t.equal(d.generation, 7n);
});

t.test('a host-name endpoint counts as set once wg knows any endpoint', async (t) => {
  const d = desiredState(
    config(8, { peers: [{ ...NAMED.onePeer!.peers[0]!, endpoint: 'gw.example.org:51820' }] }),
    SETTINGS,
    stubRenderFirewall,
  );
  const o = matching(d);
  o.wireguard!.peers[0]!.endpoint = '198.51.100.7:51820';
  t.same(plan(d, o), []);
  o.wireguard!.peers[0]!.endpoint = '';
  t.same(
    plan(d, o).map((s) => s.kind),
    ['wireguard.sync'],
  );
});

t.test('invalid configs name every bad field', async (t) => {
  const bad = config(9, {
    overlayAddress: '100.64.0.7',
    routes: ['10.0.0.0/33', 'nonsense'],
    peers: [{ ...NAMED.onePeer!.peers[0]!, publicKey: 'short', endpoint: 'host', allowedIps: ['1.2.3'] }],
    firewall: {
      ...NAMED.masquerade!.firewall!,
      outbound: [{ ...NAMED.masquerade!.firewall!.outbound[0]!, protocol: 'sctp' }],
    },
  });
  const err = t.throws(() => desiredState(bad, SETTINGS, stubRenderFirewall)) as unknown as InvalidConfigError;
  t.ok(err instanceof InvalidConfigError);
  t.equal(err.code, 'config_invalid');
  t.same(
    err.details.map((x) => x.path),
    [
      'overlay_address',
      'peers[0].public_key',
      'peers[0].endpoint',
      'peers[0].allowed_ips[0]',
      'routes[0]',
      'routes[1]',
      'firewall.outbound[0].protocol',
    ],
  );
  const renderFails = () => {
    throw new Error('boom');
  };
  t.throws(() => desiredState(NAMED.empty!, SETTINGS, renderFails), { code: 'config_invalid' });
  const dup = config(10, { peers: [NAMED.onePeer!.peers[0]!, NAMED.onePeer!.peers[0]!] });
  try {
    desiredState(dup, SETTINGS, stubRenderFirewall);
    t.fail('duplicate keys accepted');
  } catch (e) {
    t.match(e, { details: [{ path: 'peers[1].public_key' }] });
  }
});

t.test('canonical helpers', async (t) => {
  t.equal(strictCanonicalPrefix('10.1.2.3/16'), '10.1.0.0/16');
  t.equal(strictCanonicalPrefix('10.1/16'), null);
  t.equal(strictCanonicalPrefix('2001:DB8::1/32'), '2001:db8::/32');
  t.equal(strictCanonicalPrefix('fe80::1%eth0/64'), null);
  t.equal(strictCanonicalPrefix('10.0.0.0/-1'), null);
  t.equal(canonicalEndpoint('[::1]:80'), '[::1]:80');
  t.equal(canonicalEndpoint('1.2.3.4:0'), null);
  t.equal(canonicalEndpoint('::1:80'), null);
});
