// runController: a controller on two networks. Each --listen address gets its own HTTPS server and
// every one serves the REST API and the agents' Connect service; without --url the join tokens
// carry one URL per listen address.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createControlClient } from '../agent/control/connect.js';
import { ApiClient } from '../cli/commands/api.js';
import { systemClock } from '../lib/clock.js';
import { parseJoinToken } from '../lib/join-token.js';
import { silentLogger } from '../lib/logger.js';
import { fakePublicKey } from './rpc/test-controller.fixture.js';
import { handoverEvent, resolveSettings, runController } from './main.js';

const log = silentLogger();

async function start(t: { teardown(fn: () => Promise<void> | void): void }, settings: Record<string, unknown>) {
  const dir = mkdtempSync(join(tmpdir(), 'xl-ctl-main-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const printed: string[] = [];
  const c = await runController({
    settings: { 'data-dir': dir, ...settings },
    log,
    print: (s) => {
      printed.push(s);
    },
    handleSignals: false,
  });
  t.teardown(() => c.close());
  return { c, dir, printed, adminToken: readFileSync(join(dir, 'admin.token'), 'utf8').trim() };
}

const canConnect = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

t.test('two --listen addresses: both serve the REST API and the agent service', async (t) => {
  const { c, dir, printed, adminToken } = await start(t, { listen: ['127.0.0.1:0', '127.0.0.2:0'] });
  t.equal(c.ports.length, 2);
  t.not(c.ports[0], c.ports[1]);
  t.same(c.listenUrls, [`https://127.0.0.1:${c.ports[0]}`, `https://127.0.0.2:${c.ports[1]}`]);
  t.same(c.urls, c.listenUrls, 'without --url: one URL per listen address');
  t.match(printed.join(''), `listening on https://127.0.0.1:${c.ports[0]}, https://127.0.0.2:${c.ports[1]}`);
  const san = new X509Certificate(readFileSync(join(dir, 'server.crt'))).subjectAltName ?? '';
  t.match(san, 'IP Address:127.0.0.2', 'the certificate names the second address');

  // REST on each address (the CLI's client: pinned CA), and a join token made through the second.
  let token = '';
  for (const url of c.urls) {
    const api = await ApiClient.connect({ controller: url, token: adminToken, caFingerprint: c.caFingerprint });
    t.teardown(() => api.close());
    t.equal((await api.request('GET', '/healthz')).status, 200, `REST at ${url}`);
    token = (await api.request<{ token: string }>('POST', '/v1/join-tokens', { json: { name: 'gp-armley' } })).body
      .token;
  }
  const parts = parseJoinToken(token);
  t.same(parts.controllerUrls, c.urls, 'the token carries both URLs');

  // The agent service (Connect over HTTP/2) through the second address only.
  const agent = createControlClient({
    controllerUrls: [c.urls[1]!],
    caFingerprint: parts.caFingerprint,
    log,
    clock: systemClock,
  });
  t.teardown(() => agent.close());
  const res = await agent.enroll(parts.secret, {
    name: 'gp-armley',
    publicKey: fakePublicKey('gp-armley'),
    endpoint: '',
    advertisedSubnets: [],
    agentVersion: '0.1.0',
  });
  t.match(res.overlayAddress, /^100\.64\./, 'enrolled through the second listener');

  await c.close();
  t.notOk(await canConnect('127.0.0.2', c.ports[1]!), 'close() stops the second listener too');
  t.notOk(await canConnect('127.0.0.1', c.ports[0]!), 'and the first');
});

t.test('one listen address stays one server (the default shape)', async (t) => {
  const { c } = await start(t, { listen: '127.0.0.1:0' });
  t.equal(c.ports.length, 1);
  t.same(c.urls, [`https://127.0.0.1:${c.port}`]);
  t.same((await resolveSettings({ 'data-dir': '/tmp/x' })).listen, ['0.0.0.0:8443'], 'default 0.0.0.0:8443');
});

t.test('a listen address that cannot be bound is named with its index, and nothing stays open', async (t) => {
  const { c } = await start(t, { listen: '127.0.0.1:0' });
  const dir = mkdtempSync(join(tmpdir(), 'xl-ctl-main-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await t.rejects(
    runController({
      settings: { 'data-dir': dir, listen: ['127.0.0.2:0', `127.0.0.1:${c.port}`] },
      log,
      print: () => undefined,
      handleSignals: false,
    }),
    {
      code: 'config_invalid',
      message: new RegExp(`^listen\\[1\\]: cannot listen on 127\\.0\\.0\\.1:${c.port}: .*EADDRINUSE`),
    },
  );
});

t.test('handoverEvent: a subnet its boxes serve on their own choice is degraded, not ok', async (t) => {
  const h = { subnet: 'records', unhealthy: [] as string[], isUnconfirmed: false, wasUnconfirmed: false };
  const cases: Array<[string, Parameters<typeof handoverEvent>[0], [string, string, string]]> = [
    [
      'to the standby',
      { ...h, from: 'p', to: 's', role: 'standby', fromRole: 'primary', unhealthy: ['p'] },
      ['ok', 'degraded', 'records: now served by s (standby) instead of p (not serving: p)'],
    ],
    [
      'to nobody',
      { ...h, from: 'p', to: '', role: '', fromRole: 'primary', unhealthy: ['p'] },
      ['ok', 'down', 'records: no agent can serve it now (was p) (not serving: p)'],
    ],
    [
      'none healthy to the controller: the primary first',
      { ...h, from: 's', to: 'p', role: 'primary', fromRole: 'standby', unhealthy: ['p', 's'], isUnconfirmed: true },
      [
        'degraded',
        'degraded',
        'records: its boxes choose which serves it, none healthy to the controller (unhealthy: p, s); p (primary) first instead of s',
      ],
    ],
    [
      'the same box, no longer unconfirmed',
      { ...h, from: 'p', to: 'p', role: 'primary', fromRole: 'primary', unhealthy: ['s'], wasUnconfirmed: true },
      ['degraded', 'ok', 'records: now served by p (primary) (not serving: s)'],
    ],
  ];
  for (const [name, handover, [from, to, reason]] of cases) {
    const e = handoverEvent(handover, 7);
    t.same(
      [e.subject, e.kind, e.atMs, e.from, e.to, e.reason],
      ['subnet:records', 'subnet', 7, from, to, reason],
      name,
    );
  }
});
