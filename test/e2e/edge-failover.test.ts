// Failover at the edges (issue 14), on real agents, wireguard-go, wg, ip and nft. Two underlays with
// no link: gp (N3 only, a client on its LAN) sends through the hub (relay) to civic-a (primary) or
// civic-b (standby), both on the PSN only and on one LAN with a server whose default route is the
// virtual gateway. The client sends a UDP request every 20 ms; the loss window runs from the first
// unanswered request to the first answered one after it. One testbed for every case:
//
// a. the primary's power is cut (agent and wireguard-go killed by PID, every cable down): loss <= 2 s;
// c. it comes back: it takes the subnet and the gateway only after the hold-down, with a gap no
//    longer than the failover's, and exactly one gateway holder afterwards;
// d. 5 % random loss on the primary's underlay for a minute: nothing moves;
// e. split brain: the primary's underlay is cut, its LAN stays up: exactly one holder within the
//    detection time (+ slack), never two for longer than one detection time;
// b. the controller is killed first, then the primary's power is cut: loss <= 2 s all the same.
//
// Every figure is printed (t.comment). Settings: liveness 200 ms x 3, hold-down 5 s.
import t, { type Test } from 'tap';
import { Testbed } from '../testbed/testbed.js';
import {
  ECHO_PORT,
  EDGE_FAILOVER_AGENTS,
  EDGE_FAILOVER_POLICY,
  GATEWAY,
  GATEWAY_CIDR,
  HOLD_DOWN_S,
  LIVENESS_INTERVAL_MS,
  LIVENESS_MULTIPLIER,
  PRIMARY,
  SERVER_ADDRESS,
  SERVER_SUBNET,
  STANDBY,
  edgeFailoverControllerArgs,
  edgeFailoverTopology,
  effectiveDetectionMs,
  hasLivenessSettings,
  serverSubnetHandover,
} from './edge-failover-topology.js';
import { Fleet, pollUntil } from './fleet.js';
import { echoState, failoverLine } from './failover-view.js';
import { ForwardPath } from './forward-path.js';
import { GatewayHolders } from './gateway-holders.js';
import { LossMonitor, startQuietUdpEcho } from './loss-monitor.js';
import { failoverLoss } from './loss-window.js';
import { cutPower, restorePower } from './power-cut.js';

t.setTimeout(20 * 60_000);

/** The issue's p95 target for the loss window on a primary's power loss. */
const FAILOVER_TARGET_MS = 2000;
/** How much earlier than the hold-down a move back may be seen (observation granularity, a loaded machine). */
const HOLD_DOWN_SLACK_MS = 1000;
/** How much longer the gap at the move back may be than the failover's. */
const FAILBACK_GAP_SLACK_MS = 500;
/** Split brain: time to exactly one holder, beyond the detection time (overlay + LAN, two periods). */
const SPLIT_SLACK_MS = 1500;
const LOSS_SECONDS = 60;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const isEdgeCode = hasLivenessSettings();
/** Interval x multiplier the agents run with (the agents' default where the controller cannot set it). */
const DETECTION_MS = effectiveDetectionMs(isEdgeCode);
const bed = await Testbed.create(edgeFailoverTopology(), { t });
const fleet = await Fleet.start(bed, {
  agents: EDGE_FAILOVER_AGENTS,
  policyText: EDGE_FAILOVER_POLICY,
  timeoutMs: 120_000,
  controllerArgs: edgeFailoverControllerArgs(isEdgeCode),
});
await startQuietUdpEcho(bed, 'server', ECHO_PORT);
const holders = await GatewayHolders.start(bed, GATEWAY, [{ box: PRIMARY }, { box: STANDBY }]);
const path = await ForwardPath.start(fleet, 'gp', SERVER_SUBNET, [PRIMARY, STANDBY], 50);
t.teardown(async () => {
  await path.stop();
  await holders.stop().catch(() => undefined);
});
t.comment(
  isEdgeCode
    ? `edge failover: liveness ${LIVENESS_INTERVAL_MS} ms x ${LIVENESS_MULTIPLIER}, hold-down ${HOLD_DOWN_S} s`
    : `this controller has no --liveness-interval-ms: the agents' default liveness (detection ${DETECTION_MS} ms), if any`,
);

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/**
 * Waits for the steady state: the primary has the subnet at gp and holds the gateway, traffic
 * flows, and the standby is ready to take over: gp's echo and the standby's hear each other (right
 * after the fleet starts, their relayed tunnel may still be coming up; a cut then measured the
 * tunnel's first handshake, 6.4 s in one CI run, not the failover).
 */
async function steady(t: Test, what: string): Promise<boolean> {
  const [isPath, isHolder] = await Promise.all([path.waitFor(PRIMARY, 60_000), holders.waitFor([PRIMARY], 60_000)]);
  const isStandbyReady = await pollUntil(
    'gp and the standby to hear each other',
    async () => (await echoState(fleet, 'gp', STANDBY)) === 'up' && (await echoState(fleet, STANDBY, 'gp')) === 'up',
    { timeoutMs: 30_000, intervalMs: 200 },
  ).then(
    () => true,
    () => false,
  );
  const mon = await LossMonitor.start(bed, 'client', SERVER_ADDRESS, ECHO_PORT);
  const isFlowing = await mon.waitOk(Date.now(), 20_000, 300);
  await mon.stop();
  const isSteady = isPath !== null && isHolder && isFlowing && isStandbyReady;
  t.ok(isSteady, `${what}: gp sends to ${PRIMARY}, it holds ${GATEWAY}, traffic flows, ${STANDBY} is ready`, {
    path: path.now,
    holders: holders.holders(),
    isFlowing,
    isStandbyReady,
  });
  return isSteady;
}

const cutPrimary = () =>
  cutPower(bed, PRIMARY, {
    pids: [fleet.agentPid(PRIMARY)].filter((p): p is number => p !== null),
    commands: ['wireguard-go'],
  });

/**
 * Cuts the primary's power under the loss monitor; the loss window in ms, or null when traffic
 * never came back. With the controller up, it also watches through the controller's own
 * confirmation (it moves the subnet seconds later, once its probes say the primary is gone): the
 * edges' choice must stand. It did not: the controller blamed the boxes probing the dead primary
 * and withdrew the sending box's subnet, and for 6-7 s after every failover there was no holder
 * and no path (fixed in controller/health/serving.ts).
 */
async function failover(t: Test, label: string, opts: { isControllerUp: boolean }): Promise<number | null> {
  const mon = await LossMonitor.start(bed, 'client', SERVER_ADDRESS, ECHO_PORT);
  t.ok(await mon.waitOk(Date.now(), 10_000, 500), 'traffic flows before the cut');
  const cut = await cutPrimary();
  t.same(
    cut.killed.map((k) => k.command).sort(),
    ['node', 'wireguard-go'],
    `killed the agent and wireguard-go by PID (${cut.killed.map((k) => `${k.command} ${k.pid}`).join(', ')})`,
  );
  const isBack = await mon.waitOk(cut.atMs, 30_000, 500);
  const confirmedAtMs =
    opts.isControllerUp && isBack ? await serverSubnetHandover(fleet, STANDBY, cut.atMs, cut.atMs + 30_000) : null;
  if (confirmedAtMs !== null) await sleep(1000); // the agents apply the controller's new configs
  await mon.stop({ isDrained: true });
  // The failover's loss ends when traffic is back for good; a loss after that is a later one.
  const { window: w, later } = failoverLoss(mon.since(cut.atMs - mon.replyTimeoutMs), 500);
  const standbyAt = holders.changes(cut.atMs).find((e) => e.box === STANDBY && e.isHolder)?.atMs;
  const movedAt = path.changes(cut.atMs).find((c) => c.to === STANDBY)?.atMs;
  t.comment(
    `${label}: loss window ${w ? s(w.ms) : 'none'}${w?.isOpen ? ' and still losing after 30 s' : ''} (${w?.failed ?? 0} requests lost); ` +
      `gp moved the subnet to ${STANDBY} ${movedAt ? s(movedAt - cut.atMs) : '-'} and ${STANDBY} took ${GATEWAY} ${standbyAt ? s(standbyAt - cut.atMs) : '-'} after the cut`,
  );
  const printViews = async () => {
    for (const name of ['gp', STANDBY, 'hub']) t.comment(`${name}: ${await failoverLine(fleet, name)}`);
  };
  if (w === null || w.isOpen || w.ms > FAILOVER_TARGET_MS) await printViews();
  t.ok(isBack, 'traffic flows again within 30 s');
  t.ok(w !== null, 'the cut lost some requests (the monitor sees a dead primary)');
  t.ok(
    w !== null && !w.isOpen && w.ms <= FAILOVER_TARGET_MS,
    `loss window ${w ? w.ms : '-'} ms <= ${FAILOVER_TARGET_MS} ms`,
  );
  if (opts.isControllerUp && isBack) {
    t.ok(confirmedAtMs !== null, `the controller moved the subnet to ${STANDBY} within 30 s of the cut`);
    if (confirmedAtMs !== null)
      t.comment(`${label}: the controller confirmed ${s(confirmedAtMs - cut.atMs)} after the cut`);
    t.same(
      later.map((x) => `${s(x.fromMs - cut.atMs)}+${s(x.ms)}`),
      [],
      'no loss after the failover, through the controller confirming it',
    );
    const moves = path.changes(cut.atMs).filter((c) => c.to !== STANDBY);
    const drops = holders.changes(cut.atMs).filter((e) => e.box === STANDBY && !e.isHolder);
    t.same(moves, [], `gp kept sending to ${STANDBY}`);
    t.same(drops, [], `${STANDBY} kept the gateway`);
  }
  const isOneHolder = await holders.waitFor([STANDBY], 5000);
  t.ok(isOneHolder, `exactly one holder afterwards: ${STANDBY}`, { holders: holders.holders() });
  t.equal(path.now, STANDBY, `gp sends the subnet to ${STANDBY}`);
  // No holder, or gp sending the subnet to no peer, after a clean failover (how the controller's
  // misjudged serving health showed, fixed in 753b5fb): what each edge believed, every move since the cut.
  if (!isOneHolder || path.now !== STANDBY) {
    await printViews();
    t.comment(`gp's path since the cut: ${JSON.stringify(path.changes(cut.atMs))}`);
    t.comment(`gateway holders since the cut: ${JSON.stringify(holders.changes(cut.atMs))}`);
  }
  return w && !w.isOpen ? w.ms : null;
}

let failoverGapMs: number | null = null;

t.test('the two underlays have no link; traffic flows through the hub to the primary', async (t) => {
  const psnAddress = bed.box(PRIMARY).underlays[0]!.address;
  t.equal((await bed.ping('gp', psnAddress, { count: 1, timeoutMs: 1000 })).received, 0, 'gp cannot reach the PSN');
  await steady(t, 'at start');
  t.same(await holders.refresh(), [PRIMARY], 'one holder of the gateway');
});

t.test('a. the primary loses power (controller up): the standby serves within 2 s', async (t) => {
  if (!(await steady(t, 'before'))) return;
  failoverGapMs = await failover(t, 'power cut, controller up', { isControllerUp: true });
});

t.test('c. the primary returns: it takes over only after the hold-down, with no longer a gap', async (t) => {
  const mon = await LossMonitor.start(bed, 'client', SERVER_ADDRESS, ECHO_PORT);
  const restoredAtMs = await restorePower(bed, PRIMARY, { addresses: [GATEWAY_CIDR] });
  await fleet.startAgent(PRIMARY);
  const gpKey = (await fleet.showAgent('gp')).publicKey;
  // Alive: its WireGuard runs with gp as a peer, so its echo can start (no traffic needed, unlike a
  // handshake, which a box that has not moved the subnet back yet would never cause).
  let aliveAtMs: number | null = null;
  while (aliveAtMs === null && Date.now() - restoredAtMs < 60_000) {
    const peers = await fleet.wgPeers(PRIMARY).catch(() => []);
    if (peers.some((p) => p.publicKey === gpKey)) aliveAtMs = Date.now();
    else await sleep(50);
  }
  t.ok(aliveAtMs !== null, `the primary came alive (WireGuard with gp as a peer)`);
  const [pathBackAtMs, isHolderBack] = await Promise.all([
    path.waitFor(PRIMARY, 60_000),
    holders.waitFor([PRIMARY], 60_000),
  ]);
  const gatewayBackAtMs = holders.changes(restoredAtMs).findLast((e) => e.box === PRIMARY && e.isHolder)?.atMs ?? null;
  await sleep(1500);
  await mon.stop({ isDrained: true });
  const gap = mon.longest(restoredAtMs);
  const since = (x: number | null) => (x === null || aliveAtMs === null ? '-' : s(x - aliveAtMs));
  t.comment(
    `fail-back: alive ${aliveAtMs ? s(aliveAtMs - restoredAtMs) : '-'} after the cables came back; gp moved back ${since(pathBackAtMs)} ` +
      `and ${PRIMARY} took ${GATEWAY} ${since(gatewayBackAtMs)} after it was alive (hold-down ${HOLD_DOWN_S} s); ` +
      `gap ${gap ? `${s(gap.ms)} from ${since(gap.fromMs)}` : 'none'} (failover gap ${failoverGapMs === null ? '-' : s(failoverGapMs)})`,
  );
  t.ok(
    pathBackAtMs !== null && isHolderBack && gatewayBackAtMs !== null,
    'the primary took the subnet and the gateway back',
  );
  const minMs = HOLD_DOWN_S * 1000 - HOLD_DOWN_SLACK_MS;
  if (aliveAtMs !== null && pathBackAtMs !== null)
    t.ok(pathBackAtMs - aliveAtMs >= minMs, `gp moved back ${pathBackAtMs - aliveAtMs} ms after alive (>= ${minMs})`);
  if (aliveAtMs !== null && gatewayBackAtMs !== null)
    t.ok(
      gatewayBackAtMs - aliveAtMs >= minMs,
      `the gateway moved back ${gatewayBackAtMs - aliveAtMs} ms after alive (>= ${minMs})`,
    );
  t.ok(failoverGapMs !== null, 'there is a failover gap to compare with (case a)');
  const gapMs = gap && !gap.isOpen ? gap.ms : gap ? Infinity : 0;
  if (failoverGapMs !== null)
    t.ok(
      gapMs <= failoverGapMs + FAILBACK_GAP_SLACK_MS,
      `fail-back gap ${gapMs} ms <= failover gap ${failoverGapMs} ms + ${FAILBACK_GAP_SLACK_MS}`,
    );
  t.same(await holders.refresh(), [PRIMARY], 'exactly one gateway holder afterwards');
  const overlap = holders.summary(restoredAtMs);
  t.ok(overlap.longestOverlapMs <= DETECTION_MS, `two holders for at most ${overlap.longestOverlapMs} ms`);
});

t.test(`d. 5 % random loss on the primary's underlay for ${LOSS_SECONDS} s: nothing moves`, async (t) => {
  if (!(await steady(t, 'before'))) return;
  const mon = await LossMonitor.start(bed, 'client', SERVER_ADDRESS, ECHO_PORT);
  const startMs = Date.now();
  // The kernel here has no netem qdisc (sch_netem): the testbed's random drop in the PSN router
  // (nft numgen) takes 5 % of the packets each way on the primary's cable.
  await bed.setUnderlayLoss(PRIMARY, 5);
  try {
    await sleep(LOSS_SECONDS * 1000);
  } finally {
    await bed.setUnderlayLoss(PRIMARY, 0);
  }
  const endMs = Date.now();
  await mon.stop({ isDrained: true });
  const all = mon.since(startMs, endMs);
  const lost = all.filter((x) => !x.isOk).length;
  const w = mon.longest(startMs, endMs);
  const moves = path.changes(startMs);
  const gatewayMoves = holders.changes(startMs);
  t.comment(
    `5 % loss for ${LOSS_SECONDS} s: ${lost}/${all.length} requests lost (${((100 * lost) / Math.max(1, all.length)).toFixed(1)} %), ` +
      `longest loss window ${w ? s(w.ms) : 'none'}; gp moved the subnet ${moves.length} times, the gateway moved ${gatewayMoves.length} times`,
  );
  t.ok(all.length >= LOSS_SECONDS * 25, `the monitor ran (${all.length} requests)`);
  if (moves.length > 0 || gatewayMoves.length > 0)
    for (const name of ['gp', PRIMARY, STANDBY, 'hub'])
      t.comment(`${name} ${s(Date.now() - startMs)} after the loss began: ${await failoverLine(fleet, name)}`);
  t.same(moves, [], 'gp kept the primary (no failover, no flapping)');
  t.same(gatewayMoves, [], 'no gateway move');
  t.same(await holders.refresh(), [PRIMARY], `${PRIMARY} still holds the gateway`);
});

t.test("e. split brain: the primary's underlay is cut, its LAN stays up: one holder", async (t) => {
  if (!(await steady(t, 'before'))) return;
  const mon = await LossMonitor.start(bed, 'client', SERVER_ADDRESS, ECHO_PORT);
  const cutAtMs = Date.now();
  await bed.setUnderlayLinkUp(PRIMARY, false);
  const observeMs = DETECTION_MS + SPLIT_SLACK_MS + 3000;
  await sleep(observeMs);
  const sum = holders.summary(cutAtMs);
  const isTrafficBack = await mon.waitOk(cutAtMs, 5000, 300);
  await mon.stop({ isDrained: true });
  const w = mon.longest(cutAtMs - mon.replyTimeoutMs);
  t.comment(
    `split brain: holders after ${s(observeMs)}: [${sum.holdersAtEnd.join(', ')}]; exactly one holder from ` +
      `${sum.settledAtMs === null ? 'never' : s(sum.settledAtMs - cutAtMs)} after the cut; longest overlap of two holders ` +
      `${s(sum.longestOverlapMs)} (detection ${s(DETECTION_MS)}), no holder for ${s(sum.noHolderTotalMs)}; ` +
      `loss window ${w ? s(w.ms) : 'none'}`,
  );
  t.same(sum.holdersAtEnd, [STANDBY], `${STANDBY} holds the gateway, ${PRIMARY} (cut off from the overlay) gave it up`);
  t.ok(
    sum.settledAtMs !== null && sum.settledAtMs - cutAtMs <= DETECTION_MS + SPLIT_SLACK_MS,
    `exactly one holder within ${DETECTION_MS} + ${SPLIT_SLACK_MS} ms`,
  );
  t.ok(sum.longestOverlapMs <= DETECTION_MS, `two holders for ${sum.longestOverlapMs} ms <= ${DETECTION_MS} ms`);
  t.ok(isTrafficBack, 'traffic flows through the standby');

  const plugAtMs = Date.now();
  await bed.setUnderlayLinkUp(PRIMARY, true);
  const isBack = (await path.waitFor(PRIMARY, 60_000)) !== null && (await holders.waitFor([PRIMARY], 60_000));
  await sleep(500);
  const back = holders.summary(plugAtMs);
  t.comment(`cable back: ${PRIMARY} serves again ${s(Date.now() - plugAtMs)} later (hold-down ${HOLD_DOWN_S} s)`);
  t.ok(isBack, `${PRIMARY} took the subnet and the gateway back`);
  t.ok(back.longestOverlapMs <= DETECTION_MS, `two holders at the move back for ${back.longestOverlapMs} ms`);
});

t.test('b. the controller is killed first, then the primary loses power: the standby serves within 2 s', async (t) => {
  if (!(await steady(t, 'before'))) return;
  await fleet.stopController({ signal: 'SIGKILL' });
  t.equal(fleet.controllerPid, null, 'the controller is gone');
  await failover(t, 'power cut, controller down', { isControllerUp: false });
});

t.test('stop', async () => {
  await path.stop();
  await holders.stop();
  await fleet.stop();
});
