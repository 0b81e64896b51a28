// PostgreSQL restarted under two replicas: while it is down a write is refused with 503
// `unavailable` (no stack trace); once it is back both replicas write again, and their change
// listeners reconnect: a policy applied through B afterwards reaches an agent streaming from A.
// Starts its own server (a restart needs one the test owns).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { ApiError } from '../../cli/commands/api.js';
import { POLICY_YAML } from './harness.fixture.js';
import { enrolBox, startReplicas, streamConfigs, waitFor, type Api } from './replicas.fixture.js';

function pgCtl(port: string, action: 'stop' | 'start') {
  const bin = readdirSync('/usr/lib/postgresql').sort().at(-1)!;
  const dir = `/tmp/crosslink-pg-${port}`;
  const args =
    action === 'stop'
      ? ['-D', `${dir}/data`, '-m', 'fast', '-w', 'stop']
      : [
          '-D',
          `${dir}/data`,
          '-l',
          `${dir}/server.log`,
          '-w',
          '-o',
          `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir}`,
          'start',
        ];
  execFileSync('runuser', ['-u', 'postgres', '--', `/usr/lib/postgresql/${bin}/bin/pg_ctl`, ...args], {
    stdio: 'ignore',
    timeout: 60_000,
  });
}

t.test('PostgreSQL restarted: 503 unavailable meanwhile, then both replicas carry on', async (t) => {
  delete process.env.CROSSLINK_TEST_POSTGRES_URL; // this test restarts the server: it must own it
  const { replicas, apis, database } = await startReplicas(t, `xl_restart_${process.pid}`);
  const [a] = replicas;
  const [apiA, apiB] = apis as [Api, Api];
  const port = new URL(database).port;

  // box-a enrols and streams from A.
  const client = await enrolBox(t, apiA, {
    name: 'box-a',
    urls: [a!.url],
    caFingerprint: a!.caFingerprint,
    subnets: ['10.20.0.0/16'],
  });
  const { configs, watch } = streamConfigs(client, ['10.20.0.0/16']);
  t.teardown(() => watch.stop());
  await waitFor('box-a first config', () => (configs.length > 0 ? true : undefined));

  pgCtl(port, 'stop');
  let restarted = false;
  t.teardown(() => {
    if (!restarted) pgCtl(port, 'start');
  });
  const err = await apiB.request('POST', '/v1/join-tokens', { json: { name: 'box-x' } }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof ApiError, 'the write is refused');
  t.match(err, { status: 503, code: 'unavailable', message: /cannot reach its database; retry in 2 seconds/ });
  t.notMatch(String((err as Error).message), /\n\s+at /, 'no stack trace');

  pgCtl(port, 'start');
  restarted = true;
  const backMs = Date.now();
  await waitFor(
    'A writing again',
    () =>
      apiA.request('POST', '/v1/join-tokens', { json: { name: 'box-y' } }).then(
        () => true,
        () => undefined,
      ),
    15_000,
  );
  // B's policy reaches box-a through A's reconnected change listener.
  const before = configs.length;
  await apiB.request('PUT', '/v1/policy', { text: POLICY_YAML, headers: { 'if-match': '"0"' } });
  await waitFor(
    'box-a receiving the policy applied through B',
    () => (configs.length > before ? true : undefined),
    10_000,
  );
  t.pass(`after the restart: writes and change notices flow again (${Date.now() - backMs} ms after it was back)`);
});

t.test('PostgreSQL restarted under load: every refusal a 503 unavailable, no acknowledged write lost', async (t) => {
  const { apis, database, replicas } = await startReplicas(t, `xl_restart_load_${process.pid}`);
  const port = new URL(database).port;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  // Four clients write join tokens through both replicas as fast as they are answered.
  const acked: string[] = [];
  const refusals = new Map<string, number>();
  const stackTraces: string[] = [];
  let isWriting = true;
  const writer = async (w: number) => {
    for (let i = 0; isWriting; i++) {
      const name = `load-${w}-${i}`;
      try {
        await apis[w % apis.length]!.request('POST', '/v1/join-tokens', { json: { name } });
        acked.push(name);
      } catch (e) {
        const key = e instanceof ApiError ? `${e.httpStatus} ${e.code}` : `no answer: ${(e as Error).message}`;
        refusals.set(key, (refusals.get(key) ?? 0) + 1);
        if (/\n\s+at /.test((e as Error).message)) stackTraces.push((e as Error).message);
        await sleep(50);
      }
    }
  };
  const writers = [0, 1, 2, 3].map(writer);
  await waitFor('writes acknowledged', () => (acked.length >= 20 ? true : undefined), 15_000);

  pgCtl(port, 'stop');
  let restarted = false;
  t.teardown(() => {
    if (!restarted) pgCtl(port, 'start');
  });
  await sleep(1500);
  pgCtl(port, 'start');
  restarted = true;
  const atRestart = acked.length;
  await waitFor('writes acknowledged again', () => (acked.length >= atRestart + 20 ? true : undefined), 20_000);
  isWriting = false;
  await Promise.all(writers);

  const listed = new Set(
    (await apis[1]!.request<{ joinTokens: Array<{ name: string }> }>('GET', '/v1/join-tokens')).body.joinTokens.map(
      (j) => j.name,
    ),
  );
  t.same(
    acked.filter((n) => !listed.has(n)),
    [],
    `all ${acked.length} acknowledged writes are there after the restart`,
  );
  t.ok(refusals.size > 0, `writes were refused during the outage: ${JSON.stringify(Object.fromEntries(refusals))}`);
  t.same(
    [...refusals.keys()].filter((k) => k !== '503 unavailable'),
    [],
    'every refusal was 503 unavailable',
  );
  t.same(stackTraces, [], 'no stack trace in any answer');
  for (const [i, r] of replicas.entries())
    t.ok(r.proc.exitCode === null && r.proc.signalCode === null, `replica ${i} is still running`, {
      stderr: r.proc.exitCode === null ? '' : r.stderr().slice(-2000),
    });
  const verify = (await apis[0]!.request<{ isValid: boolean; count: number }>('GET', '/v1/audit/verify')).body;
  t.ok(verify.isValid, `audit chain verifies over ${verify.count} entries`);
});
