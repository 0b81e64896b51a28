// Protocol upgrades, both directions, against a real controller (HTTPS, Connect routes, real
// distributor) and the real agent (startAgent + the Connect control client, a fake host):
//
// - within one protocol version, a newer agent (unknown fields in its messages, a newer
//   agent_version) works with an older controller, and a newer controller (unknown fields in what it
//   sends) works with an older agent;
// - across protocol versions the controller refuses with FAILED_PRECONDITION, the agent names both
//   versions and who must upgrade, shows it in its status, and does not retry in a tight loop;
// - a controller serving [1, 2] takes agents speaking either.
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UnknownField } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { PROTOCOL_VERSION } from '../../proto/version.js';
import { parseJoinToken } from '../../lib/join-token.js';
import { silentLogger } from '../../lib/logger.js';
import { systemClock } from '../../lib/clock.js';
import { pinnedTlsOptions } from '../../lib/pin.js';
import {
  startTestController,
  fakePublicKey,
  type TestController,
} from '../../controller/rpc/test-controller.fixture.js';
import { parsePolicy } from '../../controller/policy/validate.js';
import { createControlClient, type ControlClientOptions } from '../../agent/control/connect.js';
import { startAgent, type AgentDeps, type AgentRunOptions, type RunningAgent } from '../../agent/main.js';
import { FakeHost } from '../../agent/host/fake-host.js';
import { stubRenderFirewall } from '../../agent/reconcile/reconcile.fixture.js';

const POLICY = `
version: 1
zones: { n3: { description: NHS }, psn: { description: council } }
agents: { a-box: { zones: [n3] }, b-box: { zones: [psn] } }
subnets:
  a-lan: { cidr: 10.1.0.0/24, zone: n3, via: [a-box] }
  b-lan: { cidr: 10.2.0.0/24, zone: psn, via: [b-box] }
rules:
  - { name: a-to-b, from: a-lan, to: b-lan, ports: [tcp/443] }
`;
const log = silentLogger();
const clock = systemClock;

t.equal(PROTOCOL_VERSION, 1, 'these cases are written for protocol 1 as the current version');

/** Fields no build of Crosslink defines: one varint and one length-delimited. */
const FUTURE_FIELDS: UnknownField[] = [
  { no: 9001, wireType: WireType.Varint, data: new BinaryWriter().uint32(42).finish() },
  { no: 9002, wireType: WireType.LengthDelimited, data: new BinaryWriter().string('a field from the future').finish() },
];

type Msg = { $unknown?: UnknownField[]; msg?: { case?: string; value?: unknown } };
/** Adds FUTURE_FIELDS to a message (once), and to the config a WatchConfig response carries. */
const withFuture = <M extends Msg>(m: M): M => {
  const add = (x: Msg) => {
    if (!x.$unknown?.some((u) => u.no === FUTURE_FIELDS[0]!.no)) x.$unknown = [...(x.$unknown ?? []), ...FUTURE_FIELDS];
  };
  add(m);
  if (m.msg?.case === 'config') add(m.msg.value as Msg);
  return m;
};
async function* futureStream<M extends Msg>(it: AsyncIterable<M>): AsyncIterable<M> {
  for await (const m of it) yield withFuture(m);
}

/** Client side: every request this "newer agent" sends carries fields the controller doesn't know. */
const newerAgentFields: Interceptor = (next) => async (req) => {
  if (req.stream) return next({ ...req, message: futureStream(req.message as AsyncIterable<Msg>) } as typeof req);
  withFuture(req.message as Msg);
  return next(req);
};

/** Server side: every response of this "newer controller" carries fields the agent doesn't know. */
const newerControllerFields: Interceptor = (next) => async (req) => {
  const res = await next(req);
  if (res.stream) return { ...res, message: futureStream(res.message as AsyncIterable<Msg>) } as typeof res;
  withFuture(res.message as Msg);
  return res;
};

/** Server side: records the unknown field numbers of each request the handlers received. */
function unknownSeen(): { interceptor: Interceptor; seen: Map<string, number[]> } {
  const seen = new Map<string, number[]>();
  const note = (method: string, m: Msg) =>
    seen.set(method, [...(seen.get(method) ?? []), ...(m.$unknown ?? []).map((u) => u.no)]);
  return {
    seen,
    interceptor: (next) => async (req) => {
      if (req.stream) {
        const name = req.method.name;
        return next({
          ...req,
          message: (async function* () {
            for await (const m of req.message as AsyncIterable<Msg>) {
              note(name, m);
              yield m;
            }
          })(),
        } as typeof req);
      }
      note(req.method.name, req.message);
      return next(req);
    },
  };
}

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'xl-upgrade-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

async function controller(t: Test, opts: Parameters<typeof startTestController>[0] = {}): Promise<TestController> {
  const ctl = await startTestController({ heartbeatIntervalMs: 200, ...opts });
  t.teardown(() => ctl.close());
  await ctl.distributor.setPolicy(parsePolicy(POLICY).policy!, 1);
  // b-box enrolled (as the current build), so a-box has a peer and gets a config.
  const tok = parseJoinToken((await ctl.joinToken('b-box')).text);
  const b = createControlClient({ controllerUrls: tok.controllerUrls, caFingerprint: tok.caFingerprint, log, clock });
  await b.enroll(tok.secret, {
    name: 'b-box',
    publicKey: fakePublicKey('b-box'),
    endpoint: '192.0.2.2:51820',
    advertisedSubnets: ['10.2.0.0/24'],
    agentVersion: '0.1.0',
  });
  await b.close();
  return ctl;
}

/** The whole agent (fake host) with its control client built as `build` says. */
async function agent(
  t: Test,
  ctl: TestController,
  build: Partial<ControlClientOptions> & { agentVersion?: string },
  stateDir?: string,
): Promise<{ agent: RunningAgent; host: FakeHost; stateDir: string; factoryCalls: number }> {
  const dir = stateDir ?? join(await tmp(), 'state');
  const host = new FakeHost(); // reads the state dir's private key
  const { agentVersion, ...clientOpts } = build;
  const made = { factoryCalls: 0 };
  const deps: AgentDeps = {
    host,
    createControlClient: (o) => {
      made.factoryCalls++;
      return createControlClient({
        ...o,
        stateDir: dir,
        backoff: { initialMs: 20, maxMs: 1000, jitter: 0 },
        ...clientOpts,
      });
    },
    renderFirewall: stubRenderFirewall,
    clock,
    log,
    detectWireguardMode: async () => 'userspace',
  };
  const opts: AgentRunOptions = {
    stateDir: dir,
    join: (await ctl.joinToken('a-box', { isReusable: true })).text,
    name: 'a-box',
    interfaceName: 'xlup0',
    listenPort: 51820,
    endpoint: '192.0.2.1:51820',
    advertise: ['10.1.0.0/24'],
    statusListen: '',
    wireguard: 'userspace',
    mtu: 1420,
    agentVersion: agentVersion ?? '0.1.0',
    reportIntervalMs: 100,
  };
  const running = await startAgent(opts, deps);
  t.teardown(() => running.stop());
  return {
    agent: running,
    host,
    stateDir: dir,
    get factoryCalls() {
      return made.factoryCalls;
    },
  };
}

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Connected, the config applied on the (fake) box, and a report stored by the controller. */
async function assertWorks(t: Test, ctl: TestController, a: RunningAgent, what: string): Promise<void> {
  await a.connecting;
  await until(async () => (await a.status()).isApplied, `${what}: config applied`);
  const s = await a.status();
  t.equal(s.controller.isConnected, true, `${what}: connected`);
  t.equal(s.controller.reason, null, `${what}: no complaint in status`);
  const gen = s.generation.applied;
  await until(async () => (await ctl.store.agentByName('a-box'))?.appliedGeneration === gen, `${what}: report stored`);
  t.ok(gen > 0, `${what}: applied generation ${gen} reported back`);
}

t.test(
  '(a) same protocol: a newer agent sending unknown fields and a newer agent_version works with this controller',
  async (t) => {
    const probe = unknownSeen();
    const ctl = await controller(t, { interceptors: [probe.interceptor] });
    const [baseUrl] = parseJoinToken((await ctl.joinToken('x')).text).controllerUrls;
    if (baseUrl === undefined) throw new Error('the join token names no controller');
    // The agent's own transport (pinned as the real one is), with the "newer build" interceptor.
    const ca = ctl.caCertPem;
    const transport = createConnectTransport({
      httpVersion: '1.1',
      baseUrl,
      nodeOptions: pinnedTlsOptions(ca, ctl.caFingerprint),
      interceptors: [newerAgentFields],
    });
    const { agent: a } = await agent(t, ctl, { transport, agentVersion: '9.9.0-newer' });
    await assertWorks(t, ctl, a, 'newer agent');
    const rec = await ctl.store.agentByName('a-box');
    t.equal(rec?.agentVersion, '9.9.0-newer', 'the controller records the newer agent_version');
    t.equal(rec?.protocolVersion, 1);
    for (const m of ['Enroll', 'WatchConfig', 'Report'])
      t.ok(probe.seen.get(m)?.includes(9001), `${m}: the controller received the unknown fields (and ignored them)`);
  },
);

t.test('(a) same protocol, the reverse: a newer controller sending unknown fields works with this agent', async (t) => {
  const ctl = await controller(t, { interceptors: [newerControllerFields] });
  const configs: AgentConfig[] = [];
  const { agent: a } = await agent(t, ctl, {});
  await assertWorks(t, ctl, a, 'older agent, newer controller');
  // And the stream's messages really did carry them: watch once more with a bare client.
  const dir = await tmp();
  const tok = parseJoinToken((await ctl.joinToken('a-box')).text);
  const c = createControlClient({
    controllerUrls: tok.controllerUrls,
    caFingerprint: tok.caFingerprint,
    stateDir: dir,
    log,
    clock,
  });
  t.teardown(() => c.close());
  await c.enroll(tok.secret, {
    name: 'a-box',
    publicKey: fakePublicKey('a-box'),
    endpoint: '',
    advertisedSubnets: ['10.1.0.0/24'],
    agentVersion: '0.1.0',
  });
  const w = c.watch(
    { onConfig: (cfg) => configs.push(cfg), onState: () => undefined },
    { knownContentHash: () => '', endpoint: '', advertisedSubnets: ['10.1.0.0/24'], agentVersion: '0.1.0' },
  );
  await until(() => configs.length > 0, 'config on the bare client');
  await w.stop();
  t.same(
    configs[0]!.peers.map((p) => p.name),
    ['b-box'],
    'config decoded',
  );
  t.ok(
    configs[0]!.$unknown?.some((u) => u.no === 9001),
    'the config carried fields this agent does not know',
  );
});

t.test(
  '(b) agent speaking protocol 2, controller serving [1]: refused at enrolment with a message naming both versions',
  async (t) => {
    const ctl = await controller(t, { supportedProtocolVersions: [1] });
    const enrollsBefore = ctl.calls.get('Enroll') ?? 0;
    const { agent: a } = await agent(t, ctl, { protocolVersion: 2 });
    await t.rejects(a.connecting, {
      code: 'protocol_mismatch',
      message: /agent speaks protocol 2, this controller speaks 1: upgrade the controller/,
    });
    const s = await a.status();
    t.equal(s.controller.isConnected, false);
    t.match(
      s.controller.reason,
      /agent speaks protocol 2, this controller speaks 1: upgrade the controller/,
      'status says why',
    );
    await new Promise((r) => setTimeout(r, 300));
    t.equal(
      (ctl.calls.get('Enroll') ?? 0) - enrollsBefore,
      1,
      'enrolment is not retried (runAgent exits with the message)',
    );
    t.equal(await ctl.store.agentByName('a-box'), null, 'nothing stored for the refused agent');
  },
);

t.test(
  '(b) an enrolled agent upgraded to protocol 2, controller still [1]: watch refused, slow retry, status says so',
  async (t) => {
    const ctl = await controller(t, { supportedProtocolVersions: [1] });
    // Enrolled with the current build.
    const first = await agent(t, ctl, {});
    await assertWorks(t, ctl, first.agent, 'before the upgrade');
    await first.agent.stop();
    const appliedBefore = (await ctl.store.agentByName('a-box'))!.appliedGeneration;

    // The same box after upgrading the agent package only.
    const watchesBefore = ctl.calls.get('WatchConfig') ?? 0;
    const second = await agent(t, ctl, { protocolVersion: 2, agentVersion: '0.2.0' }, first.stateDir);
    await second.agent.connecting;
    await until(
      async () => /protocol 2/.test((await second.agent.status()).controller.reason ?? ''),
      'status shows the refusal',
    );
    const s = await second.agent.status();
    t.equal(s.controller.isConnected, false);
    t.match(s.controller.reason, /agent speaks protocol 2, this controller speaks 1: upgrade the controller/);
    t.equal(s.isApplied, true, 'fail static: the saved config is still enforced');
    t.equal(second.host.ownRoutes().length > 0, true, 'routes still in place');

    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 1500));
    const attempts = (ctl.calls.get('WatchConfig') ?? 0) - watchesBefore;
    // Backoff 20 ms doubling would make ~7 attempts in 1.5 s; a refusal waits the cap (1 s) each time.
    t.ok(attempts >= 1 && attempts <= 3, `no tight loop: ${attempts} WatchConfig attempts in ${Date.now() - t0} ms`);
    t.equal(
      (await ctl.store.agentByName('a-box'))!.appliedGeneration,
      appliedBefore,
      'the refused agent changed nothing on the controller',
    );
  },
);

t.test('(b) the reverse: agent speaking 1, a controller serving only [2] tells the agent to upgrade', async (t) => {
  const only2 = await startTestController({ heartbeatIntervalMs: 200, supportedProtocolVersions: [2] });
  t.teardown(() => only2.close());
  const { agent: a } = await agent(t, only2, {});
  await t.rejects(a.connecting, {
    code: 'protocol_mismatch',
    message: /agent speaks protocol 1, this controller speaks 2: upgrade the agent/,
  });
  t.match((await a.status()).controller.reason, /upgrade the agent/);
});

t.test('(c) controller serving [1, 2]: an agent speaking 1 works, and so does one speaking 2', async (t) => {
  const ctl = await controller(t, { supportedProtocolVersions: [1, 2] });
  const one = await agent(t, ctl, { protocolVersion: 1 });
  await assertWorks(t, ctl, one.agent, 'agent on 1');
  t.equal((await ctl.store.agentByName('a-box'))?.protocolVersion, 1);
  await one.agent.stop();

  const two = await agent(t, ctl, { protocolVersion: 2, agentVersion: '0.2.0' }, one.stateDir);
  await two.agent.connecting;
  await until(async () => (await two.agent.status()).controller.isConnected, 'agent on 2 connected');
  await until(
    async () => (await ctl.store.agentByName('a-box'))?.protocolVersion === 2,
    'controller records protocol 2',
  );
  t.equal((await ctl.store.agentByName('a-box'))?.agentVersion, '0.2.0');
  t.pass('an agent speaking 2 works with a controller serving [1, 2]');
});
