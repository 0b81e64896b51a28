// Path selection between two boxes over named underlays: table-driven.
import t from 'tap';
import {
  choosePath,
  describePairPath,
  overlaySlot,
  possiblePath,
  RELAY_PORT_BASE,
  splitEndpoint,
  type PathAgent,
  type RelayCandidate,
} from './paths.js';
import type { AgentName } from './types.js';

const N3 = 'n3-wan';
const PSN = 'psn-wan';

/** A box with one endpoint per underlay: n3-wan 172.31.<slot>.2, psn-wan 172.30.<slot>.2. */
function box(
  name: string,
  slot: number,
  underlays: string[],
  o: { isHealthy?: boolean; endpoints?: Record<string, string> } = {},
): PathAgent {
  const ep = (u: string): string =>
    o.endpoints?.[u] ?? `${u === N3 ? '172.31' : u === PSN ? '172.30' : '172.29'}.${slot}.2:51820`;
  return {
    name: name as AgentName,
    underlays: [...underlays].sort(),
    endpoints: [...underlays]
      .sort()
      .filter((u) => o.endpoints?.[u] !== '')
      .map((u) => ({ underlay: u, endpoint: ep(u) })),
    slot,
    isHealthy: o.isHealthy ?? true,
  };
}
const relay = (agent: PathAgent, unusable?: string): RelayCandidate => (unusable ? { agent, unusable } : { agent });

const gp = box('gp', 1, [N3]);
const council = box('council', 2, [PSN]);
const hub = box('hub', 3, [N3, PSN]);
const hub2 = box('hub2', 4, [N3, PSN]);
const hospital = box('hospital', 5, [N3]);

t.test('direct when the boxes share an underlay, whatever the relays', async (t) => {
  const cases: Array<[string, PathAgent, PathAgent, string]> = [
    ['both on n3', gp, hospital, N3],
    ['a dual-homed box and an n3 box', hub, gp, N3],
    ['a dual-homed box and a psn box', council, hub, PSN],
    ['two dual-homed boxes: the first shared underlay by name', hub, hub2, N3],
  ];
  for (const [name, a, b, underlay] of cases)
    t.same(choosePath(a, b, [relay(hub), relay(hub2)]), { kind: 'direct', underlay }, name);
  t.same(
    choosePath(box('x', 6, [N3, PSN], { endpoints: { [N3]: '[fd31::6]:51820' } }), box('y', 7, [N3, PSN]), []),
    { kind: 'direct', underlay: PSN },
    'skips a shared underlay whose endpoints are of different families',
  );
});

t.test('through a relay when they share none: ports from the slots, forwards mirror each other', async (t) => {
  const p = choosePath(council, gp, [relay(hub)]);
  if (p.kind !== 'relay') throw new Error(describePairPath(p));
  t.equal(p.hops.length, 1);
  const h = p.hops[0]!;
  // The pair is described ordered by name: a = council (psn-wan), b = gp (n3-wan).
  t.match(h, { relay: 'hub', underlayA: PSN, underlayB: N3 });
  t.equal(
    h.endpointForA,
    `172.30.3.2:${RELAY_PORT_BASE + 1}`,
    "council sends gp's datagrams to the hub's psn address, port for gp",
  );
  t.equal(
    h.endpointForB,
    `172.31.3.2:${RELAY_PORT_BASE + 2}`,
    "gp sends council's datagrams to the hub's n3 address, port for council",
  );
  t.same(
    h.forwards.map((f) => [f.source, f.listen, f.target, f.snat, f.fromAgent, f.toAgent]),
    [
      [
        '172.30.2.2:51820',
        `172.30.3.2:${RELAY_PORT_BASE + 1}`,
        '172.31.1.2:51820',
        `172.31.3.2:${RELAY_PORT_BASE + 2}`,
        'council',
        'gp',
      ],
      [
        '172.31.1.2:51820',
        `172.31.3.2:${RELAY_PORT_BASE + 2}`,
        '172.30.2.2:51820',
        `172.30.3.2:${RELAY_PORT_BASE + 1}`,
        'gp',
        'council',
      ],
    ],
  );
  t.same(choosePath(gp, council, [relay(hub)]), p, 'the same whichever way round');
});

t.test('two relays: both listed, healthy first, a stable order that spreads pairs', async (t) => {
  const p = choosePath(gp, council, [relay(hub), relay(hub2)]);
  if (p.kind !== 'relay') throw new Error('not relayed');
  t.same(p.hops.map((h) => h.relay).sort(), ['hub', 'hub2']);
  const sick = choosePath(gp, council, [
    relay({ ...hub, isHealthy: false }),
    relay({ ...hub2, isHealthy: false }),
    relay(p.hops[0]!.relay === 'hub' ? { ...hub, isHealthy: false } : hub),
  ]);
  t.ok(sick.kind === 'relay');
  const down = p.hops[0]!.relay === 'hub' ? { ...hub, isHealthy: false } : { ...hub2, isHealthy: false };
  const other = p.hops[0]!.relay === 'hub' ? hub2 : hub;
  const q = choosePath(gp, council, [relay(down), relay(other)]);
  t.equal(q.kind === 'relay' && q.hops[0]!.relay, other.name, 'an unhealthy relay goes last');
  // Many pairs: both relays carry some first.
  const firsts = new Set<string>();
  for (let i = 10; i < 40; i++) {
    const r = choosePath(box(`gp${i}`, i, [N3]), council, [relay(hub), relay(hub2)]);
    if (r.kind === 'relay') firsts.add(r.hops[0]!.relay);
  }
  t.same([...firsts].sort(), ['hub', 'hub2'], 'pairs are spread over the relays');
});

t.test('no path: the reason names both boxes, their underlays and the relay', async (t) => {
  const cases: Array<[string, RelayCandidate[], RegExp]> = [
    ['no relay at all', [], /council \(psn-wan\) and gp \(n3-wan\) share no underlay, and no relay sits on both/],
    [
      'the relay has not consented',
      [relay(hub, 'has not consented (its agent runs without --relay)')],
      /relay hub has not consented/,
    ],
    ['the relay is not enrolled', [relay(hub, 'is not enrolled')], /relay hub is not enrolled/],
    ['the relay sits on one side only', [relay(box('half', 9, [N3]))], /no relay sits on both/],
    [
      'the relay announces no psn endpoint',
      [relay(box('mute', 9, [N3, PSN], { endpoints: { [PSN]: '' } }))],
      /mute announces no endpoint on psn-wan/,
    ],
    [
      'a host name cannot be relayed to',
      [relay(box('named', 9, [N3, PSN], { endpoints: { [N3]: 'hub.example:51820' } }))],
      /must be IP addresses/,
    ],
    [
      'IPv4 on one side, IPv6 on the other',
      [relay(box('mixed', 9, [N3, PSN], { endpoints: { [PSN]: '[fd30::9]:51820' } }))],
      /not all IPv4 or all IPv6/,
    ],
  ];
  for (const [name, relays, re] of cases) {
    const p = choosePath(gp, council, relays);
    t.equal(p.kind, 'none', name);
    if (p.kind === 'none') t.match(p.reason, re, name);
  }
  const far = box('far', RELAY_PORT_BASE, [N3]);
  const p = choosePath(far, council, [relay(hub)]);
  t.match(
    p.kind === 'none' && p.reason,
    /far's overlay address is beyond the relay port range/,
    'a slot past 65535 cannot be relayed to',
  );
  t.equal(choosePath(gp, hub, [relay(hub)]).kind, 'direct', 'a relay peering with one of its own boxes is direct');
});

t.test('possiblePath: policy-only check on underlay sets', async (t) => {
  t.equal(possiblePath({ name: 'a', underlays: [N3] }, { name: 'b', underlays: [N3, PSN] }, []), undefined);
  t.equal(
    possiblePath({ name: 'a', underlays: [N3] }, { name: 'b', underlays: [PSN] }, [
      { name: 'h', underlays: [N3, PSN] },
    ]),
    undefined,
  );
  t.match(
    possiblePath({ name: 'a', underlays: [N3] }, { name: 'b', underlays: [PSN] }, [
      { name: 'a', underlays: [N3, PSN] },
    ]) ?? '',
    /share no underlay/,
  );
  t.match(
    possiblePath({ name: 'a', underlays: [N3] }, { name: 'b', underlays: ['x'] }, [
      { name: 'h', underlays: [N3, PSN] },
    ]) ?? '',
    /a \(n3-wan\) and b \(x\)/,
  );
});

t.test('endpoints and slots', async (t) => {
  t.same(splitEndpoint('10.1.2.3:51820'), { host: '10.1.2.3', port: 51820, family: 4, isLiteral: true });
  t.same(splitEndpoint('[fd00::1]:51820'), { host: 'fd00::1', port: 51820, family: 6, isLiteral: true });
  t.same(splitEndpoint('box.example:1'), { host: 'box.example', port: 1, family: 0, isLiteral: false });
  for (const bad of ['10.1.2.3', '10.1.2.3:0', '10.1.2.3:70000', '[box]:1', 'fd00::1:51820', ''])
    t.equal(splitEndpoint(bad), undefined, bad);
  t.equal(overlaySlot('100.64.0.7/10'), 7);
  t.equal(overlaySlot('100.64.1.2/10'), 258);
  t.equal(overlaySlot('fd7a::5/64'), 5);
  t.ok((overlaySlot('100.127.255.254/10') ?? 0) > 65535 - RELAY_PORT_BASE, 'beyond the range is reported as such');
  t.equal(overlaySlot('nonsense'), undefined);
});
