// Work that runs once among replicas on one PostgreSQL database: only the leader (advisory lock)
// evaluates health, and stores each evaluation with its history; the other replicas serve that.
// When the leader is killed with SIGKILL another replica evaluates within 10 s, continuing from the
// stored evaluation: the history read from any replica has no gap and no transition twice. Writes
// made concurrently through both replicas leave one audit chain that verifies.
import t, { type Test } from 'tap';
import type { HealthEvent } from '../../controller/health/types.js';
import type { EvaluatedBy } from '../../controller/health/shared.js';
import { waitExit, type ChildController } from './child.js';
import { enrolBox, startReplicas, waitFor, type Api } from './replicas.fixture.js';

type Health = { atMs: number; evaluatedBy?: EvaluatedBy };
// Reports every second, silent after 3: a box enrolled and never connected goes unknown -> down
// 3 s after its enrolment.
const SETTINGS = { 'health-interval-seconds': 0.5, 'report-interval-seconds': 1, 'silent-intervals': 3 };
const SILENT_MS = 3000;

/** GET /v1/health: the evaluation, or the error code (503 unavailable before one). */
async function health(api: Api): Promise<Health | { code: string }> {
  try {
    return (await api.request<Health>('GET', '/v1/health')).body;
  } catch (e) {
    return { code: (e as { code?: string }).code ?? String(e) };
  }
}

async function history(api: Api): Promise<HealthEvent[]> {
  return (await api.request<{ events: HealthEvent[] }>('GET', '/v1/health/history?limit=10000')).body.events;
}

/** Enrols `name` through `c` (a box that then never connects); returns when it was enrolled. */
async function enrol(t: Test, api: Api, c: ChildController, name: string): Promise<number> {
  await enrolBox(t, api, { name, urls: [c.url], caFingerprint: c.caFingerprint });
  return (await api.request<{ enrolledAtMs: number }>('GET', `/v1/agents/${name}`)).body.enrolledAtMs;
}

/** What is wrong with a history: per subject each event starts where the previous one ended
 *  (no gap), changes the state (no ok -> ok) and no event is there twice. */
function historyProblems(events: HealthEvent[]): string[] {
  const problems: string[] = [];
  const last = new Map<string, HealthEvent>();
  const seen = new Set<string>();
  for (const e of events) {
    const key = JSON.stringify([e.subject, e.from, e.to, e.atMs]);
    if (seen.has(key)) problems.push(`twice: ${key}`);
    seen.add(key);
    if (e.from === e.to) problems.push(`no change: ${key}`);
    // Serving health starts healthy unrecorded (monitor.ts records flips only): its first is from ok.
    const prev = last.get(e.subject);
    if (prev ? prev.to !== e.from : e.from !== (e.kind === 'serving' ? 'ok' : null))
      problems.push(`gap: ${e.subject} was ${prev?.to ?? 'absent'}, next event from ${e.from} at ${e.atMs}`);
    last.set(e.subject, e);
  }
  return problems;
}

t.test('leader killed: another replica evaluates within 10 s; followers serve the leader', async (t) => {
  const { replicas, apis } = await startReplicas(t, `xl_leader_${process.pid}`, SETTINGS);
  const [a] = replicas;
  const [apiA, apiB] = apis as [Api, Api];

  const first = await waitFor('A (started first: leader) to evaluate', async () => {
    const h = await health(apiA);
    return 'atMs' in h ? h : undefined;
  });
  t.equal(first.evaluatedBy?.isThisReplica, true, 'A evaluates');
  const leaderId = first.evaluatedBy!.replica;
  await enrol(t, apiA, a!, 'box-x');
  // B has had several retries (every 1.5 s) to take the lock while A holds it.
  await new Promise((r) => setTimeout(r, 3000));
  const onB = await health(apiB);
  t.match(onB, { evaluatedBy: { replica: leaderId, isThisReplica: false } }, "B answers 200 with A's evaluation");
  t.ok('atMs' in onB && Date.now() - onB.atMs < 2000, 'and a recent one (A evaluates every 0.5 s)');
  const detail = (await apiB.request<Health & { agent: { name: string } }>('GET', '/v1/health/agents/box-x')).body;
  t.match(detail, { agent: { name: 'box-x' }, evaluatedBy: { replica: leaderId } }, 'so does one agent on B');
  const [histA, histB] = [await history(apiA), await history(apiB)];
  const shared = histB.filter((e) => e.atMs <= (histA.at(-1)?.atMs ?? 0));
  t.same(shared, histA.slice(0, shared.length), 'the history read from B is the one A wrote');

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
      return 'atMs' in h && h.atMs >= killedAt && h.evaluatedBy?.isThisReplica ? Date.now() - killedAt : undefined;
    },
    10_000,
  );
  t.ok(took <= 10_000, `B evaluated health ${took} ms after the leader was killed`);
  await new Promise((r) => setTimeout(r, 1500)); // a few evaluations by B
  t.same(historyProblems(await history(apiB)), [], 'history across the change: no gap, no duplicate');

  const verify = (await apiB.request<{ isValid: boolean; count: number }>('GET', '/v1/audit/verify')).body;
  t.equal(verify.isValid, true, `audit verify passes (${verify.count} entries written by two replicas)`);
  t.ok(verify.count >= 42, 'every write is in the chain (admin token, box-x token and enrolment, 40 tokens)');
});

t.test('a change while no replica leads is recorded once, by the next leader, at its time', async (t) => {
  const { replicas, apis } = await startReplicas(t, `xl_gap_${process.pid}`, SETTINGS);
  const [a, b] = replicas as [ChildController, ChildController];
  const [apiA, apiB] = apis as [Api, Api];
  await waitFor('A to evaluate', async () => ('atMs' in (await health(apiA)) ? true : undefined));
  const enrolledAt = await enrol(t, apiA, a, 'box-x');
  const isUnknown = (e: HealthEvent) => e.subject === 'agent:box-x' && e.to === 'unknown';
  await waitFor('A to record box-x (unknown: just enrolled)', async () =>
    (await history(apiA)).some(isUnknown) ? true : undefined,
  );

  // B paused, A killed: nobody leads while box-x goes down (3 s after its enrolment).
  b.proc.kill('SIGSTOP');
  t.teardown(() => void b.proc.kill('SIGCONT'));
  const killedAt = Date.now();
  a.proc.kill('SIGKILL');
  await waitExit(a.proc);
  t.ok(killedAt < enrolledAt + SILENT_MS, 'A died before box-x went down');
  await new Promise((r) => setTimeout(r, enrolledAt + SILENT_MS + 1000 - Date.now()));
  const resumedAt = Date.now();
  b.proc.kill('SIGCONT');
  // B's own evaluation, not the stored one it took over (that one is marked as its own too, at A's time).
  let seenEvaluationAtMs = 0;
  const took = await waitFor(
    'B to lead and evaluate',
    async () => {
      const h = await health(apiB);
      if (!('atMs' in h) || !h.evaluatedBy?.isThisReplica || h.atMs < resumedAt) return undefined;
      seenEvaluationAtMs = h.atMs;
      return Date.now() - resumedAt;
    },
    10_000,
  );
  t.ok(took <= 10_000, `B evaluated ${took} ms after it could (${resumedAt - killedAt} ms with no leader)`);
  await new Promise((r) => setTimeout(r, 1500));

  const events = await history(apiB);
  t.same(historyProblems(events), [], 'no gap, no duplicate');
  const boxX = events.filter((e) => e.subject === 'agent:box-x');
  t.same(
    boxX.map((e) => [e.from, e.to]),
    [
      [null, 'unknown'],
      ['unknown', 'down'],
    ],
    'box-x: appeared unknown (by A), went down once (by B)',
  );
  const down = boxX[1]!;
  t.ok(
    down.atMs >= enrolledAt + SILENT_MS && down.atMs >= killedAt && down.atMs <= seenEvaluationAtMs,
    `down at ${down.atMs - enrolledAt} ms after enrolment: after it happened, at B's first evaluation`,
  );
  t.equal(events.filter((e) => e.from === null && e.subject === 'overall').length, 1, 'overall appeared once');
});
