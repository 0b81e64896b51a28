// The composed controller (controller/main.ts) end to end: REST and the agents' Connect service on
// one HTTPS port. An operator makes a join token over REST; an agent enrolls over Connect (HTTP/2 and
// HTTP/1.1), streams its config, shows up in GET /v1/agents; a revoke over REST ends its stream.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { AgentService, type WatchConfigResponse } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { PROTOCOL_VERSION } from '../../proto/version.js';
import { fetchPinnedCa, pinnedTlsOptions } from '../../lib/pin.js';
import { parseJoinToken } from '../../lib/join-token.js';
import { fakePublicKey } from '../../controller/rpc/test-controller.fixture.js';
import { ApiClient } from '../../cli/commands/api.js';
import { POLICY_YAML } from './harness.fixture.js';
import { startChildController, waitExit } from './child.js';

t.test('enroll over Connect, watch config, list and revoke over REST', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-e2e-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await startChildController(dir);
  t.teardown(async () => {
    if (c.proc.exitCode === null) {
      c.proc.kill('SIGTERM');
      await waitExit(c.proc);
    }
  });
  const api = await ApiClient.connect({ controller: c.url, token: c.adminToken, caFingerprint: c.caFingerprint });
  t.teardown(() => api.close());
  await api.request('PUT', '/v1/policy', { text: POLICY_YAML, headers: { 'if-match': '"0"' } });

  const ca = await fetchPinnedCa(c.url, c.caFingerprint);
  for (const [name, httpVersion, lan] of [
    ['box-a', '2', '10.20.0.0/16'],
    ['box-b', '1.1', '10.60.0.0/16'],
  ] as const) {
    const jt = (await api.request<{ token: string }>('POST', '/v1/join-tokens', { json: { name } })).body;
    const parts = parseJoinToken(jt.token);
    t.equal(parts.caFingerprint, c.caFingerprint, 'the join token pins this controller');
    const rpc = createClient(
      AgentService,
      createConnectTransport({
        httpVersion,
        baseUrl: parts.controllerUrls[0]!.replace(/\/\/[^:/]+:/, '//127.0.0.1:'),
        nodeOptions: pinnedTlsOptions(ca, parts.caFingerprint),
      }),
    );
    const enrolled = await rpc.enroll({
      protocolVersion: PROTOCOL_VERSION,
      joinToken: parts.secret,
      name,
      publicKey: fakePublicKey(name),
      endpoint: '198.51.100.1:51820',
      advertisedSubnets: [lan],
      agentVersion: '0.1.0',
    });
    t.ok(enrolled.credential, `${name} enrolled over HTTP/${httpVersion}`);

    const ac = new AbortController();
    const configs = rpc.watchConfig(
      { protocolVersion: PROTOCOL_VERSION },
      { signal: ac.signal, headers: { authorization: `Bearer ${enrolled.credential}` } },
    );
    const stream = configs[Symbol.asyncIterator]();
    const first: IteratorResult<WatchConfigResponse, undefined> = await stream.next();
    t.equal(first.value?.msg.case, 'config', `${name} gets its config first`);

    const listed = (
      await api.request<{ agents: Array<{ name: string; isConnected: boolean; overlayAddress: string }> }>(
        'GET',
        '/v1/agents',
      )
    ).body.agents.find((a) => a.name === name);
    t.match(listed, { name, isConnected: true, overlayAddress: enrolled.overlayAddress });

    if (name === 'box-b') {
      await api.request('POST', `/v1/agents/${name}/revoke`);
      // Drain until the controller ends the stream (cleanly or with an error); a hang fails by timeout.
      const ended = await (async () => {
        try {
          for (let r = await stream.next(); !r.done; r = await stream.next()) {
            /* heartbeats */
          }
          return 'closed';
        } catch (e) {
          return `closed with ${(e as Error).message}`;
        }
      })();
      t.match(ended, /^closed/, 'revoking ends the stream');
      await t.rejects(
        rpc.report(
          { protocolVersion: PROTOCOL_VERSION },
          { headers: { authorization: `Bearer ${enrolled.credential}` } },
        ),
        /revoked|unauthenticated/i,
        'a revoked agent is refused at once',
      );
    }
    ac.abort();
  }
  const audit = (
    await api.request<{ entries: Array<{ action: string; actor: { name: string } }> }>('GET', '/v1/audit?limit=1000')
  ).body.entries.map((e) => e.action);
  t.ok(audit.includes('agent.revoke'), 'revoke audited');
  t.match((await api.request('GET', '/v1/audit/verify')).body, { isValid: true });
});
