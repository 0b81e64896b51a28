// The agent's control client against a real controller (HTTPS, HTTP/2, in-process) and against a
// controller that goes silent. Cross-process concerns aside this is an integration test, so it uses
// the controller's test harness.
import t from 'tap';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import fastify from 'fastify';
import { create } from '@bufbuild/protobuf';
import type { ConnectRouter } from '@connectrpc/connect';
import { fastifyConnectPlugin } from '@connectrpc/connect-fastify';
import {
  AgentService,
  AgentConfigSchema,
  ReportResponseSchema,
  EnrollResponseSchema,
  type AgentConfig,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import { parseJoinToken } from '../../lib/join-token.js';
import { silentLogger } from '../../lib/logger.js';
import { systemClock } from '../../lib/clock.js';
import { startTestController, fakePublicKey } from '../../controller/rpc/test-controller.fixture.js';
import { MemoryStore } from '../../controller/store/memory.js';
import { loadOrCreateTlsIdentity } from '../../controller/tls.js';
import { parsePolicy } from '../../controller/policy/validate.js';
import { createControlClient } from './connect.js';

const POLICY = `
version: 1
zones: { n3: { description: NHS }, psn: { description: council } }
agents: { a-box: { zones: [n3] }, b-box: { zones: [psn] } }
subnets:
  a-lan: { cidr: 10.1.0.0/24, zone: n3, via: [a-box] }
  b-lan: { cidr: 10.2.0.0/24, zone: psn, via: [b-box] }
rules:
  - { name: a-to-b, from: a-lan, to: b-lan, ports: [PORTS] }
`;
const policy = (ports: string) => parsePolicy(POLICY.replace('PORTS', ports)).policy!;

const log = silentLogger();
const clock = systemClock;

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'xl-agent-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

function recorder() {
  const configs: AgentConfig[] = [];
  const states: { isConnected: boolean; reason?: string }[] = [];
  const waitFor = async (cond: () => boolean, ms = 10_000) => {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out; states=${JSON.stringify(states)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return {
    configs,
    states,
    waitFor,
    events: {
      onConfig: (c: AgentConfig) => configs.push(c),
      onState: (s: { isConnected: boolean; reason?: string }) => states.push(s),
    },
  };
}

const hello = (name: string) => ({
  knownContentHash: () => '',
  endpoint: '',
  advertisedSubnets: [name === 'a-box' ? '10.1.0.0/24' : '10.2.0.0/24'],
  agentVersion: '0.1.0',
});
const enrollInput = (name: string) => ({
  name,
  publicKey: fakePublicKey(name),
  endpoint: '',
  advertisedSubnets: hello(name).advertisedSubnets,
  agentVersion: '0.1.0',
});

/** A URL where nothing listens: a port bound and released again. */
async function deadUrl(): Promise<string> {
  const net = await import('node:net');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return `https://127.0.0.1:${port}`;
}

t.test(
  'a controller on two networks: the agent moves past a URL it cannot reach and stays with one that works',
  async (t) => {
    const store = new MemoryStore();
    const ctl = await startTestController({ store, dataDir: await tmp(), heartbeatIntervalMs: 200 });
    t.teardown(() => ctl.close());
    await ctl.distributor.setPolicy(policy('tcp/443'), 1);
    const tok = parseJoinToken((await ctl.joinToken('a-box')).text);
    const urls = [await deadUrl(), ...tok.controllerUrls];
    const agent = createControlClient({
      controllerUrls: urls,
      caFingerprint: tok.caFingerprint,
      stateDir: await tmp(),
      log,
      clock,
      backoff: { initialMs: 20, maxMs: 100, jitter: 1 },
    });
    t.teardown(() => agent.close());
    const res = await agent.enroll(tok.secret, enrollInput('a-box'));
    t.equal(res.overlayAddress, '100.64.0.1/10', 'enrolled through the second URL');
    const rec = recorder();
    const w = agent.watch(rec.events, hello('a-box'));
    t.teardown(() => w.stop());
    await rec.waitFor(() => rec.configs.length >= 1);
    t.same(
      rec.states.filter((s) => !s.isConnected),
      [],
      'the stream opened at once: the client stayed with the URL that worked',
    );
    const onlyDead = createControlClient({
      controllerUrls: [await deadUrl()],
      caFingerprint: tok.caFingerprint,
      log,
      clock,
    });
    t.teardown(() => onlyDead.close());
    await t.rejects(
      onlyDead.enroll(tok.secret, enrollInput('b-box')),
      { code: 'unavailable' },
      'no URL answers: unavailable',
    );
  },
);

t.test('enroll, watch, report, survive a controller restart, get revoked', async (t) => {
  const dataDir = await tmp();
  const store = new MemoryStore();
  let ctl = await startTestController({ store, dataDir, heartbeatIntervalMs: 200 });
  await ctl.distributor.setPolicy(policy('tcp/443'), 1);
  const stateDir = await tmp();
  const tok = parseJoinToken((await ctl.joinToken('a-box')).text);
  const agent = createControlClient({
    controllerUrls: tok.controllerUrls,
    caFingerprint: tok.caFingerprint,
    stateDir,
    log,
    clock,
    backoff: { initialMs: 50, maxMs: 300, jitter: 1 },
  });
  t.teardown(() => agent.close());

  const res = await agent.enroll(tok.secret, enrollInput('a-box'));
  t.equal(res.overlayAddress, '100.64.0.1/10');
  t.equal((await readFile(join(stateDir, 'credential'), 'utf8')).trim(), res.credential, 'credential stored');
  t.equal((await stat(join(stateDir, 'credential'))).mode & 0o777, 0o600);
  t.equal((await stat(join(stateDir, 'controller-ca.pem'))).mode & 0o777, 0o600);
  await t.rejects(
    agent.enroll(tok.secret, enrollInput('a-box')),
    { code: 'join_token_invalid', message: /already used/ },
    'token is single-use',
  );

  // B, so A has a peer.
  const tokB = parseJoinToken((await ctl.joinToken('b-box')).text);
  const b = createControlClient({ controllerUrls: tokB.controllerUrls, caFingerprint: tokB.caFingerprint, log, clock });
  t.teardown(() => b.close());
  await b.enroll(tokB.secret, enrollInput('b-box'));

  // A fresh client reads its credential from the state dir: no token needed.
  const a2 = createControlClient({
    controllerUrls: tok.controllerUrls,
    caFingerprint: tok.caFingerprint,
    stateDir,
    log,
    clock,
    backoff: { initialMs: 50, maxMs: 300, jitter: 1 },
  });
  t.teardown(() => a2.close());
  const rec = recorder();
  const w = a2.watch(rec.events, hello('a-box'));
  t.teardown(() => w.stop());
  await rec.waitFor(() => rec.configs.length >= 1);
  t.equal(rec.states[0]?.isConnected, true, 'connected first');
  t.same(
    rec.configs[0]!.peers.map((p) => p.name),
    ['b-box'],
  );

  await ctl.distributor.setPolicy(policy('tcp/443, tcp/8443'), 2);
  await rec.waitFor(() => rec.configs.length >= 2);
  t.ok(rec.configs[1]!.generation > rec.configs[0]!.generation, 'pushed change arrives');

  await a2.report({
    generationApplied: rec.configs[1]!.generation,
    generationSeen: rec.configs[1]!.generation,
    applyErrors: [],
    peers: [],
    advertisedSubnets: [],
    agentVersion: '0.1.0',
    probeResults: [],
    agentTimeUnixMs: BigInt(Date.now()),
  });
  t.equal((await store.agentByName('a-box'))?.appliedGeneration, Number(rec.configs[1]!.generation), 'report stored');

  // Controller restarts on the same port: the agent notices and comes back by itself.
  const port = Number(new URL(ctl.url).port);
  await ctl.close();
  await rec.waitFor(() => rec.states.some((s) => !s.isConnected));
  // The restarted controller loads the policy from its store (as the API would have stored it).
  await store.appendPolicy(
    {
      document: POLICY.replace('PORTS', 'tcp/443, tcp/8443'),
      expectedVersion: 0,
      createdBy: 't',
      comment: '',
      atMs: 1,
    },
    {
      actor: { name: 't', role: 'admin', address: '' },
      action: 'policy.put',
      target: 'policy',
      before: null,
      after: null,
    },
  );
  ctl = await startTestController({ store, dataDir, port, heartbeatIntervalMs: 200 });
  t.teardown(() => ctl.close());
  const connectedBefore = rec.states.filter((s) => s.isConnected).length;
  await rec.waitFor(() => rec.states.filter((s) => s.isConnected).length > connectedBefore);
  await rec.waitFor(() => rec.configs.length >= 3);
  t.equal(rec.configs.at(-1)!.contentHash, rec.configs[1]!.contentHash, 'same config after the restart');
  t.equal(rec.configs.at(-1)!.generation, rec.configs[1]!.generation, 'same generation after the restart');

  // Revoked: the stream ends with the reason and reconnects are refused.
  await store.revokeAgent('a-box', Date.now(), {
    actor: { name: 'op', role: 'operator', address: '' },
    action: 'agent.revoke',
    target: 'agent/a-box',
    before: null,
    after: null,
  });
  await ctl.distributor.agentsChanged(['a-box']);
  await rec.waitFor(() => /revoked/.test(rec.states.at(-1)?.reason ?? ''));
  t.equal(rec.states.at(-1)!.isConnected, false);
  await t.rejects(
    a2.report({
      generationApplied: 0n,
      generationSeen: 0n,
      applyErrors: [],
      peers: [],
      advertisedSubnets: [],
      agentVersion: '',
      probeResults: [],
      agentTimeUnixMs: 0n,
    }),
    { code: 'unauthenticated' },
  );
});

t.test('a wrong CA pin is refused before anything is sent', async (t) => {
  const ctl = await startTestController();
  t.teardown(() => ctl.close());
  const tok = await ctl.joinToken('a-box');
  const agent = createControlClient({ controllerUrls: [ctl.url], caFingerprint: 'ab'.repeat(32), log, clock });
  await t.rejects(agent.enroll(tok.secret, enrollInput('a-box')), {
    code: 'unauthenticated',
    message: /pinned CA abab/,
  });
  t.equal((await ctl.store.joinTokenById(tok.id))?.usedAtMs, null, 'token untouched');
});

t.test('a silent stream is detected by missing heartbeats and reopened with backoff', async (t) => {
  const id = await loadOrCreateTlsIdentity(await tmp(), { sans: ['localhost'] });
  let watchCalls = 0;
  const routes = (router: ConnectRouter) =>
    router.service(AgentService, {
      enroll: async () => create(EnrollResponseSchema, {}),
      report: async () => create(ReportResponseSchema, {}),
      async *watchConfig(_req, ctx) {
        watchCalls++;
        yield {
          msg: {
            case: 'config',
            value: create(AgentConfigSchema, { agentName: 'a-box', generation: BigInt(watchCalls) }),
          },
        };
        yield { msg: { case: 'heartbeat', value: { heartbeatIntervalSeconds: 1 } } };
        // Then silence, as if the path black-holed, until the client gives up.
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      },
    });
  const app = fastify({ http2: true, https: { allowHTTP1: true, key: id.keyPem, cert: id.certChainPem } });
  await app.register(fastifyConnectPlugin, { routes });
  const sessions = new Set<{ destroy(): void }>();
  app.server.on('session', (s: { destroy(): void }) => sessions.add(s));
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => {
    const c = app.close();
    sessions.forEach((s) => s.destroy());
    await c;
  });
  const url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  const agent = createControlClient({
    controllerUrls: [url],
    caFingerprint: id.caFingerprint,
    credential: 'c'.repeat(43),
    log,
    clock,
    heartbeatTimeoutMs: 300,
    backoff: { initialMs: 50, maxMs: 200, jitter: 1 },
  });
  t.teardown(() => agent.close());
  const rec = recorder();
  const w = agent.watch(rec.events, hello('a-box'));
  await rec.waitFor(() => watchCalls >= 3 && rec.configs.length >= 3);
  await w.stop();
  t.match(rec.states.find((s) => !s.isConnected)?.reason, /heartbeats missed/);
  t.same(
    rec.configs.slice(0, 3).map((c) => c.generation),
    [1n, 2n, 3n],
    'each reconnect got the config again',
  );
  const stoppedAt = watchCalls;
  await new Promise((r) => setTimeout(r, 400));
  t.equal(watchCalls, stoppedAt, 'stop() really stops');
});
