// Work that runs once among replicas on one PostgreSQL database: only the leader (advisory lock)
// evaluates health; when it is killed with SIGKILL another replica evaluates within 10 s. Writes
// made concurrently through both replicas leave one audit chain that verifies.
import t from 'tap';
import { waitExit } from './child.js';
import { startReplicas, waitFor, type Api } from './replicas.fixture.js';

/** GET /v1/health: the snapshot's evaluation time, or the error code (503 unavailable before one). */
async function health(api: Api): Promise<{ atMs: number } | { code: string }> {
  try {
    return { atMs: (await api.request<{ atMs: number }>('GET', '/v1/health')).body.atMs };
  } catch (e) {
    return { code: (e as { code?: string }).code ?? String(e) };
  }
}

t.test('leader killed: another replica evaluates health within 10 s; the audit chain stays one', async (t) => {
  const { replicas, apis } = await startReplicas(t, `xl_leader_${process.pid}`, { 'health-interval-seconds': 0.5 });
  const [a] = replicas;
  const [apiA, apiB] = apis as [Api, Api];

  await waitFor('A (started first: leader) to evaluate', async () => {
    const h = await health(apiA);
    return 'atMs' in h ? h : undefined;
  });
  // B has had several retries (every 1.5 s) to take the lock while A holds it.
  await new Promise((r) => setTimeout(r, 3000));
  t.same(await health(apiB), { code: 'unavailable' }, 'B, not the leader, does not evaluate health');

  // Writes through both replicas at once: the audit chain must stay one chain.
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < 20; i++)
    for (const api of [apiA, apiB])
      writes.push(api.request('POST', '/v1/join-tokens', { json: { name: `box-${writes.length}` } }));
  await Promise.all(writes);

  const killedAt = Date.now();
  a!.proc.kill('SIGKILL');
  await waitExit(a!.proc);
  const took = await waitFor(
    'B to evaluate health after the leader died',
    async () => {
      const h = await health(apiB);
      return 'atMs' in h && h.atMs >= killedAt ? Date.now() - killedAt : undefined;
    },
    10_000,
  );
  t.ok(took <= 10_000, `B evaluated health ${took} ms after the leader was killed`);

  const verify = (await apiB.request<{ isValid: boolean; count: number }>('GET', '/v1/audit/verify')).body;
  t.equal(verify.isValid, true, `audit verify passes (${verify.count} entries written by two replicas)`);
  t.ok(verify.count >= 41, 'every write is in the chain (first admin token + 40 join tokens)');
});
