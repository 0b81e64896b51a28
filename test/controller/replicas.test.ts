// Two controller processes on one real PostgreSQL database (loopback): each learns the other's
// writes through LISTEN/NOTIFY. A policy applied on A is served by B within 1 s and pushed by B to
// an agent streaming from B (the agent's real Connect client); an agent revoked on A leaves the
// config B pushes; one enrolled through B is in A's inventory.
import t from 'tap';
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { ChildController } from './child.js';
import { POLICY_YAML } from './harness.fixture.js';
import { enrolBox, startReplicas, streamConfigs, waitFor, type Api } from './replicas.fixture.js';

const peers = (c: AgentConfig | undefined) => (c?.peers ?? []).map((p) => p.name).sort();

t.test('a change made through one replica reaches the other and its agents', async (t) => {
  const { replicas, apis } = await startReplicas(t, `xl_replicas_${process.pid}`);
  const [a, b] = replicas as [ChildController, ChildController];
  const [apiA, apiB] = apis as [Api, Api];
  t.equal(b.caFingerprint, a.caFingerprint, 'one CA: the replicas present the same fingerprint');

  // box-a enrols through A, box-b through B.
  const enrol = (api: Api, c: ChildController, name: string, endpoint: string, subnet: string) =>
    enrolBox(t, api, { name, urls: [c.url], caFingerprint: a.caFingerprint, endpoint, subnets: [subnet] });
  await enrol(apiA, a, 'box-a', '192.0.2.1:51820', '10.20.0.0/16');
  const clientB = await enrol(apiB, b, 'box-b', '192.0.2.2:51820', '10.60.0.0/16');
  const names = async (api: Api) =>
    (await api.request<{ agents: { name: string }[] }>('GET', '/v1/agents')).body.agents.map((x) => x.name).sort();
  t.same(await names(apiA), ['box-a', 'box-b'], 'A lists the agent enrolled through B');

  // box-b streams from B.
  const { configs, watch } = streamConfigs(clientB, ['10.60.0.0/16'], { endpoint: '192.0.2.2:51820' });
  t.teardown(() => watch.stop());
  await waitFor('box-b first config', () => (configs.length > 0 ? true : undefined));
  t.same(peers(configs.at(-1)), [], 'no policy yet: box-b has no peers');

  // The leader (A, started first) knows box-b's stream to B, though box-b has never reported: B
  // publishes its streams (controller/store/stream-store.ts).
  type Detail = { agent: { isConnected: boolean }; evaluatedBy?: { isThisReplica: boolean } };
  // Until an evaluation has box-b in it, the detail is a 404.
  const boxBSeenByA = async () =>
    (await apiA.request<Detail>('GET', '/v1/health/agents/box-b').catch(() => undefined))?.body;
  const seen = await waitFor('the leader seeing box-b stream from B', async () => {
    const d = await boxBSeenByA();
    return d?.agent.isConnected ? d : undefined;
  });
  t.equal(seen.evaluatedBy?.isThisReplica, true, 'A leads: the evaluation is its own');

  // Policy applied on A: served by B and pushed by B to box-b.
  const started = Date.now();
  const put = await apiA.request<{ version: number }>('PUT', '/v1/policy', {
    text: POLICY_YAML,
    headers: { 'if-match': '"0"' },
  });
  t.equal(put.body.version, 1);
  const servedMs = await waitFor(
    'B serving version 1',
    async () => {
      const r = await apiB.request<{ version: number }>('GET', '/v1/policy');
      return r.body.version === 1 ? Date.now() - started : undefined;
    },
    1000,
  );
  const pushedMs = await waitFor(
    'B pushing the new config to box-b',
    () => (peers(configs.at(-1)).includes('box-a') ? Date.now() - started : undefined),
    1000,
  );
  t.pass(`policy PUT on A: served by B after ${servedMs} ms, box-b's new config from B after ${pushedMs} ms`);
  const cfg = configs.at(-1)!;
  t.ok(
    cfg.peers.find((p) => p.name === 'box-a')?.endpoint === '192.0.2.1:51820',
    'the peer carries the endpoint box-a announced through A',
  );

  // Revoked on A: B's next config for box-b has no box-a.
  const before = configs.length;
  await apiA.request('POST', '/v1/agents/box-a/revoke');
  await waitFor(
    'box-b losing box-a',
    () => (configs.length > before && peers(configs.at(-1)).length === 0 ? true : undefined),
    2000,
  );
  t.pass('an agent revoked on A leaves the config B pushes');
  t.equal(
    (
      await apiB.request<{ agents: { name: string; revokedAtMs: number | null }[] }>('GET', '/v1/agents')
    ).body.agents.find((x) => x.name === 'box-a')?.revokedAtMs !== null,
    true,
    'B lists box-a as revoked',
  );

  // box-b's stream to B ends: the leader knows within a publish and an evaluation (1 s + 5 s), not
  // when box-b's reports would have stopped.
  await watch.stop();
  const endedAt = Date.now();
  await waitFor('the leader seeing box-b stream no more', async () =>
    (await boxBSeenByA())?.agent.isConnected === false ? true : undefined,
  );
  t.pass(`the leader saw box-b's stream to B end after ${Date.now() - endedAt} ms`);
});
