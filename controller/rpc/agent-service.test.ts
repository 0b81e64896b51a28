import net, { type AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import {
  AgentService,
  ReportRequestSchema,
  type AgentConfig,
  type WatchConfigResponse,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import { PROTOCOL_VERSION } from '../../proto/version.js';
import { fetchPinnedCa, pinnedTlsOptions } from '../../lib/pin.js';
import { parsePolicy } from '../policy/validate.js';
import type { Policy } from '../policy/types.js';
import { startTestController, fakePublicKey, type TestController } from './test-controller.fixture.js';
import { allocateOverlayAddress } from './overlay-pool.js';

const HEARTBEAT_MS = 150;

export function policyText(opts: { extraPort?: number } = {}): string {
  return `
version: 1
zones:
  n3: { description: NHS }
  psn: { description: council }
agents:
  a-box: { zones: [n3] }
  b-box: { zones: [psn] }
  c-box: { zones: [psn] }
subnets:
  a-lan: { cidr: 10.1.0.0/24, zone: n3, via: [a-box] }
  b-lan: { cidr: 10.2.0.0/24, zone: psn, via: [b-box] }
  c-lan: { cidr: 10.3.0.0/24, zone: psn, via: [c-box] }
rules:
  - name: a-to-b
    from: a-lan
    to: b-lan
    ports: [tcp/443${opts.extraPort ? `, tcp/${opts.extraPort}` : ''}]
  - name: a-to-c
    from: a-lan
    to: c-lan
    ports: [tcp/443]
`;
}

export function policy(opts: { extraPort?: number } = {}): Policy {
  const r = parsePolicy(policyText(opts));
  if (!r.policy) throw new Error(JSON.stringify(r.errors));
  return r.policy;
}

const LAN: Record<string, string> = { 'a-box': '10.1.0.0/24', 'b-box': '10.2.0.0/24', 'c-box': '10.3.0.0/24' };

async function rpcClient(ctl: TestController, httpVersion: '1.1' | '2' = '2'): Promise<Client<typeof AgentService>> {
  const ca = await fetchPinnedCa(ctl.url, ctl.caFingerprint);
  return createClient(
    AgentService,
    createConnectTransport({ httpVersion, baseUrl: ctl.url, nodeOptions: pinnedTlsOptions(ca, ctl.caFingerprint) }),
  );
}

async function enroll(ctl: TestController, client: Client<typeof AgentService>, name: string) {
  const tok = await ctl.joinToken(name);
  return client.enroll({
    protocolVersion: PROTOCOL_VERSION,
    joinToken: tok.secret,
    name,
    publicKey: fakePublicKey(name),
    endpoint: `198.51.100.${Object.keys(LAN).indexOf(name) + 1}:51820`,
    advertisedSubnets: [LAN[name]!],
    agentVersion: '0.1.0',
  });
}

/** Reads a WatchConfig stream in the background, collecting configs and heartbeats. */
function watch(client: Client<typeof AgentService>, credential: string) {
  const ac = new AbortController();
  const configs: AgentConfig[] = [];
  const messages: WatchConfigResponse['msg']['case'][] = [];
  let heartbeats = 0;
  let waiters: (() => void)[] = [];
  const done = (async () => {
    try {
      for await (const m of client.watchConfig(
        { protocolVersion: PROTOCOL_VERSION },
        { signal: ac.signal, headers: { authorization: `Bearer ${credential}` } },
      )) {
        messages.push(m.msg.case);
        if (m.msg.case === 'config') configs.push(m.msg.value);
        if (m.msg.case === 'heartbeat') heartbeats++;
        const w = waiters;
        waiters = [];
        w.forEach((f) => f());
      }
      return null;
    } catch (e) {
      return e as ConnectError;
    } finally {
      waiters.forEach((f) => f());
    }
  })();
  const until = async (cond: () => boolean, ms = 5000) => {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error('timed out waiting');
      await Promise.race([new Promise<void>((r) => waiters.push(r)), new Promise((r) => setTimeout(r, 50)), done]);
    }
  };
  return {
    configs,
    messages,
    get heartbeats() {
      return heartbeats;
    },
    done,
    until,
    stop: () => ac.abort(),
  };
}

async function setup(t: Test) {
  const ctl = await startTestController({ heartbeatIntervalMs: HEARTBEAT_MS });
  t.teardown(() => ctl.close());
  const client = await rpcClient(ctl);
  return { ctl, client };
}

const peerNames = (c: AgentConfig | undefined) => (c?.peers ?? []).map((p) => p.name);

t.test('overlay allocation: lowest free, never the network or broadcast address', async (t) => {
  t.equal(allocateOverlayAddress('100.64.0.0/10', []), '100.64.0.1/10');
  t.equal(allocateOverlayAddress('100.64.0.0/10', ['100.64.0.1/10', '100.64.0.3/10']), '100.64.0.2/10');
  t.equal(allocateOverlayAddress('10.9.0.0/30', ['10.9.0.1/30']), '10.9.0.2/30');
  t.throws(() => allocateOverlayAddress('10.9.0.0/30', ['10.9.0.1/30', '10.9.0.2/30']), { code: 'conflict' });
  t.equal(allocateOverlayAddress('fd00:cafe::/64', ['fd00:cafe::1/64']), 'fd00:cafe::2/64');
  t.throws(() => allocateOverlayAddress('100.64.0.1/10', []), { code: 'config_invalid' });
});

t.test('enroll: token checks, protocol version, overlay addresses', async (t) => {
  const { ctl, client } = await setup(t);
  const base = {
    protocolVersion: PROTOCOL_VERSION,
    publicKey: fakePublicKey('a-box'),
    endpoint: '',
    advertisedSubnets: ['10.1.0.0/24'],
    agentVersion: '0.1.0',
  };

  const tok = await ctl.joinToken('a-box');
  const res = await client.enroll({ ...base, joinToken: tok.text, name: 'a-box' });
  t.equal(res.overlayAddress, '100.64.0.1/10');
  t.equal(res.protocolVersion, PROTOCOL_VERSION);
  t.match(res.credential, /^[A-Za-z0-9_-]{40,}$/);
  const rec = await ctl.store.agentByName('a-box');
  t.not(rec?.credentialHash, res.credential, 'credential stored hashed');
  t.same(rec?.advertised, ['10.1.0.0/24']);
  const audit = await ctl.store.listAudit({});
  t.equal(audit.at(-1)?.action, 'agent.enroll');
  t.notMatch(JSON.stringify(audit), res.credential, 'no secret in the audit log');

  const refused = async (p: Promise<unknown>, code: Code, msg: RegExp, what: string) => {
    const e = await p.then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
    t.ok(e, `${what}: refused`);
    t.equal(e?.code, code, `${what}: code ${Code[code]}`);
    t.match(e?.rawMessage, msg, `${what}: message`);
  };
  await refused(
    client.enroll({ ...base, joinToken: tok.secret, name: 'a-box' }),
    Code.Unauthenticated,
    /already used/,
    'reused single-use token',
  );

  const expired = await ctl.joinToken('b-box', { ttlMs: -1 });
  await refused(
    client.enroll({ ...base, joinToken: expired.secret, name: 'b-box' }),
    Code.Unauthenticated,
    /expired/,
    'expired token',
  );

  const forB = await ctl.joinToken('b-box');
  await refused(
    client.enroll({ ...base, joinToken: forB.secret, name: 'c-box' }),
    Code.Unauthenticated,
    /another agent name/,
    'token for another name',
  );
  await refused(
    client.enroll({ ...base, joinToken: 'x'.repeat(30), name: 'b-box' }),
    Code.Unauthenticated,
    /unknown token/,
    'unknown token',
  );

  const revokedTok = await ctl.joinToken('b-box');
  await ctl.store.revokeJoinToken(revokedTok.id, Date.now(), {
    actor: { name: 't', role: 'admin', address: '' },
    action: 'join_token.revoke',
    target: 'x',
    before: null,
    after: null,
  });
  await refused(
    client.enroll({ ...base, joinToken: revokedTok.secret, name: 'b-box' }),
    Code.Unauthenticated,
    /revoked/,
    'revoked token',
  );

  await refused(
    client.enroll({ ...base, protocolVersion: 7, joinToken: forB.secret, name: 'b-box' }),
    Code.FailedPrecondition,
    /agent speaks protocol 7, this controller speaks 1/,
    'newer protocol version',
  );
  await refused(
    client.enroll({ ...base, protocolVersion: 0, joinToken: forB.secret, name: 'b-box' }),
    Code.FailedPrecondition,
    /protocol_version is missing/,
    'missing protocol version',
  );
  await refused(
    client.enroll({ ...base, joinToken: forB.secret, name: 'B_box' }),
    Code.InvalidArgument,
    /name/,
    'bad name',
  );
  await refused(
    client.enroll({ ...base, joinToken: forB.secret, name: 'b-box', publicKey: 'short' }),
    Code.InvalidArgument,
    /public_key/,
    'bad key',
  );
  await refused(
    client.enroll({ ...base, joinToken: forB.secret, name: 'b-box', advertisedSubnets: ['10.2.0.1/24'] }),
    Code.InvalidArgument,
    /host bits/,
    'bad prefix',
  );

  // The refusals above did not burn the token.
  const b = await client.enroll({ ...base, joinToken: forB.secret, name: 'b-box', publicKey: fakePublicKey('b-box') });
  t.equal(b.overlayAddress, '100.64.0.2/10', 'next agent gets the next address');

  const reusable = await ctl.joinToken('c-box', { isReusable: true });
  const c1 = await client.enroll({
    ...base,
    joinToken: reusable.secret,
    name: 'c-box',
    publicKey: fakePublicKey('c-box'),
  });
  const c2 = await client.enroll({
    ...base,
    joinToken: reusable.secret,
    name: 'c-box',
    publicKey: fakePublicKey('c-box'),
  });
  t.equal(c2.overlayAddress, c1.overlayAddress, 're-enrolment keeps the overlay address');
  t.equal(c2.agentId, c1.agentId, 're-enrolment keeps the agent id');
  t.not(c2.credential, c1.credential);
  await refused(
    client.report({ protocolVersion: PROTOCOL_VERSION }, { headers: { authorization: `Bearer ${c1.credential}` } }),
    Code.Unauthenticated,
    /unknown credential/,
    'old credential after re-enrolment',
  );
});

t.test('WatchConfig: config first, heartbeats, pushed changes; Report stored', async (t) => {
  const { ctl, client } = await setup(t);
  await ctl.distributor.setPolicy(policy(), 1);
  const a = await enroll(ctl, client, 'a-box');
  const b = await enroll(ctl, client, 'b-box');
  await enroll(ctl, client, 'c-box');

  const wa = watch(client, a.credential);
  t.teardown(wa.stop);
  await wa.until(() => wa.configs.length >= 1 && wa.heartbeats >= 1);
  t.equal(wa.messages[0], 'config', 'the full config comes first');
  t.equal(wa.messages[1], 'heartbeat', 'then a heartbeat that announces the interval');
  const first = wa.configs[0]!;
  t.equal(first.agentName, 'a-box');
  t.same(peerNames(first), ['b-box', 'c-box']);
  t.equal(first.overlayAddress, a.overlayAddress);
  t.match(first.contentHash, /^[0-9a-f]{64}$/);
  const gen1 = first.generation;

  const hbBefore = wa.heartbeats;
  await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 4 + 50));
  t.ok(
    wa.heartbeats - hbBefore >= 3,
    `heartbeats keep coming (${wa.heartbeats - hbBefore} in ${HEARTBEAT_MS * 4 + 50} ms)`,
  );
  t.equal(wa.configs.length, 1, 'no config without a change');

  await ctl.distributor.setPolicy(policy({ extraPort: 8443 }), 2);
  await wa.until(() => wa.configs.length >= 2);
  t.equal(wa.configs[1]!.generation, gen1 + 1n, 'generation + 1 on change');
  t.not(wa.configs[1]!.contentHash, first.contentHash);
  t.equal((await ctl.store.agentByName('a-box'))?.desiredGeneration, Number(gen1 + 1n), 'generation persisted');

  // Report.
  const res = await client.report(
    create(ReportRequestSchema, {
      protocolVersion: PROTOCOL_VERSION,
      generationApplied: gen1 + 1n,
      generationSeen: gen1 + 1n,
      agentVersion: '0.1.1',
      peers: [{ name: 'b-box', latestHandshakeUnix: 1_700_000_000n, rxBytes: 10n, txBytes: 20n }],
    }),
    { headers: { authorization: `Bearer ${a.credential}` } },
  );
  t.equal(res.desiredGeneration, gen1 + 1n);
  const rec = await ctl.store.agentByName('a-box');
  t.equal(rec?.appliedGeneration, Number(gen1 + 1n));
  t.ok(rec?.lastReportAtMs);
  t.match(JSON.parse(rec!.lastReport!), {
    generationApplied: String(gen1 + 1n),
    peers: [{ name: 'b-box', rxBytes: '10' }],
  });
  t.equal(rec?.agentVersion, '0.1.1');

  // Unauthenticated calls.
  for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: `Basic ${b.credential}` }]) {
    const e = await client.report({ protocolVersion: PROTOCOL_VERSION }, { headers }).then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
    t.equal(e?.code, Code.Unauthenticated, `report refused with ${JSON.stringify(Object.keys(headers))}`);
  }
  const live = ctl.distributor.liveView('a-box');
  t.equal(live.isConnected, true);
  t.equal(live.desiredGeneration, Number(gen1 + 1n));
});

t.test('an unchanged recompile pushes nothing', async (t) => {
  const { ctl, client } = await setup(t);
  await ctl.distributor.setPolicy(policy(), 1);
  const a = await enroll(ctl, client, 'a-box');
  await enroll(ctl, client, 'b-box');
  const wa = watch(client, a.credential);
  t.teardown(wa.stop);
  await wa.until(() => wa.configs.length >= 1);
  const gen = wa.configs[0]!.generation;

  await ctl.distributor.setPolicy(policy(), 2); // a new object, the same content
  await ctl.distributor.agentsChanged(['a-box', 'b-box']); // nothing changed in the store
  await ctl.store.updateAgent('b-box', { agentVersion: '9.9.9' }); // not something configs depend on
  await ctl.distributor.agentsChanged(['b-box']);
  const hb = wa.heartbeats;
  await wa.until(() => wa.heartbeats >= hb + 2);
  t.equal(wa.configs.length, 1, 'no config pushed');
  t.equal(ctl.distributor.liveView('a-box').desiredGeneration, Number(gen), 'generation unchanged');

  // A change that affects only b (new endpoint) reaches a (its peer) but only as one push.
  await ctl.store.updateAgent('b-box', { endpoint: '203.0.113.9:51820' });
  await ctl.distributor.agentsChanged(['b-box']);
  await wa.until(() => wa.configs.length >= 2);
  t.equal(wa.configs[1]!.peers.find((p) => p.name === 'b-box')?.endpoint, '203.0.113.9:51820');
  t.equal(wa.configs[1]!.generation, gen + 1n);
});

t.test('revocation: stream closed at once, calls refused, peers drop it', async (t) => {
  const { ctl, client } = await setup(t);
  await ctl.distributor.setPolicy(policy(), 1);
  const a = await enroll(ctl, client, 'a-box');
  const b = await enroll(ctl, client, 'b-box');
  const c = await enroll(ctl, client, 'c-box');
  const wa = watch(client, a.credential);
  const wb = watch(client, b.credential);
  t.teardown(() => {
    wa.stop();
    wb.stop();
  });
  await wa.until(() => wa.configs.length >= 1);
  await wb.until(() => wb.configs.length >= 1);
  t.same(peerNames(wa.configs[0]), ['b-box', 'c-box']);

  const startedMs = Date.now();
  t.ok(
    await ctl.store.revokeAgent('b-box', Date.now(), {
      actor: { name: 'op', role: 'operator', address: '' },
      action: 'agent.revoke',
      target: 'agent/b-box',
      before: null,
      after: null,
    }),
  );
  await ctl.distributor.agentsChanged(['b-box']);
  const err = await wb.done;
  t.equal(err?.code, Code.Unauthenticated, 'revoked agent stream ends with UNAUTHENTICATED');
  t.match(err?.rawMessage, /revoked/);
  t.ok(Date.now() - startedMs < 1000, 'at once');

  await wa.until(() => wa.configs.length >= 2);
  t.same(peerNames(wa.configs.at(-1)), ['c-box'], 'a drops b from its peers');
  t.notOk(ctl.distributor.currentConfig('b-box'));
  t.same(peerNames(ctl.distributor.currentConfig('c-box')), ['a-box']);

  const e1 = await client
    .report({ protocolVersion: PROTOCOL_VERSION }, { headers: { authorization: `Bearer ${b.credential}` } })
    .then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
  t.equal(e1?.code, Code.Unauthenticated, 'report refused');
  const wb2 = watch(client, b.credential);
  const e2 = await wb2.done;
  t.equal(e2?.code, Code.Unauthenticated, 'new stream refused');
  t.equal(wb2.configs.length, 0);
  t.ok(c.credential);
});

/** A TCP relay to the controller whose `blackHole()` stops every byte both ways without closing
 *  anything, as a box that lost power or its uplink: no FIN, no RST. */
async function relay(t: Test, port: number) {
  const pairs: Array<[net.Socket, net.Socket]> = [];
  const server = net.createServer((c) => {
    const u = net.connect(port, '127.0.0.1');
    c.pipe(u);
    u.pipe(c);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
    pairs.push([c, u]);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const [c, u] of pairs) {
      c.destroy();
      u.destroy();
    }
    server.close();
  });
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    blackHole() {
      for (const [c, u] of pairs) {
        c.unpipe(u);
        u.unpipe(c);
        c.pause();
        u.pause();
      }
    },
  };
}

t.test('a stream to a box that died without a FIN is closed by the HTTP/2 PINGs', async (t) => {
  const ctl = await startTestController({
    heartbeatIntervalMs: 10_000,
    sessionPing: { intervalMs: 200, timeoutMs: 1000 },
  });
  t.teardown(() => ctl.close());
  await ctl.distributor.setPolicy(policy(), 1);
  const a = await enroll(ctl, await rpcClient(ctl), 'a-box');
  const path = await relay(t, Number(new URL(ctl.url).port));
  const ca = await fetchPinnedCa(ctl.url, ctl.caFingerprint);
  const client = createClient(
    AgentService,
    createConnectTransport({
      httpVersion: '2',
      baseUrl: path.url,
      nodeOptions: pinnedTlsOptions(ca, ctl.caFingerprint),
    }),
  );
  const wa = watch(client, a.credential);
  t.teardown(wa.stop);
  await wa.until(() => wa.configs.length >= 1);
  await new Promise((r) => setTimeout(r, 500));
  t.equal(ctl.distributor.liveView('a-box').isConnected, true, 'an agent that answers PINGs stays connected');

  path.blackHole();
  const cutMs = Date.now();
  while (ctl.distributor.liveView('a-box').isConnected && Date.now() - cutMs < 10_000)
    await new Promise((r) => setTimeout(r, 20));
  const tookMs = Date.now() - cutMs;
  t.equal(
    ctl.distributor.liveView('a-box').isConnected,
    false,
    `the controller sees the stream down after ${tookMs} ms`,
  );
  t.ok(tookMs >= 1000, 'not before a PING timed out');
});

t.test('generations stay monotonic across a restart', async (t) => {
  const first = await startTestController({ heartbeatIntervalMs: HEARTBEAT_MS });
  await first.distributor.setPolicy(policy(), 1);
  const client = await rpcClient(first);
  await enroll(first, client, 'a-box');
  await enroll(first, client, 'b-box');
  const g1 = first.distributor.liveView('a-box').desiredGeneration;
  await first.store.appendPolicy(
    { document: policyText(), expectedVersion: 0, createdBy: 't', comment: '', atMs: 1 },
    {
      actor: { name: 't', role: 'admin', address: '' },
      action: 'policy.put',
      target: 'policy',
      before: null,
      after: null,
    },
  );
  await first.close();

  const second = await startTestController({ store: first.store, heartbeatIntervalMs: HEARTBEAT_MS });
  t.teardown(() => second.close());
  t.equal(second.distributor.liveView('a-box').desiredGeneration, g1, 'same content, same generation after restart');
  t.equal(second.distributor.isReady(), true);
  await second.distributor.setPolicy(policy({ extraPort: 22 }), 2);
  t.equal(
    second.distributor.liveView('a-box').desiredGeneration,
    g1 + 1,
    'next change continues from the persisted generation',
  );
});

t.test('HTTP/1.1 clients work too', async (t) => {
  const { ctl } = await setup(t);
  await ctl.distributor.setPolicy(policy(), 1);
  const client = await rpcClient(ctl, '1.1');
  const a = await enroll(ctl, client, 'a-box');
  const wa = watch(client, a.credential);
  t.teardown(wa.stop);
  await wa.until(() => wa.configs.length >= 1 && wa.heartbeats >= 2);
  t.equal(wa.configs[0]!.agentName, 'a-box');
});

t.test('a client with the wrong CA pin is refused', async (t) => {
  const { ctl } = await setup(t);
  await t.rejects(fetchPinnedCa(ctl.url, 'cd'.repeat(32)), { code: 'unauthenticated' });
  const other = await startTestController();
  t.teardown(() => other.close());
  const wrongCa = await fetchPinnedCa(other.url, other.caFingerprint);
  const client = createClient(
    AgentService,
    createConnectTransport({
      httpVersion: '2',
      baseUrl: ctl.url,
      nodeOptions: pinnedTlsOptions(wrongCa, other.caFingerprint),
    }),
  );
  const tok = await ctl.joinToken('a-box');
  const e = await client
    .enroll({
      protocolVersion: 1,
      joinToken: tok.secret,
      name: 'a-box',
      publicKey: fakePublicKey('a'),
      advertisedSubnets: [],
    })
    .then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
  t.ok(e, 'TLS handshake fails against another CA');
  t.equal((await ctl.store.joinTokenById(tok.id))?.usedAtMs, null, 'token not used');
});
