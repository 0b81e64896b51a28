import t from 'tap';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { layerBoxes, type TupleBox } from './firewall-layers.js';
import { renderFirewall } from './firewall-render.js';
import { parsePrefix } from './canonical.js';
import { renderWgConfig } from './wg-config.js';
import { matchGolden } from './golden.fixture.js';
import { firewall, flow, manyTuples } from './firewall.fixture.js';
import { isCrosslinkError } from '../../lib/errors.js';
import { create } from '@bufbuild/protobuf';
import { RelayForwardSchema, type RelayForward } from '../../proto/gen/crosslink/v1/agent_pb.js';

const WG = 'crosslink0';

const cases = [
  { name: 'absent', fw: undefined },
  { name: 'empty', fw: firewall({}) },
  {
    name: 'leeds-two-way',
    fw: firewall({
      outbound: [flow('gp-to-council-web', ['10.20.1.0/24'], ['172.16.5.0/24'], 'tcp', [443, [8080, 8090]])],
      inbound: [
        flow('council-to-gp-ping', ['172.16.5.0/24'], ['10.20.1.0/24'], 'icmp'),
        flow('council-backup', ['172.16.9.10'], ['10.20.1.5'], 'any'),
      ],
      localPrefixes: ['10.20.1.0/24'],
    }),
  },
  {
    name: 'dual-stack-masquerade-local',
    fw: firewall({
      outbound: [flow('dns', ['10.20.0.0/16', '2001:db8:20::/48'], ['172.16.0.53', '2001:db8:16::53'], 'udp', [53])],
      inbound: [flow('ping6', ['2001:db8:16::/48'], ['2001:db8:20::/48'], 'icmp')],
      local: [flow('lan-a-to-b', ['10.20.1.0/24'], ['10.21.0.0/16'], 'tcp')],
      masquerade: ['10.21.0.0/16', '2001:db8:21::/48'],
      localPrefixes: ['10.20.0.0/16', '10.20.1.0/24', '10.21.0.0/16', '2001:db8:20::/48', '2001:db8:21::/48'],
    }),
  },
  {
    // A relay between N3 (172.31/16, fd31:0::/32) and the PSN (172.30/16, fd31:1::/32): gp's and
    // civic's datagrams, both ways, IPv4 and IPv6; no rules of its own.
    name: 'relay',
    fw: firewall({
      relay: [
        relayForward('172.31.1.2:51820', '172.31.3.2:52002', '172.30.2.2:51820', '172.30.3.2:52001'),
        relayForward('172.30.2.2:51820', '172.30.3.2:52001', '172.31.1.2:51820', '172.31.3.2:52002'),
        relayForward('[fd31:0:1::2]:51820', '[fd31:0:3::2]:52002', '[fd31:1:2::2]:51820', '[fd31:1:3::2]:52001'),
      ],
    }),
  },
  {
    name: 'overlapping-tuples',
    fw: firewall({
      outbound: [
        flow('wide', ['10.0.0.0/16'], ['10.1.0.0/24'], 'tcp', [80]),
        flow('narrow-more-ports', ['10.0.1.0/24'], ['10.1.0.0/24'], 'tcp', [[80, 90]]),
        flow('contained', ['10.0.2.0/24'], ['10.1.0.0/25'], 'tcp', [80]),
        flow('adjacent-ports', ['10.0.0.0/16'], ['10.1.0.0/24'], 'tcp', [81, [82, 85]]),
        flow('crossed-a', ['10.0.0.0/16'], ['10.2.0.0/24'], 'any'),
        flow('crossed-b', ['10.0.0.0/24'], ['10.2.0.0/16'], 'any'),
        flow('duplicate', ['10.0.0.0/16'], ['10.2.0.0/24'], 'any'),
        flow('not-canonical', ['10.0.9.7/24'], ['10.3.0.1/16'], 'udp', []),
      ],
    }),
  },
];

function relayForward(source: string, listen: string, target: string, snat: string): RelayForward {
  return create(RelayForwardSchema, { source, listen, target, snat, fromAgent: 'a', toAgent: 'b' });
}

t.test('relay forwards that cannot be rendered are refused with the field', async (t) => {
  const bad: Array<[RelayForward[], RegExp]> = [
    [
      [relayForward('gp.example:51820', '172.31.3.2:52002', '172.30.2.2:51820', '172.30.3.2:52001')],
      /^firewall\.relay\[0\]\.source: "gp\.example:51820" is not an IP address and port/,
    ],
    [
      [relayForward('172.31.1.2:51820', '172.31.3.2:52002', '[fd31:1:2::2]:51820', '[fd31:1:3::2]:52001')],
      /^firewall\.relay\[0\]: mixes IPv4 and IPv6/,
    ],
    [
      [
        relayForward('172.31.1.2:51820', '172.31.3.2:52002', '172.30.2.2:51820', '172.30.3.2:52001'),
        relayForward('172.31.1.2:51820', '172.31.3.2:52002', '172.30.9.2:51820', '172.30.3.2:52009'),
      ],
      /^firewall\.relay\[1\]: a second forward for 172\.31\.1\.2:51820 -> 172\.31\.3\.2:52002/,
    ],
    [
      [relayForward('172.31.1.2:51820', '172.31.3.2:99999', '172.30.2.2:51820', '172.30.3.2:52001')],
      /^firewall\.relay\[0\]\.listen: /,
    ],
  ];
  for (const [relay, message] of bad) {
    t.throws(() => renderFirewall(firewall({ relay }), { wgInterface: WG }), { code: 'config_invalid', message });
  }
});

t.test('renderFirewall golden files', async (t) => {
  for (const c of cases) {
    const text = renderFirewall(c.fw, { wgInterface: WG });
    matchGolden(t, `test/golden/nft/${c.name}.nft`, text);
    t.equal(renderFirewall(c.fw, { wgInterface: WG }), text, `${c.name}: deterministic`);
  }
});

// Zones (AgentConfig.zones): drops counted per direction and zone pair, per family; a pair only of
// zones with prefixes of that family; admitted traffic never reaches the counting rules.
t.test('renderFirewall with zones: golden file, counters, errors', async (t) => {
  const fw = cases[3]!.fw; // dual-stack-masquerade-local
  const zones = [
    { zone: 'n3', prefixes: ['10.20.0.0/16', '10.20.1.0/24', '2001:db8:20::/48'] },
    { zone: 'psn', prefixes: ['172.16.0.0/16', '2001:db8:16::/48'] },
    { zone: 'shared', prefixes: ['10.21.0.0/16'] },
  ];
  const text = renderFirewall(fw, { wgInterface: WG, zones });
  matchGolden(t, 'test/golden/nft/zone-drops.nft', text);
  const without = renderFirewall(fw, { wgInterface: WG });
  t.equal(renderFirewall(fw, { wgInterface: WG, zones: [] }), without, 'no zones: the ruleset without them');
  // IPv4: 3 zones, 9 pairs; IPv6: 2 zones, 4 pairs; per direction.
  for (const chain of ['to_overlay', 'from_overlay', 'lan_to_lan']) {
    const body = text.split(`\tchain ${chain} {`)[1]!.split('\n\t}')[0]!;
    const counting = body.split('\n').filter((l) => l.includes('counter name "drop/'));
    t.equal(counting.length, 9 + 4, `${chain}: one counting rule per zone pair and family`);
    const lines = body.split('\n');
    t.ok(
      lines.findIndex((l) => l.includes('counter name "drop/')) > lines.findIndex((l) => l.includes('goto admitted')),
      `${chain}: counted after every admitting lookup`,
    );
    t.match(lines[lines.length - 1], /counter name "dropped_\w+" drop$/, `${chain}: the drop stays last`);
  }
  t.ok(text.includes('\tcounter drop/inbound/shared/n3 {'), 'counters are declared');
  t.notOk(/ip6 saddr @zone6_2/.test(text), 'no IPv6 set for a zone without IPv6 prefixes');
  t.throws(() => renderFirewall(fw, { wgInterface: WG, zones: [{ zone: 'N 3', prefixes: [] }] }), {
    code: 'config_invalid',
    message: 'zones[0].zone: "N 3" is not a zone name',
  });
  t.throws(() => renderFirewall(fw, { wgInterface: WG, zones: [zones[0]!, zones[0]!] }), {
    code: 'config_invalid',
    message: 'zones[1].zone: zone "n3" is given twice',
  });
  t.throws(() => renderFirewall(fw, { wgInterface: WG, zones: [{ zone: 'n3', prefixes: ['10.1/8'] }] }), {
    code: 'config_invalid',
    message: /^zones\[0\]\.prefixes\[0\]: invalid prefix "10.1\/8"/,
  });
});

// The liveness port (configs with serving groups only): the echo from the overlay pool on the
// WireGuard interface, adverts from the groups' LANs (and IPv6 link-local) elsewhere, nothing else.
const livenessCases = [
  {
    name: 'liveness-candidate',
    fw: cases[2]!.fw,
    liveness: {
      port: 51821,
      overlayPrefixes: ['100.64.0.0/10'],
      lanPrefixes: ['10.20.1.0/24', '10.20.9.0/24', '2001:db8:20::/48'],
    },
  },
  {
    name: 'liveness-sender',
    fw: firewall({}),
    liveness: { port: 40000, overlayPrefixes: ['fd64::/64'], lanPrefixes: [] },
  },
];

t.test('renderFirewall with the liveness port: golden files', async (t) => {
  for (const c of livenessCases) {
    const text = renderFirewall(c.fw, { wgInterface: WG, liveness: c.liveness });
    matchGolden(t, `test/golden/nft/${c.name}.nft`, text);
    const without = renderFirewall(c.fw, { wgInterface: WG });
    const input = text.replace(without.replace(/}\n$/, ''), '');
    t.notOk(without.includes('chain input'), `${c.name}: no input chain without liveness`);
    t.ok(text.startsWith(without.replace(/\n}\n$/, '')), `${c.name}: only the input chain is added`);
    t.match(input, /^\n\tchain input \{\n\t\ttype filter hook input priority filter; policy accept;\n/);
    for (const line of input.split('\n').filter((l) => l.startsWith('\t\t') && !l.includes('type filter')))
      t.match(line, new RegExp(`^\\t\\tudp dport ${c.liveness.port} `), `${c.name}: only the liveness port`);
  }
  t.throws(
    () =>
      renderFirewall(firewall({}), { wgInterface: WG, liveness: { port: 0, overlayPrefixes: [], lanPrefixes: [] } }),
    /liveness\.port: invalid port 0/,
  );
  t.throws(
    () =>
      renderFirewall(firewall({}), {
        wgInterface: WG,
        liveness: { port: 51821, overlayPrefixes: [], lanPrefixes: ['10.1.0.0/16', 'nope'] },
      }),
    /liveness\.lan_prefixes\[1\]: invalid prefix "nope"/,
  );
});

t.test('rule order does not change the output', async (t) => {
  const fw = cases.find((c) => c.name === 'overlapping-tuples')!.fw!;
  const reversed = firewall({ outbound: [...fw.outbound].reverse() });
  t.equal(renderFirewall(reversed, { wgInterface: WG }), renderFirewall(fw, { wgInterface: WG }));
});

t.test('10,000 tuples stay in sets: the rule count does not grow with the tuples', async (t) => {
  const small = renderFirewall(manyTuples(10), { wgInterface: WG });
  const large = renderFirewall(manyTuples(10_000), { wgInterface: WG });
  const rules = (s: string) => s.split('\n').filter((l) => /^\t\t(ip|ip6|iifname|oifname|ct|counter) /.test(l)).length;
  t.equal(rules(large), rules(small));
  t.equal((large.match(/ \. tcp \. 443/g) ?? []).length, 10_000);
});

t.test('invalid input is a config_invalid error with the path of the field', async (t) => {
  const bad = [
    {
      fw: firewall({ outbound: [flow('x', ['10.0.0.0/33'], ['10.1.0.0/24'], 'tcp')] }),
      path: 'firewall.outbound[0].sources[0]',
    },
    {
      fw: firewall({ inbound: [flow('x', ['10.0.0.0/8'], ['10.1.0.0/24'], 'sctp')] }),
      path: 'firewall.inbound[0].protocol',
    },
    {
      fw: firewall({ local: [flow('x', ['10.0.0.0/8'], ['10.1.0.0/24'], 'tcp', [[90, 80]])] }),
      path: 'firewall.local[0].ports[0]',
    },
  ];
  for (const b of bad) {
    try {
      renderFirewall(b.fw, { wgInterface: WG });
      t.fail('expected an error');
    } catch (e) {
      t.ok(isCrosslinkError(e) && e.code === 'config_invalid' && e.details[0]?.path === b.path, b.path);
    }
  }
  t.throws(() => renderFirewall(undefined, { wgInterface: 'bad name"' }));
});

// Property: the layers hold every allowed tuple, no layer holds two overlapping elements, and
// nothing is allowed that the input did not allow.
t.test('layerBoxes: layers are overlap-free, allow exactly the input and count by a rule that allows', async (t) => {
  const prefixes = [
    '10.0.0.0/8',
    '10.0.0.0/16',
    '10.0.1.0/24',
    '10.0.0.0/24',
    '10.1.0.0/16',
    '10.0.1.128/25',
    '10.0.1.7/32',
  ];
  const arbBox = fc
    .record({
      src: fc.constantFrom(...prefixes),
      dst: fc.constantFrom(...prefixes),
      proto: fc.constantFrom(6, 17),
      first: fc.integer({ min: 0, max: 20 }),
      width: fc.integer({ min: 0, max: 6 }),
      mark: fc.integer({ min: 1, max: 3 }),
    })
    .map((r): TupleBox => ({
      src: parsePrefix(r.src),
      dst: parsePrefix(r.dst),
      proto: r.proto,
      portFirst: r.first,
      portLast: r.first + r.width,
      mark: r.mark,
    }));
  const inBox = (b: TupleBox, s: string, d: string, proto: number, port: number) =>
    b.proto === proto &&
    b.src.startHex <= s &&
    s <= b.src.endHex &&
    b.dst.startHex <= d &&
    d <= b.dst.endHex &&
    b.portFirst <= port &&
    port <= b.portLast;
  const overlap = (a: TupleBox, b: TupleBox) =>
    a.proto === b.proto &&
    a.src.startHex <= b.src.endHex &&
    b.src.startHex <= a.src.endHex &&
    a.dst.startHex <= b.dst.endHex &&
    b.dst.startHex <= a.dst.endHex &&
    a.portFirst <= b.portLast &&
    b.portFirst <= a.portLast;
  // Probe points: start and end of every prefix, and one address inside each.
  const points = [
    ...new Set(
      prefixes
        .flatMap((p) => {
          const x = parsePrefix(p);
          return [x.startHex, x.endHex];
        })
        .concat(['0a000105', '0a0001f0', '0a010203']),
    ),
  ];
  fc.assert(
    fc.property(fc.array(arbBox, { maxLength: 25 }), (boxes) => {
      const layers = layerBoxes(boxes);
      for (const layer of layers) {
        for (let i = 0; i < layer.length; i++)
          for (let j = i + 1; j < layer.length; j++) if (overlap(layer[i]!, layer[j]!)) return false; // i, j < layer.length
      }
      const out = layers.flat();
      for (const s of points)
        for (const d of points)
          for (const proto of [6, 17])
            for (let port = 0; port <= 27; port++) {
              if (boxes.some((b) => inBox(b, s, d, proto, port)) !== out.some((b) => inBox(b, s, d, proto, port)))
                return false;
              // The rule a packet is counted for (the first layer's box that holds it) is a rule
              // whose own box holds it.
              const first = out.find((b) => inBox(b, s, d, proto, port));
              if (first && !boxes.some((b) => b.mark === first.mark && inBox(b, s, d, proto, port))) return false;
            }
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass('property held');
});

t.test('layerBoxes: two rules allowing the same tuples keep one box (not none)', async (t) => {
  // fast-check's counterexample (seed 488299742): each box held the other, and both were dropped.
  const box = (mark: number): TupleBox => ({
    src: parsePrefix('10.0.0.0/8'),
    dst: parsePrefix('10.0.1.0/24'),
    proto: 17,
    portFirst: 4,
    portLast: 5,
    mark,
  });
  const layers = layerBoxes([box(1), box(2)]);
  t.equal(layers.flat().length, 1, 'one box kept');
  t.equal(layers.flat()[0]!.mark, 1, 'the first one');
});

/** `n` rules over nested, overlapping prefixes from a fixed seed (mulberry32): port ranges to
 *  merge, boxes inside others to drop, partial overlaps that need extra layers. */
function tangled(n: number): ReturnType<typeof firewall> {
  let seed = 12345;
  const rnd = (k: number) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) % k;
  };
  const prefix = () => {
    const len = [20, 24, 26, 28, 30, 32][rnd(6)];
    return `10.${rnd(2)}.${rnd(16)}.${rnd(256)}/${len}`;
  };
  const rules = Array.from({ length: n }, (_, i) => {
    const protocol = ['tcp', 'udp', 'icmp', 'any'][rnd(4)]!;
    const ports =
      protocol === 'tcp' || protocol === 'udp'
        ? Array.from({ length: rnd(3) }, (): number | [number, number] => {
            const a = 1 + rnd(100);
            return rnd(2) ? a : [a, a + rnd(20)];
          })
        : [];
    return flow(`t${i}`, [prefix(), prefix()].slice(0, 1 + rnd(2)), [prefix()], protocol, ports);
  });
  return firewall({ outbound: rules, inbound: rules.slice(0, n >> 1), localPrefixes: ['10.0.0.0/16', '10.1.0.0/24'] });
}

// The renderer was rewritten for speed (prefix ranks instead of string keys, one parse per distinct
// prefix); these hashes were of the output of the version before, so its bytes cannot drift. Taken
// again when sets became maps to each rule's ct mark (per-rule counters), the output checked then
// by loading it with nft (linux.test.ts); and when the drop log got its snaplen (headers only).
t.test('large inputs render to the same bytes as before the rewrite', async (t) => {
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  t.equal(
    sha(renderFirewall(manyTuples(10_000), { wgInterface: WG })),
    'a1952867c463c6787c6a619604698e3bc20a25c3900da90156770f8d161ebd8e',
    '10,000 tuples',
  );
  const text = renderFirewall(tangled(3000), { wgInterface: WG });
  t.ok((text.match(/\tmap out4_ports_\d+ \{/g) ?? []).length >= 1, 'the tangled rules need extra layers');
  t.equal(sha(text), 'a4c48679bee9cbfb85fd92b1165ca0f600531237f77289002661dfe313ad5a2f', '3,000 tangled rules');
});

t.test('renderWgConfig golden file', async (t) => {
  const text = renderWgConfig('yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=', 51820, [
    {
      publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=',
      endpoint: '192.0.2.2:51820',
      allowedIps: ['10.2.0.0/24', '100.64.0.2/32', '10.1.0.0/24'],
      persistentKeepaliveSeconds: 25,
    },
    {
      publicKey: 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=',
      endpoint: '',
      allowedIps: ['2001:DB8:0::/48', '100.64.0.3'],
      persistentKeepaliveSeconds: 0,
    },
    {
      publicKey: 'gN65BkIKy1eCE9pP1wdc8ROUtkHLF2PfAqYdyYBz6EA=',
      endpoint: '[2001:db8::9]:51820',
      allowedIps: [],
      persistentKeepaliveSeconds: 0,
    },
  ]);
  matchGolden(t, 'test/golden/wg/syncconf.conf', text);
  t.throws(() => renderWgConfig('not a key', 51820, []), { code: 'config_invalid' });
  const dup = {
    publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=',
    endpoint: '',
    allowedIps: [],
    persistentKeepaliveSeconds: 0,
  };
  t.throws(() => renderWgConfig('yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=', 0, [dup, dup]), {
    code: 'config_invalid',
  });
});
