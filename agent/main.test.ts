import t from 'tap';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { formatJoinToken } from '../lib/join-token.js';
import { CrosslinkError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import { EnrollResponseSchema, type AgentConfig } from '../proto/gen/crosslink/v1/agent_pb.js';
import type { ConfigStreamEvents, ControlClient, EnrollInput } from './control/client.js';
import { agentDown, defaultAgentName, startAgent, type AgentDeps, type AgentRunOptions } from './main.js';
import { FakeHost } from './host/fake-host.js';
import { NAMED, config, stubRenderFirewall } from './reconcile/reconcile.fixture.js';
import { StateDir } from './state.js';

const TOKEN = formatJoinToken({
  controllerUrls: ['https://ctl.example:8443'],
  caFingerprint: 'ab'.repeat(32),
  secret: 'S'.repeat(24),
});

class FakeControl implements ControlClient {
  enrolls: Array<{ secret: string; input: EnrollInput }> = [];
  reports: Array<Parameters<ControlClient['report']>[0]> = [];
  events: ConfigStreamEvents | null = null;
  hello: Parameters<ControlClient['watch']>[1] | null = null;
  stopped = false;
  enrollError: Error | null = null;
  constructor(private readonly onWatch: () => void = () => undefined) {}
  async enroll(secret: string, input: EnrollInput) {
    this.enrolls.push({ secret, input });
    if (this.enrollError) throw this.enrollError;
    return create(EnrollResponseSchema, {
      agentId: 'agent-7',
      credential: 'cred-secret',
      overlayAddress: '100.64.0.7/10',
      protocolVersion: 1,
    });
  }
  watch(events: ConfigStreamEvents, hello: Parameters<ControlClient['watch']>[1]) {
    this.onWatch();
    this.events = events;
    this.hello = hello;
    return {
      stop: async () => {
        this.stopped = true;
      },
    };
  }
  async report(r: Parameters<ControlClient['report']>[0]) {
    this.reports.push(r);
  }
}

function harness(host = new FakeHost(), control = new FakeControl()) {
  const dir = join(mkdtempSync(join(tmpdir(), 'xl-agent-')), 'state');
  const factoryCalls: Array<{ controllerUrls: readonly string[]; credential?: string }> = [];
  let now = 1_700_000_000_000;
  const deps: AgentDeps = {
    host,
    createControlClient: (o) => {
      factoryCalls.push({ controllerUrls: o.controllerUrls, credential: o.credential });
      return control;
    },
    renderFirewall: stubRenderFirewall,
    clock: { nowMs: () => now },
    log: silentLogger(),
    detectWireguardMode: async () => 'userspace',
  };
  const opts: AgentRunOptions = {
    stateDir: dir,
    join: TOKEN,
    name: 'leeds-gw',
    interfaceName: 'xl-test0',
    listenPort: 51820,
    endpoint: '203.0.113.7:51820',
    advertise: ['10.20.1.0/24'],
    statusListen: '127.0.0.1:0',
    wireguard: 'auto',
    mtu: 1420,
    agentVersion: '0.1.0-test',
  };
  return {
    dir,
    deps,
    opts,
    host,
    control,
    factoryCalls,
    tick: (ms: number) => {
      now += ms;
    },
  };
}

async function until(cond: () => boolean, what: string, timeoutMs = 3000) {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Makes the state dir of an agent that enrolled before and applied `cfg`. */
async function preEnrolled(dir: string, cfg: AgentConfig) {
  const s = new StateDir(dir, silentLogger());
  await s.init();
  await s.keys();
  await s.saveEnrollment({
    controllerUrl: 'https://ctl.example:8443',
    caFingerprint: 'ab'.repeat(32),
    credential: 'cred-old',
    agentId: 'agent-7',
    name: 'leeds-gw',
    overlayAddress: '100.64.0.7/10',
    protocolVersion: 1,
    enrolledAtMs: 1,
  });
  await s.saveConfig(cfg);
}

t.test('fail static: the saved config is on the box before the controller is contacted', async (t) => {
  const host = new FakeHost(); // reads the state dir's private key
  let hostAtWatch: { peers: number; table: string | null; routes: number } | null = null;
  const control = new FakeControl(() => {
    hostAtWatch = {
      peers: host.wgDevice('xl-test0')?.peers.length ?? 0,
      table: host.firewallText(),
      routes: host.ownRoutes().length,
    };
  });
  const h = harness(host, control);
  await preEnrolled(h.dir, NAMED.peersRoutesFirewall!);
  const agent = await startAgent({ ...h.opts, join: undefined }, h.deps);
  await agent.connecting;
  t.same(
    hostAtWatch,
    { peers: 2, table: agent.reconciler.desiredState!.firewall.ruleset, routes: 2 },
    'applied before watch()',
  );
  t.same(control.enrolls, [], 'no second enrollment');
  t.same(h.factoryCalls, [{ controllerUrls: ['https://ctl.example:8443'], credential: 'cred-old' }]);
  t.equal(control.hello!.knownContentHash(), 'hash-4', 'tells the controller what it already has');
  t.same(control.hello!.advertisedSubnets, ['10.20.1.0/24']);

  // The stream never comes up: status says stale since start, and the box keeps its config.
  h.tick(30_000);
  const st = await agent.status();
  t.equal(st.controller.isConnected, false);
  t.equal(st.controller.staleSince, new Date(1_700_000_000_000).toISOString());
  t.equal(st.controller.staleSeconds, 30);
  t.equal(st.generation.applied, 4);
  t.equal(st.isApplied, true);
  t.equal(st.peers.length, 2);

  // Status endpoint answers with the controller away.
  const base = `http://${agent.statusAddress!.host}:${agent.statusAddress!.port}`;
  const res = await fetch(`${base}/status`);
  t.equal(res.status, 200);
  const body = (await res.json()) as {
    name: string;
    controller: { staleSince: string };
    generation: { applied: number };
    peers: Array<{ name: string; handshakeAgeSeconds: number | null }>;
  };
  t.equal(body.name, 'leeds-gw');
  t.equal(body.generation.applied, 4);
  t.equal(body.controller.staleSince, st.controller.staleSince);
  t.same(
    body.peers.map((p) => [p.name, p.handshakeAgeSeconds]),
    [
      ['peer-1', null],
      ['peer-2', null],
    ],
  );

  host.setPeerStats('xl-test0', host.wgDevice('xl-test0')!.peers[0]!.publicKey, {
    latestHandshakeUnix: 1_700_000_000 + 30 - 12,
    rxBytes: 1234n,
  });
  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.match(metrics, /crosslink_agent_generation_applied 4/);
  t.match(metrics, /crosslink_agent_controller_connected 0/);
  t.match(metrics, /crosslink_agent_config_stale_seconds 30/);
  t.match(metrics, /crosslink_agent_peer_handshake_age_seconds\{peer="peer-(1|2)"\} 12/);
  t.match(metrics, /crosslink_agent_peer_rx_bytes_total\{peer="peer-\d"\} 1234/);
  t.match(metrics, /# TYPE crosslink_agent_peer_rx_bytes_total counter/);
  t.match(metrics, /crosslink_agent_reconcile_duration_seconds_count [1-9]/);
  t.match(metrics, /crosslink_agent_apply_errors_total\{step="config"\} 0/);
  t.notMatch(metrics, /process_cpu|nodejs_/, 'own registry, no default metrics');
  t.equal((await fetch(`${base}/nope`)).status, 404);

  // Connect, then drop: stale since the drop.
  control.events!.onState({ isConnected: true, atMs: 1_700_000_031_000 });
  t.equal((await agent.status()).controller.staleSince, null);
  control.events!.onState({ isConnected: false, reason: 'no heartbeat for 90 s', atMs: 1_700_000_040_000 });
  const st2 = await agent.status();
  t.equal(st2.controller.staleSince, new Date(1_700_000_040_000).toISOString());
  t.equal(st2.controller.reason, 'no heartbeat for 90 s');

  // SIGTERM path: stop leaves the data plane in place.
  await agent.stop();
  t.equal(control.stopped, true);
  t.equal(host.wgDevice('xl-test0')!.peers.length, 2, 'peers stay');
  t.equal(host.ownRoutes().length, 2, 'routes stay');
  t.not(host.firewallText(), null, 'firewall stays');
  await t.rejects(fetch(`${base}/status`), new TypeError('fetch failed'), 'status endpoint closed');
});

t.test('first run: keys, enrollment, config from the stream applied, saved and reported', async (t) => {
  const h = harness();
  const agent = await startAgent(h.opts, h.deps);
  await agent.connecting;
  t.equal(h.control.enrolls.length, 1);
  const { secret, input } = h.control.enrolls[0]!;
  t.equal(secret, 'S'.repeat(24));
  t.same(
    { ...input, publicKey: undefined },
    {
      name: 'leeds-gw',
      publicKey: undefined,
      endpoint: '203.0.113.7:51820',
      advertisedSubnets: ['10.20.1.0/24'],
      agentVersion: '0.1.0-test',
    },
  );
  t.equal(input.publicKey, readFileSync(join(h.dir, 'public.key'), 'utf8').trim());
  t.equal(statSync(join(h.dir, 'enrollment.json')).mode & 0o777, 0o600);
  t.same(
    h.factoryCalls.map((c) => c.credential),
    [undefined, 'cred-secret'],
    'enroll without, watch with the credential',
  );

  h.control.events!.onState({ isConnected: true, atMs: 1 });
  h.control.events!.onConfig(NAMED.masquerade!);
  await until(() => agent.reconciler.status.generationApplied === 5n, 'generation 5 applied');
  await until(() => h.control.reports.some((r) => r.generationApplied === 5n), 'report of generation 5');
  const rep = h.control.reports.find((r) => r.generationApplied === 5n)!;
  t.same(rep.applyErrors, []);
  t.equal(rep.agentVersion, '0.1.0-test');
  t.same(
    rep.peers.map((p) => p.name),
    ['peer-1'],
  );
  await until(() => {
    try {
      return statSync(join(h.dir, 'config.pb')).size > 0;
    } catch {
      return false;
    }
  }, 'config saved');
  t.equal(statSync(join(h.dir, 'config.pb')).mode & 0o777, 0o600);
  const saved = await new StateDir(h.dir, silentLogger()).loadConfig();
  t.equal(saved!.contentHash, 'hash-5');

  // An invalid config: reported as terminal, not applied; the previous one stays.
  const before = h.host.writes.length;
  h.control.events!.onConfig(config(6, { routes: ['not-a-prefix'] }));
  await until(() => h.control.reports.some((r) => r.applyErrors.some((e) => e.isTerminal)), 'terminal error reported');
  const bad = h.control.reports.find((r) => r.applyErrors.some((e) => e.isTerminal))!;
  t.equal(bad.generationSeen, 6n);
  t.equal(bad.generationApplied, 5n);
  t.match(bad.applyErrors[0], { step: 'config', isTerminal: true });
  t.equal(h.host.writes.length, before, 'nothing written for it');
  t.equal((await new StateDir(h.dir, silentLogger()).loadConfig())!.contentHash, 'hash-5', 'not saved');

  // A failing step is reported with its command, exit code and stderr.
  h.host.failAlways('firewall.replace', {
    argv: ['nft', '-f', '/run/crosslink/ruleset.nft'],
    exitCode: 1,
    stderr: 'Error: syntax error\n',
  });
  h.control.events!.onConfig(NAMED.peersRoutesFirewall!);
  await until(
    () => h.control.reports.some((r) => r.applyErrors.some((e) => e.step === 'firewall')),
    'firewall failure reported',
  );
  const failed = h.control.reports.find((r) => r.applyErrors.some((e) => e.step === 'firewall'))!;
  t.match(failed.applyErrors[0], {
    step: 'firewall',
    command: 'nft -f /run/crosslink/ruleset.nft',
    exitCode: 1,
    stderr: 'Error: syntax error\n',
    isTerminal: false,
  });
  t.equal(failed.generationApplied, 5n);
  await agent.stop();
});

t.test('not enrolled and no token: refuses to start the connection, status still serves', async (t) => {
  const h = harness();
  const agent = await startAgent({ ...h.opts, join: undefined }, h.deps);
  await t.rejects(agent.connecting, { code: 'config_invalid', message: /join token/ });
  t.equal((await agent.status()).controller.isConnected, false);
  await agent.stop();
});

t.test('the agent takes its name from the join token; a different --name is refused', async (t) => {
  const named = formatJoinToken({
    controllerUrls: ['https://ctl.example:8443'],
    caFingerprint: 'ab'.repeat(32),
    secret: 'S'.repeat(24),
    agentName: 'gp-armley',
  });
  const h = harness();
  const agent = await startAgent({ ...h.opts, name: undefined, join: named }, h.deps);
  await agent.connecting;
  t.equal(h.control.enrolls[0]!.input.name, 'gp-armley');
  await agent.stop();

  const h2 = harness();
  const agent2 = await startAgent({ ...h2.opts, name: 'other-box', join: named }, h2.deps);
  await t.rejects(agent2.connecting, {
    code: 'config_invalid',
    message: /made for agent "gp-armley", not "other-box"/,
  });
  t.equal(h2.control.enrolls.length, 0, 'nothing sent to the controller');
  await agent2.stop();
});

t.test('a refused join token is permanent; a network error is retried', async (t) => {
  const h = harness();
  h.control.enrollError = new CrosslinkError('join_token_invalid', 'token used');
  const agent = await startAgent(h.opts, h.deps);
  await t.rejects(agent.connecting, { code: 'join_token_invalid' });
  t.equal(h.control.enrolls.length, 1);
  await agent.stop();

  const h2 = harness();
  h2.control.enrollError = new Error('connect ECONNREFUSED');
  const a2 = await startAgent(h2.opts, h2.deps);
  await until(() => h2.control.enrolls.length >= 1, 'first attempt');
  h2.control.enrollError = null;
  await a2.stop();
  t.pass('stop interrupts the retry wait');
});

t.test('agent down removes the interface, routes and table', async (t) => {
  const h = harness();
  await preEnrolled(h.dir, NAMED.peersRoutesFirewall!);
  const agent = await startAgent({ ...h.opts, statusListen: '' }, h.deps);
  t.equal(agent.statusAddress, null);
  await agent.stop();
  t.equal(h.host.ownRoutes().length, 2);
  t.same(await agentDown({ interfaceName: 'xl-test0' }, { host: h.host, log: silentLogger() }), []);
  t.equal(h.host.wgInterfaces().length, 0);
  t.equal(h.host.ownRoutes().length, 0);
  t.equal(h.host.firewallText(), null);
});

t.test('default agent name from the host name', async (t) => {
  t.equal(defaultAgentName('Leeds_GW.example.org'), 'leeds-gw');
  t.equal(defaultAgentName('---'), '');
});
