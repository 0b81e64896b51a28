import t from 'tap';
import { firewall, flow, manyTuples } from '../host/testing/firewall-fixtures.js';
import type { Firewall } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { memoizeFirewallRenderer } from './render-memo.js';

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
