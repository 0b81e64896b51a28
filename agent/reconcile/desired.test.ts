// desiredState's firewall options for the edge liveness port (configs with serving groups).
import t from 'tap';
import { clone, create } from '@bufbuild/protobuf';
import {
  FirewallSchema,
  LivenessSchema,
  LocalSubnetSchema,
  PeerSchema,
  PrefixMappingSchema,
  ServingGroupSchema,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import { renderFirewall } from '../host/firewall-render.js';
import { desiredState, InvalidConfigError, type FirewallRenderOptions, type FirewallRenderer } from './desired.js';
import { memoizeFirewallRenderer } from './render-memo.js';
import { NAMED, SETTINGS, config, keyOf } from './reconcile.fixture.js';

const group = (name: string, prefixes: string[], candidates: string[], subnets: string[] = []) =>
  create(ServingGroupSchema, { name, prefixes, candidates, subnets });

/** The other candidates a group names must be peers, and a candidate's subnets local ones. */
const peer = (name: string, n: number) =>
  create(PeerSchema, {
    name,
    publicKey: keyOf(n),
    allowedIps: [`100.64.0.${n}/32`],
    overlayIp: `100.64.0.${n}`,
  });
const withGroupPeers = (base: typeof NAMED.peersRoutesFirewall) => ({
  ...base,
  peers: [...base!.peers, peer('leeds-gw-2', 70), peer('peer-9', 71)],
  localSubnets: [create(LocalSubnetSchema, { name: 'gp-lan', zone: 'n3', prefixes: ['10.20.1.0/24'] })],
});

/** A renderer that records the options it was given. */
function recording(): { render: FirewallRenderer; seen: FirewallRenderOptions[] } {
  const seen: FirewallRenderOptions[] = [];
  return {
    seen,
    render: (fw, opts) => {
      seen.push(opts);
      return renderFirewall(fw, opts);
    },
  };
}

t.test('no serving groups: no liveness options, the ruleset as before', async (t) => {
  for (const [name, c] of Object.entries(NAMED)) {
    const { render, seen } = recording();
    const d = desiredState(c, SETTINGS, render);
    t.same(seen, [{ wgInterface: SETTINGS.interfaceName }], name);
    t.notOk(d.firewall.ruleset.includes('chain input'), name);
  }
});

t.test('serving groups: the overlay pool, the LANs of the groups this box is a candidate of', async (t) => {
  const base = withGroupPeers(NAMED.peersRoutesFirewall);
  const c = config(9, {
    ...base,
    servingGroups: [
      group('gp-lan', ['10.20.1.7/24', '2001:db8:20::/48'], ['leeds-gw', 'leeds-gw-2'], ['gp-lan']),
      group('council', ['172.16.5.0/24'], ['peer-1', 'peer-9']),
    ],
  });
  const { render, seen } = recording();
  const d = desiredState(c, SETTINGS, render);
  t.same(seen, [
    {
      wgInterface: SETTINGS.interfaceName,
      liveness: { port: 51821, overlayPrefixes: ['100.64.0.0/10'], lanPrefixes: ['10.20.1.0/24', '2001:db8:20::/48'] },
    },
  ]);
  t.ok(
    d.firewall.ruleset.includes(`udp dport 51821 iifname "${SETTINGS.interfaceName}" ip saddr 100.64.0.0/10 accept`),
  );
  const noGroups = desiredState(config(9, { ...base }), SETTINGS, renderFirewall);
  t.not(d.firewall.hash, noGroups.firewall.hash);

  const sender = config(10, {
    ...base,
    servingGroups: [group('council', ['172.16.5.0/24'], ['peer-1', 'peer-9'])],
    liveness: create(LivenessSchema, { port: 40000, intervalMs: 100 }),
  });
  const r2 = recording();
  desiredState(sender, SETTINGS, r2.render);
  t.same(r2.seen[0]?.liveness, { port: 40000, overlayPrefixes: ['100.64.0.0/10'], lanPrefixes: [] }, 'a sender only');

  const bad = config(11, {
    ...base,
    servingGroups: [group('x', ['nope'], ['leeds-gw'])],
    liveness: create(LivenessSchema, { port: 70000 }),
  });
  t.throws(() => desiredState(bad, SETTINGS, renderFirewall), InvalidConfigError);
  try {
    desiredState(bad, SETTINGS, renderFirewall);
  } catch (e) {
    t.same(
      (e as InvalidConfigError).details.map((x) => x.path),
      ['serving_groups[0].prefixes[0]', 'liveness.port'],
    );
  }
});

t.test('the render memo: same groups, no render; another port, a render', async (t) => {
  let renders = 0;
  const render = memoizeFirewallRenderer((fw, opts) => {
    renders++;
    return renderFirewall(fw, opts);
  });
  const base = withGroupPeers(NAMED.peersRoutesFirewall);
  const groups = [group('gp-lan', ['10.20.1.0/24'], ['leeds-gw', 'leeds-gw-2'], ['gp-lan'])];
  desiredState(config(1, { ...base, servingGroups: groups }), SETTINGS, render);
  // A new peer joins: the firewall and the liveness options stay, so no render.
  const more = [...base.peers, ...NAMED.threePeers!.peers.slice(2)];
  desiredState(config(2, { ...base, peers: more, servingGroups: groups }), SETTINGS, render);
  t.equal(renders, 1, 'a peer joining does not render the firewall again');
  desiredState(
    config(3, { ...base, servingGroups: groups, liveness: create(LivenessSchema, { port: 40000 }) }),
    SETTINGS,
    render,
  );
  t.equal(renders, 2, 'another port renders again');
  desiredState(config(4, { ...base }), SETTINGS, render);
  t.equal(renders, 3, 'groups gone renders again');
  t.equal(render.isRendered?.(base.firewall!, { wgInterface: SETTINGS.interfaceName }), true);
});

t.test('map_to: rendered as the translation; a pair that is not 1:1 is refused with its path', async (t) => {
  const base = NAMED.peersRoutesFirewall!;
  const withMap = (real: string, mapped: string) =>
    config(12, {
      ...base,
      firewall: { ...clone(FirewallSchema, base.firewall!), mapTo: [create(PrefixMappingSchema, { real, mapped })] },
    });
  const d = desiredState(withMap('10.20.1.0/24', '10.201.1.0/24'), SETTINGS, renderFirewall);
  t.match(d.firewall.ruleset, /10\.201\.1\.0\/24 : 10\.20\.1\.0\/24/);
  for (const [real, mapped, path] of [
    ['10.20.1.0/24', '10.201.1.0/25', 'firewall.map_to[0]'],
    ['10.20.1.0/24', 'fd00::/120', 'firewall.map_to[0]'],
    ['10.20.1.0/24', 'x', 'firewall.map_to[0].mapped'],
    ['10.20.1.0/33', '10.201.1.0/24', 'firewall.map_to[0].real'],
  ] as const) {
    try {
      desiredState(withMap(real, mapped), SETTINGS, renderFirewall);
      t.fail(`${real} -> ${mapped} accepted`);
    } catch (e) {
      t.ok(e instanceof InvalidConfigError, `${real} -> ${mapped}`);
      t.same(
        (e as InvalidConfigError).details.map((x) => x.path),
        [path],
      );
    }
  }
});
