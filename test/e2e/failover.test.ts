// Scenario 9, failover on real traffic: care-records (via [lth-sjuh, lth-sjuh-standby], gateway
// 10.20.1.1) on the Leeds topology. The primary box dies (agent killed, cables pulled): the
// standby takes the subnet and its gateway within seconds, so a social-care workstation keeps
// reaching the care-record server AND the server's replies (and its own connections out) go through
// the moved gateway. The handover is in the health history and in crosslink_agent_serving. The
// primary comes back (as after a reboot): traffic moves back only once it is healthy and the
// hold-down has passed. Then, with the default report settings, the primary loses its links while
// its agent keeps running (power or uplink loss: no FIN reaches the controller): the edges move
// the subnet within seconds, and the controller notices and records it on its own. Prints the time traffic was lost both ways.
import t from 'tap';
import type { HealthEvent } from '../../controller/health/types.js';
import { Testbed } from '../testbed/testbed.js';
import { Fleet, pollUntil } from './fleet.js';
import { leedsOneUnderlayPolicy, leedsTopology } from './leeds-topology.js';

const HOLD_DOWN_S = 6;
const CONTROLLER_ARGS = [
  '--report-interval-seconds',
  '1',
  '--silent-intervals',
  '3',
  '--health-interval-seconds',
  '0.5',
  '--failover-hold-down-seconds',
  String(HOLD_DOWN_S),
  '--probe-interval-seconds',
  '1',
];
const AGENTS = ['lth-sjuh', 'lth-sjuh-standby', 'lcc-adult-social-care'].map((box) => ({ box }));

const bed = await Testbed.create(leedsTopology(undefined, { isOneUnderlay: true }), { t });
const fleet = await Fleet.start(bed, {
  agents: AGENTS,
  policyText: leedsOneUnderlayPolicy(),
  timeoutMs: 120_000,
  controllerArgs: CONTROLLER_ARGS,
  agentArgs: ['--report-interval-seconds', '1'],
});
const https = await bed.listen('care-record', 'tcp', 443);
const mllp = await bed.listen('social-care-ws', 'tcp', 2575);
t.teardown(async () => {
  await https.close();
  await mllp.close();
});

/** Probes a flow every `everyMs` in the background; `outages()` gives the gaps between successes. */
function monitor(from: string, to: string, port: number, everyMs = 100) {
  const log: Array<{ atMs: number; isOk: boolean }> = [];
  let isRunning = true;
  const loop = (async () => {
    while (isRunning) {
      const startMs = Date.now();
      const isOk = (await bed.tcpProbe(from, to, port, { timeoutMs: 400 })) === 'open';
      log.push({ atMs: startMs, isOk });
      const waitMs = everyMs - (Date.now() - startMs);
      if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
    }
  })();
  return {
    async stop() {
      isRunning = false;
      await loop;
    },
    /** Longest time without a successful probe between `sinceMs` and the last probe. */
    longestOutageMs(sinceMs: number): number {
      return this.longestOutage(sinceMs).ms;
    },
    /** The longest gap and where it lies (ms after `sinceMs`), for the comment a failure needs. */
    longestOutage(sinceMs: number): { ms: number; fromMs: number; toMs: number } {
      let worst = { ms: 0, fromMs: 0, toMs: 0 };
      let lastOkMs: number | null = null;
      for (const e of log.filter((x) => x.atMs >= sinceMs)) {
        if (e.isOk) {
          if (lastOkMs !== null && e.atMs - lastOkMs > worst.ms)
            worst = { ms: e.atMs - lastOkMs, fromMs: lastOkMs - sinceMs, toMs: e.atMs - sinceMs };
          lastOkMs = e.atMs;
        }
      }
      return worst;
    },
    failures(sinceMs: number): number {
      return log.filter((x) => x.atMs >= sinceMs && !x.isOk).length;
    },
    lastOk(): boolean {
      return log.at(-1)?.isOk ?? false;
    },
  };
}

async function lanMac(box: string, ifname: string): Promise<string> {
  const r = await bed.exec(bed.box(box), ['ip', '-j', 'link', 'show', 'dev', ifname]);
  return (JSON.parse(r.stdout) as Array<{ address: string }>)[0]!.address;
}

async function neighbourMac(host: string, address: string): Promise<string | null> {
  const r = await bed.exec(bed.host(host), ['ip', '-j', 'neigh', 'show', 'to', address]);
  const list = JSON.parse(r.stdout || '[]') as Array<{ lladdr?: string }>;
  return list[0]?.lladdr ?? null;
}

async function hasAddress(box: string, ifname: string, cidr: string): Promise<boolean> {
  const r = await bed.exec(bed.box(box), ['ip', '-j', 'addr', 'show', 'dev', ifname]);
  const info = (JSON.parse(r.stdout) as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>)[0]!
    .addr_info;
  return info.some((a) => `${a.local}/${a.prefixlen}` === cidr);
}

async function metricsText(): Promise<string> {
  return String((await fleet.api<string>('GET', '/metrics')).body);
}

const subnetEvents = (sinceMs: number) => fleet.history('subnet:care-records', sinceMs);

const PRIMARY_MAC = await lanMac('lth-sjuh', 'lan0');
const STANDBY_MAC = await lanMac('lth-sjuh-standby', 'lan0');

t.test('before: the primary holds the gateway and carries the traffic', async (t) => {
  await pollUntil(
    'the primary to hold 10.20.1.1 and fd00:20:1::1',
    async () =>
      (await hasAddress('lth-sjuh', 'lan0', '10.20.1.1/24')) &&
      (await hasAddress('lth-sjuh', 'lan0', 'fd00:20:1::1/64')),
    { timeoutMs: 20_000 },
  );
  t.notOk(await hasAddress('lth-sjuh-standby', 'lan0', '10.20.1.1/24'), 'the standby does not');
  t.equal(await bed.tcpProbe('social-care-ws', '10.20.1.10', 443, { timeoutMs: 2000 }), 'open');
  t.equal(await bed.tcpProbe('social-care-ws', 'fd00:20:1::10', 443, { timeoutMs: 2000 }), 'open', 'IPv6 too');
  t.equal(
    await bed.tcpProbe('hl7-engine', '10.60.1.10', 2575, { timeoutMs: 2000 }),
    'open',
    'the LAN side opens connections out through the gateway',
  );
  t.equal(
    await neighbourMac('care-record', '10.20.1.1'),
    PRIMARY_MAC,
    "the server's gateway is the primary's LAN port",
  );
  t.match(await metricsText(), /crosslink_agent_serving\{agent="lth-sjuh",subnet="care-records",role="primary"\} 1/);
});

t.test('the primary dies: the standby serves, both directions, within seconds', async (t) => {
  const toServer = monitor('social-care-ws', '10.20.1.10', 443);
  const fromServer = monitor('hl7-engine', '10.60.1.10', 2575);
  await new Promise((r) => setTimeout(r, 1000));
  const killedAtMs = Date.now();
  await fleet.stopAgent('lth-sjuh', { signal: 'SIGKILL' });
  await bed.setLinkUp('lth-sjuh', 'lan0', false);
  await bed.setLinkUp('lth-sjuh', 'lan1', false);
  await bed.setUnderlayLinkUp('lth-sjuh', false);

  await pollUntil(
    'the standby to hold the gateway',
    async () => hasAddress('lth-sjuh-standby', 'lan0', '10.20.1.1/24'),
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  await pollUntil('traffic to flow again both ways', async () => toServer.lastOk() && fromServer.lastOk(), {
    timeoutMs: 30_000,
    intervalMs: 100,
  });
  await new Promise((r) => setTimeout(r, 2000));
  await toServer.stop();
  await fromServer.stop();
  const lostToMs = toServer.longestOutageMs(killedAtMs - 1000);
  const lostFromMs = fromServer.longestOutageMs(killedAtMs - 1000);
  t.comment(
    `failover: traffic lost for ${(lostToMs / 1000).toFixed(1)} s (social care -> care record :443) and ${(lostFromMs / 1000).toFixed(1)} s (HL7 engine -> social care :2575, via the moved gateway)`,
  );
  t.ok(lostToMs <= 6000, `client -> server outage ${lostToMs} ms (target <= 5 s; 6 s allowed for a loaded machine)`);
  t.ok(lostFromMs <= 6000, `server side -> out outage ${lostFromMs} ms`);
  t.equal(
    await neighbourMac('care-record', '10.20.1.1'),
    STANDBY_MAC,
    "the server's neighbour entry for the gateway moved to the standby (gratuitous ARP)",
  );
  await pollUntil(
    'the IPv6 neighbour entry to move too (unsolicited NA)',
    async () => (await neighbourMac('care-record', 'fd00:20:1::1')) === STANDBY_MAC,
    { timeoutMs: 5000, intervalMs: 100 },
  );
  t.pass("the server's IPv6 neighbour entry for the gateway moved to the standby (unsolicited NA)");
  t.equal(
    await bed.tcpProbe('social-care-ws', 'fd00:20:1::10', 443, { timeoutMs: 2000 }),
    'open',
    'IPv6 through the standby',
  );

  // The controller confirms on its own, later than the edges: the stream ended at once (SIGKILL),
  // but it moves the subnet only once the peers' probes (a 5 s round) report the primary gone
  // (docs/health.md, "The controller confirms"). One CI run read the history 4.5 s after the kill,
  // a moment too early: wait for it, up to 15 s, and say how long it took.
  const isHandover = (events: HealthEvent[]) =>
    events.some(
      (e) => e.to === 'degraded' && /now served by lth-sjuh-standby \(standby\) instead of lth-sjuh/.test(e.reason),
    );
  let events: HealthEvent[] = [];
  await pollUntil('the handover in the history', async () => isHandover((events = await subnetEvents(killedAtMs))), {
    timeoutMs: Math.max(1, killedAtMs + 15_000 - Date.now()),
    intervalMs: 200,
  }).catch(() => undefined);
  t.ok(isHandover(events), `handover in the history: ${JSON.stringify(events)}`);
  t.comment(
    `the controller recorded the handover by ${((Date.now() - killedAtMs) / 1000).toFixed(1)} s after the kill`,
  );
  const m = await metricsText();
  t.match(m, /crosslink_agent_serving\{agent="lth-sjuh-standby",subnet="care-records",role="standby"\} 1/);
  t.match(m, /crosslink_agent_serving\{agent="lth-sjuh",subnet="care-records",role="primary"\} 0/);
  // The handover can come before the dead primary's last report is three intervals old (it did,
  // 3 s after): wait for the evaluation that finds it silent, at most 5 s more.
  const readPrimary = async () =>
    (
      await fleet.api<{ agents: Array<{ name: string; state: string; reason: string }> }>('GET', '/v1/health')
    ).body.agents.find((a) => a.name === 'lth-sjuh')!;
  const primary = await pollUntil(
    'the health to show the dead primary down',
    async () => {
      const p = await readPrimary();
      return p.state === 'down' ? p : undefined;
    },
    { timeoutMs: 5000, intervalMs: 200 },
  ).catch(readPrimary);
  t.equal(primary.state, 'down');
  t.match(primary.reason, /not reported for \d+ s/);
});

t.test('the primary returns: traffic moves back only after the hold-down', async (t) => {
  const toServer = monitor('social-care-ws', '10.20.1.10', 443);
  // As after a reboot: its addresses are gone, the links come back, the agent starts.
  for (const cidr of ['10.20.1.1/24', 'fd00:20:1::1/64'])
    await bed.exec(bed.box('lth-sjuh'), ['ip', 'addr', 'del', cidr, 'dev', 'lan0'], { check: false });
  await bed.exec(bed.box('lth-sjuh'), ['ip', 'addr', 'del', '10.20.2.1/28', 'dev', 'lan1'], { check: false });
  await bed.setUnderlayLinkUp('lth-sjuh', true);
  await bed.setLinkUp('lth-sjuh', 'lan0', true);
  await bed.setLinkUp('lth-sjuh', 'lan1', true);
  const restartedAtMs = Date.now();
  await fleet.startAgent('lth-sjuh');

  const back = await pollUntil(
    'care-records back on the primary',
    async () =>
      (await subnetEvents(restartedAtMs)).find(
        (e) => e.to === 'ok' && /now served by lth-sjuh \(primary\)/.test(e.reason),
      ),
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  const healthy = await fleet.history('serving:lth-sjuh', restartedAtMs);
  const recoveredAt = healthy.find((e) => e.to === 'ok');
  t.ok(recoveredAt, `serving health recorded: ${JSON.stringify(healthy)}`);
  const firstReport = (await fleet.history('agent:lth-sjuh', restartedAtMs))[0];
  const holdMs = back.atMs - (firstReport?.atMs ?? restartedAtMs);
  t.comment(
    `primary back: first state change ${(((firstReport?.atMs ?? restartedAtMs) - restartedAtMs) / 1000).toFixed(1)} s after start, serving again ${(holdMs / 1000).toFixed(1)} s later (hold-down ${HOLD_DOWN_S} s)`,
  );
  t.ok(holdMs >= HOLD_DOWN_S * 1000 - 500, 'not before the hold-down');
  await pollUntil('the primary to hold the gateway again', async () => hasAddress('lth-sjuh', 'lan0', '10.20.1.1/24'), {
    timeoutMs: 20_000,
    intervalMs: 100,
  });
  await pollUntil(
    'the standby to release it',
    async () => !(await hasAddress('lth-sjuh-standby', 'lan0', '10.20.1.1/24')),
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  await new Promise((r) => setTimeout(r, 2000));
  await toServer.stop();
  const lost = toServer.longestOutage(restartedAtMs);
  const lostMs = lost.ms;
  t.comment(
    `fail-back: traffic lost for ${(lostMs / 1000).toFixed(1)} s at most (social care -> care record :443), ${(lost.fromMs / 1000).toFixed(1)}-${(lost.toMs / 1000).toFixed(1)} s after the agent started; serving moved back ${((back.atMs - restartedAtMs) / 1000).toFixed(1)} s after`,
  );
  if (lostMs > 6000) {
    for (const subject of [
      'serving:lth-sjuh',
      'serving:lth-sjuh-standby',
      'agent:lth-sjuh',
      'agent:lth-sjuh-standby',
    ]) {
      const ev = await fleet.history(subject, restartedAtMs);
      t.comment(
        `${subject}: ${ev.map((e) => `${((e.atMs - restartedAtMs) / 1000).toFixed(1)} s ${e.to} (${e.reason})`).join('; ')}`,
      );
    }
    t.comment(
      `care-records: ${(await subnetEvents(restartedAtMs)).map((e) => `${((e.atMs - restartedAtMs) / 1000).toFixed(1)} s ${e.to} (${e.reason})`).join('; ')}`,
    );
  }
  t.ok(lostMs <= 6000, `fail-back outage ${lostMs} ms`);
  t.equal(await neighbourMac('care-record', '10.20.1.1'), PRIMARY_MAC, 'the gateway is the primary again');
  t.equal(await bed.tcpProbe('hl7-engine', '10.60.1.10', 2575, { timeoutMs: 2000 }), 'open');
  t.match(await metricsText(), /crosslink_agent_serving\{agent="lth-sjuh",subnet="care-records",role="primary"\} 1/);
});

t.test(
  'the primary loses its links while its agent runs (no FIN), default report settings: the standby serves',
  async (t) => {
    // A box that loses power, or whose uplink is cut, sends no FIN: the controller's stream to it
    // stays open until it notices the silence itself. Default report settings (every 10 s, silent
    // after 3): failover must come from the dead stream plus the peers' failing probes, not from 30 s
    // of silence. Controller and agents restart with those settings first (the data plane stays).
    // The primary's LAN link went down above, and the kernel dropped its IPv6 address with it; a
    // reboot would bring it back from the box's network config. Without it the primary cannot hold
    // the IPv6 gateway and never applies its config.
    await bed.exec(bed.box('lth-sjuh'), ['ip', '-6', 'addr', 'replace', 'fd00:20:1::2/64', 'dev', 'lan0', 'nodad']);
    await fleet.stopController({ signal: 'SIGTERM' });
    await fleet.startController({ args: [] });
    for (const { box } of AGENTS) {
      await fleet.stopAgent(box);
      await fleet.startAgent(box, { args: [] });
    }
    const restartedAtMs = Date.now();
    await fleet.waitConverged({ timeoutMs: 60_000 });
    await pollUntil('the primary to hold the gateway', async () => hasAddress('lth-sjuh', 'lan0', '10.20.1.1/24'), {
      timeoutMs: 20_000,
    });
    // Restarts are a slow control plane, not a dead box: nothing moved.
    await new Promise((r) => setTimeout(r, 6000));
    t.same(
      (await subnetEvents(restartedAtMs)).filter((e) => e.to !== 'ok'),
      [],
      'restarting the controller and the agents moved nothing',
    );

    const toServer = monitor('social-care-ws', '10.20.1.10', 443);
    await new Promise((r) => setTimeout(r, 1000));
    const cutAtMs = Date.now();
    await bed.setLinkUp('lth-sjuh', 'lan0', false);
    await bed.setLinkUp('lth-sjuh', 'lan1', false);
    await bed.setUnderlayLinkUp('lth-sjuh', false);
    let servedAtMs: number | null = null;
    try {
      await pollUntil(
        'the standby to hold the gateway',
        async () => hasAddress('lth-sjuh-standby', 'lan0', '10.20.1.1/24'),
        { timeoutMs: 60_000, intervalMs: 100 },
      );
      servedAtMs = Date.now();
    } catch {
      const primary = (await fleet.listAgents()).find((a) => a.name === 'lth-sjuh');
      t.comment(
        `after 60 s the controller still sees lth-sjuh ${primary?.isConnected ? 'connected' : 'disconnected'}, last report ${primary?.lastReportAtMs ? Math.round((Date.now() - primary.lastReportAtMs) / 1000) : '?'} s ago`,
      );
    }
    t.ok(fleet.agentPid('lth-sjuh') !== null, "the primary's agent was not killed");
    t.ok(servedAtMs !== null, 'the standby took the gateway within 60 s');
    if (servedAtMs === null) {
      await toServer.stop();
      return;
    }
    await pollUntil('traffic to flow again', async () => toServer.lastOk(), { timeoutMs: 30_000, intervalMs: 100 });
    await new Promise((r) => setTimeout(r, 1000));
    await toServer.stop();
    const lostMs = toServer.longestOutageMs(cutAtMs - 1000);
    t.comment(
      `failover without FIN (links cut, agent running, report interval 10 s): standby holds the gateway ${((servedAtMs - cutAtMs) / 1000).toFixed(1)} s after the cut; traffic lost for ${(lostMs / 1000).toFixed(1)} s (social care -> care record :443)`,
    );
    // The edges decide (docs/health.md, "Failover at the edges"): one detection time, 750 ms with
    // the defaults, plus an apply; 5 s allows for a loaded machine. The controller is not needed.
    t.ok(servedAtMs - cutAtMs <= 5_000, `standby serving ${servedAtMs - cutAtMs} ms after the cut`);
    // The controller notices on its own, later (dead-stream detection 5-10 s, a peer probe round
    // 5 s; silence alone would take 30 s), and records the handover.
    type Serving = { agent: string; isHealthy: boolean; reason: string };
    let serving: Serving | undefined;
    try {
      await pollUntil(
        'the controller to see the primary unhealthy',
        async () => {
          const h = (await fleet.api<{ serving: Serving[] }>('GET', '/v1/health')).body;
          serving = h.serving.find((s) => s.agent === 'lth-sjuh');
          return serving?.isHealthy === false ? true : undefined;
        },
        { timeoutMs: Math.max(1, cutAtMs + 30_000 - Date.now()), intervalMs: 200 },
      );
      t.comment(
        `the controller saw the primary unhealthy ${((Date.now() - cutAtMs) / 1000).toFixed(1)} s after the cut`,
      );
    } catch {
      // Reported by the assertion below.
    }
    t.equal(serving?.isHealthy, false, 'the controller sees the primary unhealthy within 30 s of the cut');
    t.match(
      serving?.reason ?? '',
      /no config stream and its peers cannot reach it|not heard from since|silent/,
      `why: ${serving?.reason}`,
    );
    const events = await subnetEvents(cutAtMs);
    t.ok(
      events.some(
        (e) => e.to === 'degraded' && /now served by lth-sjuh-standby \(standby\) instead of lth-sjuh/.test(e.reason),
      ),
      `handover in the history: ${JSON.stringify(events)}`,
    );
    // Cut off, its agent would spend the stop's grace period on calls that cannot arrive.
    await fleet.stopAgent('lth-sjuh', { signal: 'SIGKILL' });
  },
);

t.test('stop', async () => {
  await fleet.stop();
});
