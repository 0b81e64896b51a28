// End to end on two boxes (alpha -> beta allowed: tcp/80 and ping):
//   5. controller outage: SIGKILL the controller; the permitted flow keeps working with zero loss;
//      restart it; every agent reconnects and reports within 30 s;
//   6. agent restart while the controller is down (the box "rebooted": interface, routes and nft
//      table gone): it comes back from its last config and traffic flows again;
//   7. drift: a route, a peer and the agent's nft table deleted by hand are put back.
import t from 'tap';
import { Testbed } from '../testbed/testbed.js';
import { Fleet, pollUntil } from './fleet.js';
import { rule, smallPolicy, smallTopology } from './small-topology.js';
import { waitForFlowBlocked, waitForFlowOpen } from './wait-traffic.js';

const policy = smallPolicy(2, [rule('alpha-to-beta', 'alpha-lan', 'beta-lan', ['tcp/80', 'icmp'])]);
const bed = await Testbed.create(smallTopology(2), { t });
const fleet = await Fleet.start(bed, {
  agents: [{ box: 'alpha' }, { box: 'beta' }],
  policyText: policy,
  timeoutMs: 90_000,
});
await bed.listen('b1', 'tcp', 80);
await bed.listen('a1', 'tcp', 80);
const alpha = bed.box('alpha');
const beta = bed.box('beta');
const flow = { from: 'a1', to: '10.2.1.10', proto: 'tcp' as const, port: 80 };
await waitForFlowOpen(bed, flow, { timeoutMs: 10_000 });

t.test('5. controller outage: the permitted flow keeps working with zero loss', async (t) => {
  await fleet.stopController({ signal: 'SIGKILL' });
  t.equal(fleet.controllerPid, null, 'controller killed');
  const p = await bed.ping('a1', '10.2.1.10', { count: 40, intervalMs: 100, timeoutMs: 1000 });
  t.equal(p.sent, 40, 'pinged through the outage');
  t.equal(p.received, p.sent, `zero loss (${p.received}/${p.sent})`);
  t.equal(await bed.tcpProbe('a1', '10.2.1.10', 80, { timeoutMs: 3000 }), 'open', 'new TCP connections still open');
  t.equal(
    await bed.tcpProbe('b1', '10.1.1.10', 80, { timeoutMs: 1000 }),
    'timeout',
    'and the forbidden direction stays shut',
  );
  const s = (await fleet.agentStatus('alpha')) as { controller: { isConnected: boolean; staleSince: string | null } };
  t.notOk(s.controller.isConnected, `the agent knows it is stale (since ${s.controller.staleSince})`);
});

t.test('6. agent restart while the controller is down: back from its last config', async (t) => {
  t.equal(fleet.controllerPid, null, 'controller still down');
  await fleet.stopAgent('alpha', { signal: 'SIGKILL' });
  // As after a reboot: the interface (wireguard-go goes with it), its routes and the nft table are gone.
  await bed.exec(alpha, ['ip', 'link', 'del', alpha.wgInterface]);
  await bed.exec(alpha, ['nft', 'delete', 'table', 'inet', 'crosslink'], { check: false });
  await waitForFlowBlocked(bed, flow, { timeoutMs: 10_000 });
  t.pass('with the data plane gone, alpha -> beta is down');

  const startedAtMs = Date.now();
  await fleet.startAgent('alpha');
  const openAtMs = await waitForFlowOpen(bed, flow, { timeoutMs: 30_000, probeTimeoutMs: 500 });
  t.comment(`agent restarted with the controller down: process start -> traffic flows: ${openAtMs - startedAtMs} ms`);
  t.pass('traffic flows again, without the controller');
  t.ok(
    (await bed.exec(alpha, ['nft', 'list', 'table', 'inet', 'crosslink'], { check: false })).code === 0,
    'nft table back',
  );
  t.equal(
    await bed.tcpProbe('b1', '10.1.1.10', 80, { timeoutMs: 1000 }),
    'timeout',
    'the forbidden direction is shut again',
  );
});

t.test('5. controller restart: every agent reconnects and reports within 30 s', async (t) => {
  const restartAtMs = Date.now();
  await fleet.startController();
  const upAtMs = Date.now();
  const agents = await pollUntil(
    'every agent to reconnect and report',
    async () => {
      const list = await fleet.listAgents();
      return list.length === 2 && list.every((a) => a.isConnected && (a.lastReportAtMs ?? 0) >= upAtMs)
        ? list
        : undefined;
    },
    { timeoutMs: 40_000, intervalMs: 200 },
  );
  const tookMs = Date.now() - upAtMs;
  t.comment(
    `controller restart: ${upAtMs - restartAtMs} ms to serve, then every agent reconnected and reported in ${tookMs} ms`,
  );
  t.ok(tookMs <= 30_000, `within 30 s (${tookMs} ms)`);
  t.ok(
    agents.every((a) => a.appliedGeneration === a.desiredGeneration),
    'and each runs the desired generation',
  );
});

t.test('7. drift: a route, a peer and the nft table deleted by hand are restored', async (t) => {
  const betaKey = (await fleet.showAgent('beta')).publicKey;
  const routeOf = async () => (await bed.exec(alpha, ['ip', 'route', 'show', '10.2.1.0/24'])).stdout.trim();
  t.match(await routeOf(), alpha.wgInterface, "route to beta's LAN is in place");

  let at = Date.now();
  await bed.exec(alpha, ['ip', 'route', 'del', '10.2.1.0/24', 'dev', alpha.wgInterface]);
  t.equal(await routeOf(), '', 'route deleted');
  await pollUntil('the route to come back', async () => (await routeOf()).includes(alpha.wgInterface), {
    timeoutMs: 20_000,
  });
  t.comment(`drift: deleted route restored after ${Date.now() - at} ms`);
  await waitForFlowOpen(bed, flow, { timeoutMs: 5000 });
  t.pass('route restored, traffic flows');

  at = Date.now();
  await bed.exec(alpha, ['wg', 'set', alpha.wgInterface, 'peer', betaKey, 'remove']);
  await bed.exec(beta, ['nft', 'delete', 'table', 'inet', 'crosslink']);
  t.notOk(
    (await fleet.wgPeers('alpha')).some((p) => p.publicKey === betaKey),
    'peer deleted',
  );
  // With beta's table gone nothing filters: the forbidden direction would open (once alpha has its peer back).
  const [peerMs, tableMs] = await Promise.all([
    pollUntil(
      'the peer to come back',
      async () => (await fleet.wgPeers('alpha')).some((p) => p.publicKey === betaKey) && Date.now() - at,
      { timeoutMs: 25_000, intervalMs: 200 },
    ),
    pollUntil(
      'the nft table to come back',
      async () =>
        (await bed.exec(beta, ['nft', 'list', 'table', 'inet', 'crosslink'], { check: false })).code === 0 &&
        Date.now() - at,
      { timeoutMs: 25_000, intervalMs: 200 },
    ),
  ]);
  t.comment(`drift: deleted peer restored after ${peerMs} ms, deleted nft table after ${tableMs} ms`);
  // A re-added peer needs a fresh handshake; if both ends start one at once WireGuard retries after
  // its 5 s REKEY_TIMEOUT, so allow one retry (measured: 2 of 15 new links hit it).
  await waitForFlowOpen(bed, flow, { timeoutMs: 12_000 });
  t.pass('peer restored, traffic flows');
  t.equal(
    await bed.tcpProbe('b1', '10.1.1.10', 80, { timeoutMs: 1000 }),
    'timeout',
    'table restored: the forbidden direction is dropped again',
  );
  t.equal(
    await bed.tcpProbe('a1', '10.2.1.10', 22, { timeoutMs: 1000 }),
    'timeout',
    'and a port no rule allows is dropped at beta again',
  );
});
