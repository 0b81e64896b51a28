// Two networks with no link (issue 12). N3 and the PSN are two underlay routers with no route
// between them: `gp` sits on N3 only, `civic` on the PSN only, `hub-a` and `hub-b` (shared buildings)
// on both, and both may relay. The controller host is on both and agents reach it over their own
// network. Checked here, with real agents, wireguard-go, wg, ip and nft:
//
// - the underlays really have no link (gp cannot reach civic's underlay address at all);
// - a permitted TCP flow gp-ws -> civic-srv works, through a relay, and a denied port stays shut;
// - the relay only forwards ciphertext: its WireGuard interface carries none of the pair's packets
//   (tcpdump on it captures nothing of theirs) and its wg peer list has no entry for civic;
// - a full-size TCP transfer (1 MiB, MSS-sized segments) passes: a relay adds no encapsulation;
// - per-rule counters: the rule counts the flows at both ends and nowhere else, and `crosslink
//   rules stats` sums them from the agents' reports;
// - the relay dies (agent killed, both cables pulled): the pair moves to the other relay; the gap is
//   printed, and must stay within the 10 s.
import t from 'tap';
import { Testbed } from '../testbed/testbed.js';
import { pythonPath } from '../testbed/traffic.js';
import { Fleet, pollUntil, WG_LISTEN_PORT } from './fleet.js';

const POLICY = `
version: 1
underlays:
  n3-wan: { description: NHS N3/HSCN }
  psn-wan: { description: council PSN }
zones:
  n3: { description: N3 }
  psn: { description: PSN }
agents:
  gp: { zones: [n3], underlays: [n3-wan] }
  civic: { zones: [psn], underlays: [psn-wan] }
  hub-a: { zones: [n3, psn], underlays: [n3-wan, psn-wan], relay: true }
  hub-b: { zones: [n3, psn], underlays: [n3-wan, psn-wan], relay: true }
subnets:
  gp-lan: { cidr: 10.30.1.0/24, zone: n3, via: [gp] }
  civic-lan: { cidr: 10.50.1.0/24, zone: psn, via: [civic] }
  hub-a-lan: { cidr: 10.40.1.0/24, zone: n3, via: [hub-a] }
rules:
  - { name: gp-to-civic, from: gp-lan, to: civic-lan, ports: [tcp/443, tcp/5001] }
  - { name: hub-to-gp, from: hub-a-lan, to: gp-lan, ports: [tcp/8080] }
`;

// The fast failover settings of docs/health.md: a relay whose power is cut sends no FIN, so its stream is
// found dead by the HTTP/2 PING (interval + timeout), then judged by its peers' probes or its silence.
const CONTROLLER_ARGS = [
  '--report-interval-seconds',
  '1',
  '--silent-intervals',
  '3',
  '--health-interval-seconds',
  '0.5',
  '--failover-hold-down-seconds',
  '5',
  '--stream-ping-interval-seconds',
  '1',
  '--stream-ping-timeout-seconds',
  '1',
];

const bed = await Testbed.create(
  {
    controller: true,
    underlays: ['n3-wan', 'psn-wan'],
    boxes: [
      { name: 'gp', underlays: ['n3-wan'], lans: [{ lan: 'gp-lan', address: '10.30.1.1/24' }] },
      { name: 'civic', underlays: ['psn-wan'], lans: [{ lan: 'civic-lan', address: '10.50.1.1/24' }] },
      { name: 'hub-a', underlays: ['n3-wan', 'psn-wan'], lans: [{ lan: 'hub-a-lan', address: '10.40.1.1/24' }] },
      { name: 'hub-b', underlays: ['n3-wan', 'psn-wan'], lans: [{ lan: 'hub-b-lan', address: '10.41.1.1/24' }] },
    ],
    hosts: [
      { name: 'gp-ws', lan: 'gp-lan', address: '10.30.1.10/24' },
      { name: 'civic-srv', lan: 'civic-lan', address: '10.50.1.20/24' },
      { name: 'hub-a-ws', lan: 'hub-a-lan', address: '10.40.1.10/24' },
    ],
  },
  { t },
);

const fleet = await Fleet.start(bed, {
  agents: [{ box: 'gp' }, { box: 'civic' }, { box: 'hub-a', relay: true }, { box: 'hub-b', relay: true }],
  policyText: POLICY,
  timeoutMs: 120_000,
  controllerArgs: CONTROLLER_ARGS,
  agentArgs: ['--report-interval-seconds', '1'],
});
const https = await bed.listen('civic-srv', 'tcp', 443);
t.teardown(() => https.close());

const underlayAddress = (box: string, underlay: string): string =>
  bed.box(box).underlays.find((u) => u.underlay === underlay)!.address;
const civicKey = async (): Promise<string> => (await fleet.showAgent('civic')).publicKey;
/** The endpoint gp's WireGuard has for civic: a relay's N3 address and port. */
async function gpEndpointForCivic(): Promise<string> {
  const key = await civicKey();
  return (await fleet.wgPeers('gp')).find((p) => p.publicKey === key)?.endpoint ?? '';
}

t.test('the two underlays have no link between them', async (t) => {
  const r = await bed.ping('gp', underlayAddress('civic', 'psn-wan'), { count: 1, timeoutMs: 1000 });
  t.equal(r.received, 0, 'gp cannot reach civic on the PSN');
  t.equal(
    (await bed.ping('gp', underlayAddress('hub-a', 'n3-wan'), { count: 1, timeoutMs: 1000 })).received,
    1,
    'gp reaches the hub on N3',
  );
});

t.test('a permitted flow crosses the gap through a relay; a denied one stays shut', async (t) => {
  const endpoint = await pollUntil(
    'gp to have a relay endpoint for civic',
    async () => (await gpEndpointForCivic()) || undefined,
    { timeoutMs: 30_000 },
  );
  const relayN3 = [underlayAddress('hub-a', 'n3-wan'), underlayAddress('hub-b', 'n3-wan')];
  t.ok(
    relayN3.some((a) => endpoint.startsWith(`${a}:`)),
    `gp sends civic's datagrams to a relay (${endpoint})`,
  );
  t.not(
    endpoint,
    `${underlayAddress('civic', 'psn-wan')}:${WG_LISTEN_PORT}`,
    'not to civic itself (unreachable from N3)',
  );
  const open = await pollUntil(
    'gp-ws -> civic-srv:443 to open',
    async () => (await bed.tcpProbe('gp-ws', '10.50.1.20', 443, { timeoutMs: 1000 })) === 'open',
    { timeoutMs: 30_000 },
  );
  t.ok(open, 'tcp/443 permitted: open through the relay');
  t.not(await bed.tcpProbe('gp-ws', '10.50.1.20', 22, { timeoutMs: 1000 }), 'open', 'tcp/22 not permitted: shut');
  t.not(
    await bed.tcpProbe('civic-srv', '10.30.1.10', 443, { timeoutMs: 1000 }),
    'open',
    'the reverse direction is not permitted',
  );
});

t.test('crosslink trace: the live answer names the rule, both serving boxes and the relay', async (t) => {
  const r = await fleet.cli(['trace', '--from', '10.30.1.10', '--to', '10.50.1.20', '--port', '443', '--json']);
  t.equal(r.code, 0, `passes: exit 0 (${r.stderr})`);
  const v = JSON.parse(r.stdout) as {
    outcome: string;
    rule: string;
    path: { kind: string; from: string; to: string; relay: string; standbyRelays: string[]; endpoint: string };
    from: { servedBy: string; zone: string };
    to: { servedBy: string; zone: string };
  };
  t.match(v, {
    outcome: 'passes',
    rule: 'gp-to-civic',
    from: { servedBy: 'gp', zone: 'n3' },
    to: { servedBy: 'civic', zone: 'psn' },
    path: { kind: 'relay', from: 'gp', to: 'civic' },
  });
  const endpoint = await gpEndpointForCivic();
  t.equal(v.path.endpoint, endpoint, "the first hop is the endpoint in gp's WireGuard config");
  const inUse = endpoint.startsWith(`${underlayAddress('hub-a', 'n3-wan')}:`) ? 'hub-a' : 'hub-b';
  t.equal(v.path.relay, inUse, 'the relay in use is the one that endpoint belongs to');
  t.same(v.path.standbyRelays, [inUse === 'hub-a' ? 'hub-b' : 'hub-a'], 'the other hub stands by');
  const text = await fleet.cli(['trace', '--from', '10.30.1.10', '--to', '10.50.1.20', '--port', '443']);
  t.match(
    text.stdout,
    new RegExp(
      `\\n {2}path: gp -> ${inUse} -> civic \\(relay, first hop ${endpoint.replace(/[.[\]]/g, '\\$&')}; standby relay hub-[ab]\\)\\n`,
    ),
  );
  const denied = await fleet.cli(['trace', '--from', '10.30.1.10', '--to', '10.50.1.20', '--port', '22']);
  t.equal(denied.code, 1, 'denied: exit 1');
  t.match(
    denied.stdout,
    /^denied: no rule allows tcp\/22 from 10\.30\.1\.10 \(gp-lan\) to 10\.50\.1\.20 \(civic-lan\); rule "gp-to-civic" allows only tcp\/443, tcp\/5001/,
  );
  t.match(denied.stdout, /\n {2}from 10\.30\.1\.10: subnet gp-lan \(zone n3\), served by gp\n/);
});

t.test('the relay sees only ciphertext: nothing of the pair on its WireGuard interface, no peer entry', async (t) => {
  const endpoint = await gpEndpointForCivic();
  const relay = endpoint.startsWith(`${underlayAddress('hub-a', 'n3-wan')}:`) ? 'hub-a' : 'hub-b';
  const box = bed.box(relay);
  const dump = bed.spawn(box, ['tcpdump', '-l', '-n', '-i', box.wgInterface, 'host 10.30.1.10 or host 10.50.1.20']);
  await dump.waitForOutput(/listening on/, 10_000);
  let opened = 0;
  for (let i = 0; i < 5; i++)
    if ((await bed.tcpProbe('gp-ws', '10.50.1.20', 443, { timeoutMs: 1000 })) === 'open') opened += 1;
  t.equal(opened, 5, 'the flow works meanwhile');
  // Control: hub-a's own flow to gp (hub-to-gp) does cross its WireGuard interface, so the capture works.
  if (relay === 'hub-a') await bed.tcpProbe('hub-a-ws', '10.30.1.10', 8080, { timeoutMs: 1000 });
  await new Promise((r) => setTimeout(r, 300));
  await bed.kill(dump.pid, { signal: 'SIGINT' });
  const lines = dump.output().split('\n');
  t.same(
    lines.filter((l) => l.includes('10.50.1.20')),
    [],
    `tcpdump on ${relay}'s ${box.wgInterface} saw none of the pair's packets`,
  );
  if (relay === 'hub-a')
    t.ok(
      lines.some((l) => l.includes('10.40.1.10 >') || l.includes('> 10.40.1.10')),
      "and it did see hub-a's own flow (the capture works)",
    );
  const keys = (await fleet.wgPeers(relay)).map((p) => p.publicKey);
  t.notOk(keys.includes(await civicKey()), `${relay} has no WireGuard peer for civic`);
});

t.test('a full-size TCP transfer passes through the relay (no extra encapsulation)', async (t) => {
  const size = 1 << 20;
  const sink = bed.spawn('civic-srv', [
    pythonPath(),
    '-u',
    '-c',
    `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 5001)); s.listen(1); print('ready', flush=True)
c, _ = s.accept(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
print('got', n, flush=True)
`,
  ]);
  await sink.waitForOutput(/ready/, 10_000);
  const send = await bed.exec(
    'gp-ws',
    [
      pythonPath(),
      '-c',
      `
import socket
c = socket.create_connection(('10.50.1.20', 5001), timeout=10); c.sendall(b'x' * ${size}); c.close()
`,
    ],
    { check: false, timeoutMs: 30_000 },
  );
  t.equal(send.code, 0, `sender finished: ${send.stderr.trim()}`);
  await sink.waitForOutput(/got \d+/, 15_000);
  t.match(sink.output(), new RegExp(`got ${size}\\b`), '1 MiB arrived whole');
});

t.test('per-rule counters: the rule counts at both ends, the relay counts none, rules stats sums', async (t) => {
  type Stats = {
    rules: Array<{
      rule: string;
      connections: number;
      bytes: number;
      byDirection: { inbound: { connections: number; bytes: number } };
      boxes: Array<{ agent: string; direction: string; connections: number }>;
    }>;
    zoneDrops: Array<{
      direction: string;
      sourceZone: string;
      destinationZone: string;
      packets: number;
      agents: string[];
    }>;
  };
  // Before this: tcp/443 probes and the 1 MiB transfer gp-ws -> civic-srv (tcp/5001), both gp-to-civic.
  const row = await pollUntil(
    "the 1 MiB transfer to show in both ends' reported counters",
    async () => {
      const r = await fleet.cli(['rules', 'stats', '--json']);
      if (r.code !== 0) throw new Error(`rules stats exited ${r.code}: ${r.stderr}`);
      const v = (JSON.parse(r.stdout) as Stats).rules.find((x) => x.rule === 'gp-to-civic');
      return v && v.bytes >= 1 << 20 && v.byDirection.inbound.bytes >= 1 << 20 ? v : undefined;
    },
    { timeoutMs: 15_000 },
  );
  t.ok(row.connections >= 2, `gp admitted the flows outbound (${row.connections} connections)`);
  // Not exactly equal: a SYN gp admitted while the path was still coming up never reached civic
  // (seen: a lasting difference of one), and the probes keep opening connections between the two
  // ends' reports, sent at different moments.
  const received = row.byDirection.inbound.connections;
  t.ok(
    received >= 2 && Math.abs(row.connections - received) <= 3,
    `civic admitted the same flows inbound (${received} of gp's ${row.connections}, within 3)`,
  );
  t.ok(row.bytes < 1.25 * (1 << 20) + 100_000, `the transfer counted once, with headers (${row.bytes} bytes)`);
  t.same(
    [...new Set(row.boxes.map((b) => `${b.agent}/${b.direction}`))].sort(),
    ['civic/inbound', 'gp/outbound'],
    'only the two ends count the rule: the relay forwards ciphertext no rule of its own admits',
  );
  const denied = await fleet.cli(['rules', 'stats', '--agent', 'hub-a']);
  t.equal(denied.code, 0);
  t.notMatch(denied.stdout, /gp-to-civic/, "the relay's own view has no gp-to-civic counters");
  // The refused attempts of the first test, per zone pair: gp-ws -> civic-srv:22 at gp (n3 -> psn),
  // civic-srv -> gp-ws:443 at civic (psn -> n3), each where it tried to enter the overlay.
  const drops = await pollUntil(
    'the refused attempts to show per zone pair',
    async () => {
      const r = await fleet.cli(['rules', 'stats', '--json']);
      const z = (JSON.parse(r.stdout) as Stats).zoneDrops;
      const at = (src: string, dst: string) =>
        z.find((x) => x.direction === 'outbound' && x.sourceZone === src && x.destinationZone === dst);
      return at('n3', 'psn') && at('psn', 'n3') ? z : undefined;
    },
    { timeoutMs: 15_000 },
  );
  t.match(
    drops.find((x) => x.sourceZone === 'n3' && x.destinationZone === 'psn' && x.direction === 'outbound'),
    { agents: ['gp'] },
    'n3 -> psn refused at gp',
  );
  t.match(
    drops.find((x) => x.sourceZone === 'psn' && x.destinationZone === 'n3' && x.direction === 'outbound'),
    { agents: ['civic'] },
    'psn -> n3 refused at civic',
  );
  const text = await fleet.cli(['rules', 'stats']);
  t.match(text.stdout, /Refused \(dropped\) per zone pair:\n.*FROM ZONE/, 'the table names the refused pairs');
});

// After the per-rule counters test: the live test's flow enters civic from gp's own address (gp's
// output path, which no outbound rule judges), so it counts inbound at civic only.
t.test('crosslink trace --live: each box on the path says what it did with a test flow', async (t) => {
  type Live = {
    live: {
      ran: boolean;
      boxes: Array<{
        agent: string;
        role: string;
        verdict: string;
        rule: string | null;
        direction: string | null;
        packets: number;
        replyPackets: number;
        detail: string;
      }>;
    };
  };
  const relay = (await gpEndpointForCivic()).startsWith(`${underlayAddress('hub-a', 'n3-wan')}:`) ? 'hub-a' : 'hub-b';
  const startedMs = Date.now();
  const ok = await fleet.cli([
    'trace',
    '--from',
    '10.30.1.10',
    '--to',
    '10.50.1.20',
    '--port',
    '443',
    '--live',
    '--json',
  ]);
  const tookMs = Date.now() - startedMs;
  t.equal(ok.code, 0, `permitted: exit 0 (${ok.stderr})`);
  const v = (JSON.parse(ok.stdout) as Live).live;
  t.equal(v.ran, true);
  t.same(
    v.boxes.map((b) => `${b.agent}/${b.role}`),
    ['gp/source', `${relay}/relay`, 'civic/destination'],
    'the boxes in path order, the relay in use between them',
  );
  const [src, hop, dst] = v.boxes;
  t.match(
    src,
    { verdict: 'sent', detail: /^from 10\.30\.1\.\d+ port \d+: answered in / },
    'gp sent it and got an answer',
  );
  t.ok(
    src!.packets >= 1 && src!.replyPackets >= 1,
    `gp counted the test packets and replies (${src!.packets}/${src!.replyPackets})`,
  );
  t.match(
    hop,
    { verdict: 'forwarded', detail: /encrypted datagrams gp -> civic/ },
    "the relay forwarded the pair's datagrams",
  );
  t.ok(hop!.packets >= 1 && hop!.replyPackets >= 1, `both ways (${hop!.packets}/${hop!.replyPackets})`);
  t.match(dst, { verdict: 'admitted', rule: 'gp-to-civic', direction: 'inbound' }, 'civic admitted it by the rule');
  t.ok(
    dst!.packets >= 1 && dst!.replyPackets >= 1,
    `civic counted it and the server's replies (${dst!.packets}/${dst!.replyPackets})`,
  );
  t.ok(tookMs < 8000, `answered in ${tookMs} ms`);
  t.comment(`live trace answered in ${tookMs} ms`);

  const text = await fleet.cli(['trace', '--from', '10.30.1.10', '--to', '10.50.1.20', '--port', '443', '--live']);
  t.match(text.stdout, /\nlive test \(2000 ms window\):\n {2}box +role +saw/, 'the table follows the usual output');
  t.match(text.stdout, /\n {2}civic +destination +admitted by rule gp-to-civic /);

  const denied = await fleet.cli([
    'trace',
    '--from',
    '10.30.1.10',
    '--to',
    '10.50.1.20',
    '--port',
    '22',
    '--live',
    '--json',
  ]);
  t.equal(denied.code, 1, 'denied: exit 1');
  const d = (JSON.parse(denied.stdout) as Live).live.boxes;
  t.match(d[0], { agent: 'gp', verdict: 'sent', detail: /timeout/ }, 'gp sent it; nothing answered');
  t.match(
    d[2],
    {
      agent: 'civic',
      verdict: 'dropped',
      direction: 'inbound',
      detail: /chain from_overlay: no rule allows it \(inbound; counter dropped_inbound\)/,
    },
    'civic dropped it in its inbound chain: no rule',
  );
  t.equal(d[2]!.replyPackets, 0, 'and nothing came back');

  // Every temporary table is gone from every box.
  for (const box of ['gp', 'civic', 'hub-a', 'hub-b']) {
    const tables = (await bed.exec(box, ['nft', 'list', 'tables'])).stdout;
    t.notMatch(tables, /crosslink_trace_/, `${box} keeps no trace table`);
  }

  // An auditor may read a trace but not send a live one.
  const auditor = await fleet.cli(['token', 'create', '--name', 'live-auditor', '--role', 'auditor', '--json']);
  const token = (JSON.parse(auditor.stdout) as { token: string }).token;
  const refused = await fleet.cli([
    'trace',
    '--from',
    '10.30.1.10',
    '--to',
    '10.50.1.20',
    '--port',
    '443',
    '--live',
    '--token',
    token,
  ]);
  t.not(refused.code, 0, 'refused');
  t.match(refused.stderr, /an auditor token may not send a live test flow/);
});

t.test('the relay dies: the pair moves to the other relay', async (t) => {
  const before = await gpEndpointForCivic();
  const dead = before.startsWith(`${underlayAddress('hub-a', 'n3-wan')}:`) ? 'hub-a' : 'hub-b';
  const other = dead === 'hub-a' ? 'hub-b' : 'hub-a';
  const killedAtMs = Date.now();
  await Promise.all([fleet.stopAgent(dead, { signal: 'SIGKILL' }), bed.setUnderlayLinkUp(dead, false)]);
  // When gp's WireGuard got the other relay as civic's endpoint: the controller's part of the gap.
  let movedAtMs: number | null = null;
  const watchMove = pollUntil(
    'gp to get a new endpoint for civic',
    async () => {
      if ((await gpEndpointForCivic()) !== before) movedAtMs = Date.now();
      return movedAtMs ?? undefined;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  ).catch(() => null);
  const backAtMs = await pollUntil(
    'gp-ws -> civic-srv:443 to open again',
    async () => {
      return (await bed.tcpProbe('gp-ws', '10.50.1.20', 443, { timeoutMs: 300 })) === 'open' ? Date.now() : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
  await watchMove;
  const gapMs = backAtMs - killedAtMs;
  t.comment(
    `relay ${dead} killed: gp was told to send through ${other} after ${movedAtMs === null ? '?' : movedAtMs - killedAtMs} ms; the flow was back after ${gapMs} ms`,
  );
  t.ok(
    (await gpEndpointForCivic()).startsWith(`${underlayAddress(other, 'n3-wan')}:`),
    `gp now sends through ${other}`,
  );
  t.ok(gapMs <= 10_000, `moved within 10 s (${gapMs} ms)`);
});

// As the other fleet tests: stop the agents, the controller and the fleet's API forwarder before the
// testbed goes, rather than letting the testbed's teardown kill the controller under an open forwarder.
t.test('stop', async () => {
  await fleet.stop();
});
