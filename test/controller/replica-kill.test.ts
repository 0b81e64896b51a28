// kill -9 of one of two replicas in the middle of writes from several clients through both: every
// write that got a 2xx is in the database afterwards, the audit chain verifies, and an agent that
// streamed from the dead replica streams from the other within 10 s with the same config content
// (nothing to change in its data plane).
import t from 'tap';
import { waitExit } from './child.js';
import { POLICY_YAML } from './harness.fixture.js';
import { enrolBox, startReplicas, streamConfigs, waitFor, type Api } from './replicas.fixture.js';

t.test('a replica killed mid-stream of writes: nothing acknowledged lost, its agent moves', async (t) => {
  const { replicas, apis } = await startReplicas(t, `xl_kill_${process.pid}`);
  const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
  const [apiA, apiB] = apis as [Api, Api];
  await apiA.request('PUT', '/v1/policy', { text: POLICY_YAML, headers: { 'if-match': '"0"' } });

  // box-a knows both URLs (as a join token made with `url:` listing both replicas carries them) and
  // streams from A; a shorter reconnect backoff than the default keeps the test short.
  const client = await enrolBox(t, apiA, {
    name: 'box-a',
    urls: [a.url, b.url],
    caFingerprint: a.caFingerprint,
    subnets: ['10.20.0.0/16'],
    backoff: { initialMs: 200, maxMs: 2000, jitter: 1 },
  });
  const connects: number[] = [];
  const { configs, watch } = streamConfigs(client, ['10.20.0.0/16'], {
    onState: (s) => {
      if (s.isConnected) connects.push(Date.now());
    },
  });
  t.teardown(() => watch.stop());
  await waitFor('box-a streaming from A', () => (configs.length > 0 ? true : undefined));

  const acked = new Set<string>();
  let ackedPolicy = 1;
  let isKilled = false;
  let isDone = false;
  let n = 0;
  const joinWriter = async (api: Api, diesWithA: boolean) => {
    while (!isDone && !(diesWithA && isKilled)) {
      try {
        const r = await api.request<{ id: string }>('POST', '/v1/join-tokens', { json: { name: `w-${n++}` } });
        acked.add(r.body.id);
      } catch {
        if (diesWithA && isKilled) return;
      }
    }
  };
  const policyWriter = async () => {
    for (let v = 0; !isKilled; v++) {
      try {
        const r = await apiA.request<{ version: number }>('PUT', '/v1/policy', {
          text: `${POLICY_YAML}# revision ${v}\n`,
          headers: { 'if-match': `"${ackedPolicy}"` },
        });
        ackedPolicy = r.body.version;
      } catch {
        if (isKilled) return;
      }
    }
  };
  const writers = [
    joinWriter(apiA, true),
    joinWriter(apiA, true),
    joinWriter(apiB, false),
    joinWriter(apiB, false),
    policyWriter(),
  ];
  while (acked.size + ackedPolicy < 60) await new Promise((r) => setTimeout(r, 20));
  const lastFromA = configs.at(-1)!;
  const killedAt = Date.now();
  a.proc.kill('SIGKILL');
  isKilled = true;
  await waitExit(a.proc);
  await new Promise((r) => setTimeout(r, 500)); // B keeps taking writes after A died
  isDone = true;
  await Promise.all(writers);

  const movedMs = await waitFor(
    'box-a streaming from B',
    () => {
      const at = connects.find((c) => c > killedAt);
      return at !== undefined ? at - killedAt : undefined;
    },
    10_000,
  );
  t.ok(movedMs <= 10_000, `box-a streams from B ${movedMs} ms after A was killed`);
  await new Promise((r) => setTimeout(r, 500)); // whatever B sends on connect has arrived
  // B sends a config only when it differs from the content hash the agent announces.
  t.equal(
    configs.at(-1)!.contentHash,
    lastFromA.contentHash,
    'the same config content from B: nothing changes on the box',
  );

  const ids = new Set(
    (await apiB.request<{ joinTokens: { id: string }[] }>('GET', '/v1/join-tokens')).body.joinTokens.map((j) => j.id),
  );
  t.same(
    [...acked].filter((id) => !ids.has(id)),
    [],
    `every acknowledged join token is there (${acked.size}, through both replicas)`,
  );
  const policy = (await apiB.request<{ version: number }>('GET', '/v1/policy')).body;
  t.ok(policy.version >= ackedPolicy, `policy version ${policy.version} >= acknowledged ${ackedPolicy}`);
  t.match((await apiB.request('GET', '/v1/audit/verify')).body, { isValid: true }, 'audit verify passes');
});
