// `make demo`: the Leeds example for real, in network namespaces on this machine. Two underlay
// networks with no route between them (n3-wan for N3/HSCN, psn-wan for the PSN), a controller host
// on both, seven edge boxes (agents enrolled with join tokens): N3 boxes on n3-wan only, council boxes
// on psn-wan only, the shared building's hub on both, relaying. examples/leeds.yaml applied through
// the API, then a table of flows: what `policy whatif` says beside what a real connection does, and
// the path each took (direct, or relayed through the hub). Everything is left running to explore;
// `make demo-down` removes it (by namespace prefix and PID).
//
//   node --import ./bench/register.js test/demo/leeds-demo.ts [up|down]
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { runPolicyWhatif } from '../../cli/commands/policy-local.js';
import { DEFAULT_MIN_PREFIX_LENGTH } from '../../controller/policy/index.js';
import { Fleet, STATUS_LISTEN, pollUntil, repoRoot } from '../e2e/fleet.js';
import { LEEDS_AGENTS, leedsPolicyFile, leedsTopology } from '../e2e/leeds-topology.js';
import { Testbed, namespacesWithPrefix } from '../testbed/testbed.js';
import { ECHO_SERVER, pythonPath } from '../testbed/traffic.js';

export const DEMO_PREFIX = 'xldemo';

interface Flow {
  what: string;
  from: string;
  to: string;
  proto: 'tcp' | 'udp';
  port: number;
}

// Hosts and addresses as in the header of examples/leeds.yaml.
const FLOWS: Flow[] = [
  {
    what: 'social-care workstation -> care record (HTTPS)',
    from: 'social-care-ws',
    to: '10.20.1.10',
    proto: 'tcp',
    port: 443,
  },
  {
    what: 'social-care workstation -> care record over IPv6',
    from: 'social-care-ws',
    to: 'fd00:20:1::10',
    proto: 'tcp',
    port: 443,
  },
  { what: 'GP Chapeltown -> care record (HTTPS)', from: 'gp-chapeltown-ws', to: '10.20.1.10', proto: 'tcp', port: 443 },
  {
    what: 'hub council officer -> hub NHS printer (same box)',
    from: 'hub-council-ws',
    to: '10.40.1.50',
    proto: 'tcp',
    port: 9100,
  },
  { what: 'HL7 engine -> GP Armley clinical system', from: 'hl7-engine', to: '10.31.1.10', proto: 'tcp', port: 2575 },
  { what: 'hub NHS workstation -> trust DNS', from: 'hub-nhs-ws', to: '10.20.2.5', proto: 'udp', port: 53 },
  {
    what: 'social-care workstation -> care record SSH',
    from: 'social-care-ws',
    to: '10.20.1.10',
    proto: 'tcp',
    port: 22,
  },
  {
    what: 'GP Chapeltown -> Civic Hall case management',
    from: 'gp-chapeltown-ws',
    to: '10.50.1.20',
    proto: 'tcp',
    port: 443,
  },
  { what: 'Civic Hall server -> care record', from: 'civic-hall-server', to: '10.20.1.10', proto: 'tcp', port: 443 },
  {
    what: 'GP Armley -> HL7 engine (rules are one-way)',
    from: 'gp-armley-system',
    to: '10.20.1.20',
    proto: 'tcp',
    port: 2575,
  },
];

// Echo servers, so that every "forbidden" result is the overlay's doing, not a closed port.
const SERVERS: { host: string; proto: 'tcp' | 'udp'; port: number }[] = [
  { host: 'care-record', proto: 'tcp', port: 443 },
  { host: 'care-record', proto: 'tcp', port: 22 },
  { host: 'hl7-engine', proto: 'tcp', port: 2575 },
  { host: 'gp-armley-system', proto: 'tcp', port: 2575 },
  { host: 'hub-printer', proto: 'tcp', port: 9100 },
  { host: 'civic-hall-server', proto: 'tcp', port: 443 },
  { host: 'dns-resolver', proto: 'udp', port: 53 },
];

const out = (s = ''): void => {
  process.stdout.write(`${s}\n`);
};

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** `policy whatif`, the same code as the CLI command, answering in JSON. */
function whatif(
  policyFile: string,
  from: string,
  to: string,
  proto: 'tcp' | 'udp',
  port: number,
): { decision: string; rule: string | null } {
  let text = '';
  let err = '';
  const code = runPolicyWhatif(
    { file: policyFile, from, to, proto, port, json: true, minPrefixLength: DEFAULT_MIN_PREFIX_LENGTH },
    {
      readFile: (p) => readFileSync(p, 'utf8'),
      out: (s) => {
        text += s;
      },
      err: (s) => {
        err += s;
      },
    },
  );
  if (code !== 0) return { decision: `error: ${err.trim()}`, rule: null };
  const j = JSON.parse(text) as { decision: string; rule: string | null };
  return { decision: j.decision, rule: j.rule };
}

async function down(): Promise<void> {
  const removed = await Testbed.destroyByPrefix(DEMO_PREFIX);
  out(
    removed.length > 0
      ? `demo removed: ${removed.length} namespaces (${DEMO_PREFIX}-*) and their processes`
      : 'no demo running',
  );
}

async function up(): Promise<void> {
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  const root = repoRoot();
  const policyFile = leedsPolicyFile();
  const policyRel = relative(root, policyFile);

  if (namespacesWithPrefix(DEMO_PREFIX).length > 0) {
    out(`removing the previous demo (${DEMO_PREFIX}-*) first`);
    await Testbed.destroyByPrefix(DEMO_PREFIX);
  }
  out(
    'building the Leeds topology: two underlay networks with no route between them (n3-wan: N3/HSCN, psn-wan: the PSN),',
  );
  out(
    '  a controller host on both, 7 edge boxes (N3 boxes on n3-wan only, council boxes on psn-wan only, the shared hub on both),',
  );
  out('  9 LANs, 10 hosts (network namespaces)');
  const desc = leedsTopology(DEMO_PREFIX);
  const bed = await Testbed.create(desc);
  try {
    // Detached echo servers (they stay for exploring), each logging the sources it sees; up before
    // the policy, so the agents' path probes find them.
    await Promise.all(
      SERVERS.map(async (s) => {
        const log = join(bed.workDir, `server-${s.host}-${s.proto}${s.port}.log`);
        bed.spawn(s.host, [pythonPath(), '-u', '-c', ECHO_SERVER, s.proto, String(s.port), ''], {
          isDetached: true,
          logFile: log,
        });
        await pollUntil(
          `echo server ${s.host} ${s.proto}/${s.port}`,
          () => readFileSync(log, 'utf8').includes('ready'),
          { timeoutMs: 10_000, intervalMs: 50 },
        );
      }),
    );

    out(`starting the controller and 7 agents; each agent enrolls with its own join token  [${elapsed()}]`);
    const fleet = await Fleet.start(bed, { agents: LEEDS_AGENTS, isDetached: true });
    for (const name of fleet.agentNames) {
      await pollUntil(`${name} to enroll`, async () => (await fleet.listAgents()).some((a) => a.name === name), {
        timeoutMs: 90_000,
        intervalMs: 200,
      });
    }
    out(`all 7 agents enrolled  [${elapsed()}]`);
    out();
    out(`$ crosslink policy apply -f ${policyRel}`);
    const applied = await fleet.cli(['policy', 'apply', '-f', policyFile, '-m', 'make demo']);
    process.stdout.write(indent(applied.stdout));
    if (applied.code !== 0) throw new Error(`policy apply failed (exit ${applied.code}): ${applied.stderr}`);
    await fleet.waitConverged({ timeoutMs: 90_000 });
    out(`every agent runs the policy  [${elapsed()}]`);
    // The table below compares the policy with the settled overlay: a relayed pair's first
    // handshake can take a WireGuard retry (5 s), and in a subnet's first seconds a sender may still
    // be choosing between its primary and standby box (a run once sent the first connection to the
    // standby, which refused it). Wait until the controller judges the whole fleet ok: every agent,
    // every link, and every rule's path probe, which crosses the same boxes as the table's flows.
    type Fleet = {
      state: string;
      links: Array<{ name: string; state: string }>;
      probes: Array<{ id: string; state: string }>;
    };
    const notOk = async () => {
      const h = (await fleet.api<Fleet>('GET', '/v1/health')).body;
      return h.state === 'ok'
        ? []
        : [...h.links, ...h.probes.map((p) => ({ name: p.id, state: p.state }))]
            .filter((x) => x.state !== 'ok')
            .map((x) => `${x.name} ${x.state}`);
    };
    const isSettled = await pollUntil('the fleet ok', async () => (await notOk()).length === 0, {
      timeoutMs: 60_000,
      intervalMs: 500,
    }).then(
      () => true,
      () => false,
    );
    out(
      isSettled
        ? `health ok: every agent, every link (relayed pairs included) and every path probe  [${elapsed()}]`
        : `health not ok after 60 s: ${(await notOk()).join(', ') || 'see crosslink status below'} (the table below shows what that means)`,
    );
    out();

    out('$ crosslink agents list');
    process.stdout.write(indent((await fleet.cli(['agents', 'list'])).stdout));
    out();

    // The premise: nothing routes between the two networks.
    const civic = bed.box('lcc-civic-hall').underlays[0]!;
    const gap = await bed.ping('gp-chapeltown', civic.address, { count: 1, timeoutMs: 1000 });
    out(
      `no link between the networks: gp-chapeltown (n3-wan) -> lcc-civic-hall's underlay address ${civic.address} (psn-wan): ${gap.received === 0 ? 'unreachable' : 'REACHABLE (the testbed is wrong)'}`,
    );
    out();

    out('flows: what the policy says (policy whatif) beside a real connection attempt between the hosts');
    const source = (f: Flow) => (f.to.includes(':') ? (bed.host(f.from).address6 ?? '') : bed.host(f.from).address);
    const results = await Promise.all(
      FLOWS.map(async (f) => {
        const w = whatif(policyFile, source(f), f.to, f.proto, f.port);
        const real =
          f.proto === 'tcp'
            ? await bed.tcpProbe(f.from, f.to, f.port, { timeoutMs: 3000 })
            : await bed.udpProbe(f.from, f.to, f.port, { timeoutMs: 3000 });
        const isOpen = real === 'open' || real === 'reply';
        const isAgreed = (w.decision === 'allow') === isOpen;
        return { f, w, real, isOpen, isAgreed };
      }),
    );
    const relayed = new Map<string, string>();
    for (const a of await fleet.listAgents()) for (const pair of a.relayedPairs ?? []) relayed.set(pair, a.name);
    const path = (f: Flow): string => {
      const boxOf = (lan: string) => bed.boxes.find((b) => b.lans.some((l) => l.lan === lan))!;
      const from = boxOf(bed.host(f.from).lan);
      const toHost = bed.hosts.find((h) => h.address === f.to || h.address6 === f.to)!;
      const to = boxOf(toHost.lan);
      if (from.name === to.name) return `inside ${from.name}`;
      const [a, b] = [from.name, to.name].sort();
      const relay = relayed.get(`${a} <-> ${b}`);
      if (relay) return `relayed via ${relay}`;
      const shared = from.underlays.find((u) => to.underlays.some((v) => v.underlay === u.underlay));
      return shared ? `direct over ${shared.underlay}` : 'no path';
    };
    out(
      table(
        ['FLOW', 'FROM -> TO', 'PORT', 'WHATIF', 'RULE', 'REAL RESULT', 'PATH', ''],
        results.map(({ f, w, real, isOpen, isAgreed }) => [
          f.what,
          `${source(f)} -> ${f.to}`,
          `${f.proto}/${f.port}`,
          w.decision,
          w.rule ?? '(default deny)',
          isOpen ? (f.proto === 'tcp' ? 'connected' : 'answered') : real === 'timeout' ? 'dropped (no answer)' : real,
          path(f),
          isAgreed ? 'ok' : 'MISMATCH',
        ]),
      ),
    );
    const relayedOpen = results.filter((r) => r.isOpen && path(r.f).startsWith('relayed'));
    out(
      `${relayedOpen.length} permitted flow(s) crossed from one network to the other through the relay; it forwarded their encrypted datagrams and could read none of them`,
    );
    const mismatches = results.filter((r) => !r.isAgreed).length;
    out(
      mismatches === 0
        ? 'every real result matches the policy'
        : `${mismatches} flow(s) do not match the policy: see the logs in ${bed.workDir}`,
    );
    out();

    // Health: the agents' path probes run every few seconds; give them a moment to report.
    await pollUntil(
      'overall health ok',
      async () => (await fleet.api<{ state: string }>('GET', '/v1/health')).body.state === 'ok',
      { timeoutMs: 20_000, intervalMs: 500 },
    ).catch(() => undefined);
    const status = await fleet.cli(['status']);
    if (status.stdout.trim() && status.code !== 2 && status.code !== 3) {
      out('$ crosslink status');
      process.stdout.write(indent(status.stdout));
      out();
    }

    // Per-rule counters: the flows above, as the boxes report them (every few seconds).
    await pollUntil(
      'a rule to show connections',
      async () =>
        (await fleet.api<{ rules: Array<{ connections: number }> }>('GET', '/v1/rules/stats')).body.rules.some(
          (r) => r.connections > 0,
        ),
      { timeoutMs: 40_000, intervalMs: 1000 },
    ).catch(() => undefined);
    const stats = await fleet.cli(['rules', 'stats']);
    if (stats.code === 0) {
      out('$ crosslink rules stats                # what each rule let through, summed over the boxes');
      process.stdout.write(indent(stats.stdout));
      out();
    }

    // Leave it running.
    await fleet.closeForwarder();
    const envFile = join(bed.workDir, 'env');
    writeFileSync(
      envFile,
      Object.entries(fleet.cliEnv)
        .map(([k, v]) => `export ${k}=${v}\n`)
        .join(''),
      { mode: 0o600 },
    );
    bed.release();
    const cli = `node ${join(root, 'dist/cli/main.js')}`;
    out(`the demo is running (${elapsed()}). To explore it:`);
    out(
      `  ip netns exec ${DEMO_PREFIX}-social-care-ws bash          # a shell on the social-care workstation (10.60.1.10)`,
    );
    out('      nc -vz -w 2 10.20.1.10 443     # allowed        nc -vz -w 2 10.20.1.10 22     # dropped');
    out(
      `  ip netns exec ${DEMO_PREFIX}-nhs-shared-hub bash          # an edge box: wg show; nft list ruleset; ip route`,
    );
    out(`  ip netns exec ${DEMO_PREFIX}-controller bash              # the controller host, then:`);
    out(`      source ${envFile}                # CROSSLINK_CONTROLLER, CROSSLINK_TOKEN, CROSSLINK_CA_FINGERPRINT`);
    out(`      ${cli} agents list`);
    out(`      cp ${policyRel} /tmp/my-leeds.yaml; edit it; ${cli} policy apply -f /tmp/my-leeds.yaml`);
    out(`      watch -n1 ${cli} agents list    # watch GENERATION reach the new version on every box`);
    out(
      `      ${cli} trace --from 10.60.1.10 --to 10.20.1.10 --port 443   # the live path: rule, serving boxes, relay`,
    );
    out(`      ${cli} rules stats --agent lth-sjuh   # per-rule connections, packets and bytes on one box`);
    out(`  ${cli} policy whatif -f ${policyRel} --from 10.60.1.10 --to 10.20.1.10 --port 22`);
    out(
      `  flow log of a box: ip netns exec ${DEMO_PREFIX}-lth-sjuh ${cli} agent flows --state-dir ${join(bed.workDir, 'agent-lth-sjuh')} --follow`,
    );
    out(
      `  agent status on a box: ip netns exec ${DEMO_PREFIX}-lth-sjuh ${cli} agent status --status-listen ${STATUS_LISTEN}`,
    );
    out(
      '  make demo-web                      # the web view (map, health, policy, audit) on https://127.0.0.1:8443/ui/',
    );
    out(`  logs: ${bed.workDir}/*.log`);
    out('  make demo-down                     # removes every namespace and process of the demo');
    if (mismatches > 0) process.exitCode = 1;
  } catch (e) {
    out(`demo failed: ${(e as Error).message}`);
    const keep = `/tmp/crosslink-demo-logs-${Date.now()}`;
    cpSync(bed.workDir, keep, {
      recursive: true,
      filter: (src) =>
        (!src.endsWith('.sock') && !/\/(controller|agent-[^/]+)\//.test(`${src}/`)) || src.endsWith('.log'),
    });
    out(`logs copied to ${keep}; removing the demo`);
    await bed.destroy();
    process.exitCode = 1;
  }
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n');
}

if (process.getuid?.() !== 0) {
  process.stderr.write('make demo: run as root (network namespaces need it), e.g. sudo make demo\n');
  process.exit(1);
}
const missing = Testbed.requirements();
if (missing.length > 0) {
  process.stderr.write(`make demo: missing ${missing.join('; ')}. Run scripts/setup.sh as root.\n`);
  process.exit(1);
}
await (process.argv[2] === 'down' ? down() : up());
