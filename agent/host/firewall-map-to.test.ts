// `map-to` in the rendered table: the 1:1 prefix translation at the WireGuard interface (golden
// file), and a translation that cannot be 1:1 refused with its field.
import t from 'tap';
import { create } from '@bufbuild/protobuf';
import { PrefixMappingSchema } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { isCrosslinkError } from '../../lib/errors.js';
import { renderFirewall } from './firewall-render.js';
import { firewall, flow } from './firewall.fixture.js';
import { matchGolden } from './golden.fixture.js';

const WG = 'crosslink0';
const map = (real: string, mapped: string) => create(PrefixMappingSchema, { real, mapped });

t.test('map-to: golden file; the rules name the real LAN, the translation the mapped one', async (t) => {
  const text = renderFirewall(
    firewall({
      inbound: [flow('hub-to-gp', ['10.9.0.0/24'], ['10.1.1.0/24'], 'tcp', [8080])],
      outbound: [flow('gp-to-hub', ['10.1.1.0/24'], ['10.9.0.0/24'], 'tcp', [8080])],
      localPrefixes: ['10.1.1.0/24', 'fd00:1::/64'],
      mapTo: [map('10.1.1.0/24', '10.201.1.0/24'), map('fd00:1::/64', 'fd00:201::/64')],
    }),
    { wgInterface: WG },
  );
  matchGolden(t, 'test/golden/nft/map-to.nft', text);
  t.match(text, /iifname "crosslink0" dnat ip prefix to ip daddr map @map_in4/);
  t.match(text, /oifname "crosslink0" snat ip6 prefix to ip6 saddr map @map_out6/);
  t.match(text, /10\.201\.1\.0\/24 : 10\.1\.1\.0\/24/);
});

t.test('map-to that is not 1:1 is refused with its field', async (t) => {
  for (const [m, path] of [
    [map('10.1.1.0/24', '10.201.1.0/25'), 'firewall.map_to[0]'],
    [map('10.1.1.0/24', 'fd00::/120'), 'firewall.map_to[0]'],
    [map('10.1.1.0/24', 'nope'), 'firewall.map_to[0]'],
  ] as const) {
    try {
      renderFirewall(firewall({ mapTo: [m] }), { wgInterface: WG });
      t.fail(`${m.mapped} accepted`);
    } catch (e) {
      t.ok(isCrosslinkError(e) && e.details?.[0]?.path === path, `${m.mapped}: ${String(e)}`);
    }
  }
});
