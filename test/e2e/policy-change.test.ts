// End to end on three boxes (alpha, beta, gamma):
//   2. a policy change takes effect and removing it cuts the flow, timed from the API's answer to
//      the first packet through and to the first packet refused;
//   8. revocation: once an agent is revoked, no other box accepts its traffic, within seconds.
import t from 'tap';
import { Testbed } from '../testbed/testbed.js';
import { Fleet } from './fleet.js';
import { rule, smallPolicy, smallTopology } from './small-topology.js';
import { waitForFlowOpen, watchFlow } from './wait-traffic.js';

const base = [rule('gamma-to-beta', 'gamma-lan', 'beta-lan', ['tcp/80'])];
const withChange = [...base, rule('alpha-to-beta', 'alpha-lan', 'beta-lan', ['tcp/8080'])];

const bed = await Testbed.create(smallTopology(3), { t });
const fleet = await Fleet.start(bed, {
  agents: [{ box: 'alpha' }, { box: 'beta' }, { box: 'gamma' }],
  policyText: smallPolicy(3, base),
  timeoutMs: 90_000,
});
const web = await bed.listen('b1', 'tcp', 80);
const alt = await bed.listen('b1', 'tcp', 8080);

t.test('2. a policy change takes effect end to end, and removing it cuts the flow', async (t) => {
  const flow = { from: 'a1', to: '10.2.1.10', proto: 'tcp' as const, port: 8080 };
  t.equal(
    await bed.tcpProbe('a1', '10.2.1.10', 8080, { timeoutMs: 1000 }),
    'timeout',
    'before: alpha -> beta 8080 is dropped',
  );
  t.same((await fleet.wgPeers('alpha')).length, 0, 'before: alpha has no peer at all');

  const opening = await watchFlow(bed, 'a1', '10.2.1.10', 8080, 'open');
  const added = await fleet.applyPolicy(smallPolicy(3, withChange), 'open alpha -> beta 8080');
  const throughMs = Math.round((await opening.result()) - added.acceptedAtMs);
  t.comment(
    `policy change: API accepted -> first packet through: ${throughMs} ms (includes a new WireGuard peer and handshake)`,
  );
  t.ok(throughMs < 15_000, `the change took effect (${throughMs} ms)`);
  await alt.waitForSource('10.1.1.10');
  t.equal(
    await bed.tcpProbe('a1', '10.2.1.10', 80, { timeoutMs: 1000 }),
    'timeout',
    'only the port the rule names: alpha -> beta 80 stays dropped',
  );
  t.equal(
    await bed.tcpProbe('b1', '10.1.1.10', 8080, { timeoutMs: 1000 }),
    'timeout',
    'one-way: beta -> alpha stays dropped',
  );

  await waitForFlowOpen(bed, flow, { timeoutMs: 5000 });
  const closing = await watchFlow(bed, 'a1', '10.2.1.10', 8080, 'blocked');
  const removed = await fleet.applyPolicy(smallPolicy(3, base), 'close alpha -> beta 8080 again');
  const refusedMs = Math.round((await closing.result()) - removed.acceptedAtMs);
  t.comment(`policy change: API accepted -> first packet refused: ${refusedMs} ms`);
  t.ok(refusedMs < 15_000, `the removal took effect (${refusedMs} ms)`);
  await fleet.waitConverged({ timeoutMs: 30_000 });
  t.equal(await bed.tcpProbe('a1', '10.2.1.10', 8080, { timeoutMs: 1000 }), 'timeout', 'after: dropped again');
  t.same((await fleet.wgPeers('alpha')).length, 0, 'after: alpha has no peer again');
});

t.test("8. revocation: no other box accepts a revoked agent's traffic", async (t) => {
  t.equal(await bed.tcpProbe('g1', '10.2.1.10', 80, { timeoutMs: 3000 }), 'open', 'before: gamma -> beta 80 works');
  await web.waitForSource('10.3.1.10');
  const gammaKey = (await fleet.showAgent('gamma')).publicKey;

  const closing = await watchFlow(bed, 'g1', '10.2.1.10', 80, 'blocked', { timeoutMs: 20_000 });
  const { acceptedAtMs } = await fleet.revoke('gamma');
  const refusedMs = Math.round((await closing.result()) - acceptedAtMs);
  t.comment(`revocation: API accepted -> first packet refused: ${refusedMs} ms`);
  t.ok(refusedMs < 10_000, `refused within seconds (${refusedMs} ms)`);
  t.notOk(
    (await fleet.wgPeers('beta')).some((p) => p.publicKey === gammaKey),
    'beta has dropped gamma as a peer',
  );
  // gamma keeps enforcing its last config (it still has beta as a peer); beta must refuse it anyway,
  // also for packets the box itself sends from its own LAN address.
  t.ok((await fleet.wgPeers('gamma')).length > 0, 'gamma still tries: it keeps its last config');
  t.not(
    await bed.tcpProbe('gamma', '10.2.1.10', 80, { bindAddress: '10.3.1.1', timeoutMs: 1000 }),
    'open',
    'gamma box itself is refused too',
  );
  t.ok((await fleet.showAgent('gamma')).isRevoked, 'the controller lists gamma as revoked');
  const before = web.sources().length;
  t.equal(await bed.tcpProbe('g1', '10.2.1.10', 80, { timeoutMs: 1000 }), 'timeout', 'still refused a moment later');
  t.equal(web.sources().length, before, "beta's server saw nothing new");
});
