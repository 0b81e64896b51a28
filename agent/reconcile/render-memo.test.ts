import t from 'tap';
import { create } from '@bufbuild/protobuf';
import { firewall, flow, manyTuples } from '../host/firewall.fixture.js';
import { PrefixMappingSchema, RelayForwardSchema, type Firewall } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { flattenFirewall, isFirewallWalkComplete, matchesFlat, memoizeFirewallRenderer } from './render-memo.js';

t.test('renders again only when the firewall or the interface changes', async (t) => {
  const calls: string[] = [];
  const render = memoizeFirewallRenderer((fw: Firewall, { wgInterface }) => {
    calls.push(wgInterface);
    return `${wgInterface} ${fw.outbound.map((r) => r.rule).join(',')}`;
  });
  const a = () => firewall({ outbound: [flow('web', ['10.1.0.0/24'], ['10.2.0.0/24'], 'tcp', [443])] });
  t.equal(render(a(), { wgInterface: 'x0' }), 'x0 web');
  t.equal(render(a(), { wgInterface: 'x0' }), 'x0 web', 'an equal message (another object)');
  t.equal(calls.length, 1, 'rendered once');
  t.equal(render(a(), { wgInterface: 'x1' }), 'x1 web', 'another interface');
  const b = firewall({ outbound: [flow('web', ['10.1.0.0/24'], ['10.2.0.0/24'], 'tcp', [444])] });
  t.equal(render(b, { wgInterface: 'x1' }), 'x1 web');
  t.equal(calls.length, 3, 'a changed port renders again');
  t.equal(render.isRendered?.(b, { wgInterface: 'x1' }), true, 'the last one is known');
  t.equal(render.isRendered?.(a(), { wgInterface: 'x1' }), false, 'an earlier one is not');
});

t.test('a failing render is not remembered', async (t) => {
  let isBroken = true;
  const render = memoizeFirewallRenderer(() => {
    if (isBroken) throw new Error('bad');
    return 'ok';
  });
  t.throws(() => render(manyTuples(3), { wgInterface: 'x0' }));
  isBroken = false;
  t.equal(render(manyTuples(3), { wgInterface: 'x0' }), 'ok');
});

t.test('the field walk covers the whole schema (else the memo compares wire bytes, 50-150 ms)', async (t) => {
  t.equal(isFirewallWalkComplete, true, 'extend flattenFirewall()/matchesFlat() for the new field');
});

t.test('a change in any field of the firewall renders again', async (t) => {
  const base = () =>
    firewall({
      outbound: [flow('web', ['10.1.0.0/24'], ['10.2.0.0/24'], 'tcp', [443, [8000, 8080]])],
      inbound: [flow('ping', ['10.2.0.0/24', '10.3.0.0/24'], ['10.1.0.0/24'], 'icmp')],
      local: [flow('lan', ['10.1.0.0/24'], ['10.4.0.0/24'], 'any')],
      masquerade: ['10.4.0.0/24'],
      localPrefixes: ['10.1.0.0/24', '10.4.0.0/24'],
      relay: [
        create(RelayForwardSchema, {
          source: '172.31.1.2:51820',
          listen: '172.31.1.9:51900',
          target: '172.30.1.3:51820',
          snat: '172.30.1.9:51900',
          fromAgent: 'gp',
          toAgent: 'civic',
        }),
      ],
      mapTo: [create(PrefixMappingSchema, { real: '10.1.0.0/24', mapped: '10.201.0.0/24' })],
    });
  const changes: Array<[string, (fw: Firewall) => void]> = [
    [
      'rule name',
      (fw) => {
        fw.outbound[0]!.rule = 'web2';
      },
    ],
    [
      'protocol',
      (fw) => {
        fw.outbound[0]!.protocol = 'udp';
      },
    ],
    [
      'a source',
      (fw) => {
        fw.inbound[0]!.sources[1] = '10.3.1.0/24';
      },
    ],
    [
      'one source fewer',
      (fw) => {
        fw.inbound[0]!.sources.pop();
      },
    ],
    [
      'a destination',
      (fw) => {
        fw.local[0]!.destinations[0] = '10.5.0.0/24';
      },
    ],
    [
      'a first port',
      (fw) => {
        fw.outbound[0]!.ports[1]!.first = 8001;
      },
    ],
    [
      'a last port',
      (fw) => {
        fw.outbound[0]!.ports[1]!.last = 8081;
      },
    ],
    [
      'one port range fewer',
      (fw) => {
        fw.outbound[0]!.ports.pop();
      },
    ],
    [
      'a rule moved to another direction',
      (fw) => {
        fw.inbound.push(fw.outbound.pop()!);
      },
    ],
    [
      'a rule more',
      (fw) => {
        fw.local.push(flow('x', [], [], 'any'));
      },
    ],
    [
      'masquerade',
      (fw) => {
        fw.masquerade[0] = '10.4.1.0/24';
      },
    ],
    [
      'local prefixes',
      (fw) => {
        fw.localPrefixes.push('10.6.0.0/24');
      },
    ],
    [
      'a relay target',
      (fw) => {
        fw.relay[0]!.target = '172.30.1.4:51820';
      },
    ],
    [
      'a relay snat',
      (fw) => {
        fw.relay[0]!.snat = '172.30.1.9:51901';
      },
    ],
    [
      'a relay source',
      (fw) => {
        fw.relay[0]!.source = '172.31.1.2:51821';
      },
    ],
    [
      'a relay listen',
      (fw) => {
        fw.relay[0]!.listen = '172.31.1.9:51901';
      },
    ],
    [
      'a relay agent name',
      (fw) => {
        fw.relay[0]!.toAgent = 'civic2';
      },
    ],
    [
      'no relay',
      (fw) => {
        fw.relay.pop();
      },
    ],
    [
      'a map-to prefix',
      (fw) => {
        fw.mapTo[0]!.mapped = '10.202.0.0/24';
      },
    ],
    [
      'no map-to',
      (fw) => {
        fw.mapTo.pop();
      },
    ],
    // A string moved from the end of one list to the start of the next must not look equal.
    [
      'a prefix moved between lists',
      (fw) => {
        fw.masquerade.push(fw.localPrefixes.shift()!);
      },
    ],
  ];
  let renders = 0;
  const render = memoizeFirewallRenderer(() => `r${++renders}`);
  render(base(), { wgInterface: 'x0' });
  t.equal(render.isRendered?.(base(), { wgInterface: 'x0' }), true, 'an equal message');
  for (const [name, change] of changes) {
    const fw = base();
    change(fw);
    t.equal(render.isRendered?.(fw, { wgInterface: 'x0' }), false, name);
    t.equal(matchesFlat(flattenFirewall(fw), fw), true, `${name}: the walk matches its own list`);
  }
  t.equal(renders, 1);
});
