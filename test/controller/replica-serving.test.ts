// The leader's failover decision reaches the agents of the other replica, across real processes:
// gw-1 and gw-2 both serve "records" (gw-1 first); gw-1 streams from A (the leader), box-c from B.
// When gw-1's stream ends and it stays silent, A judges it unhealthy, stores and announces the
// serving change, and B's next config for box-c puts gw-2 first among the candidates for "records".
import t from 'tap';
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { ChildController } from './child.js';
import { enrolBox, startReplicas, streamConfigs, waitFor, type Api } from './replicas.fixture.js';

// Reports every second, silent after 3: a box without stream or report is unhealthy 3 s later.
const SETTINGS = { 'health-interval-seconds': 0.5, 'report-interval-seconds': 1, 'silent-intervals': 3 };

const POLICY = `version: 1
zones: { n3: {}, psn: {} }
agents:
  gw-1: { zones: [n3] }
  gw-2: { zones: [n3] }
  box-c: { zones: [psn] }
subnets:
  records: { cidr: 10.20.0.0/16, zone: n3, via: [gw-1, gw-2] }
  council: { cidr: 10.60.0.0/16, zone: psn, via: [box-c] }
rules:
  - { name: care, from: council, to: records, ports: [tcp/443] }
`;

/** The box box-c sends "records" to first: the head of its serving group's candidates (the box
 *  picks the first it sees alive; the controller orders them, unhealthy last). */
const recordsVia = (c: AgentConfig | undefined) =>
  c?.servingGroups.find((g) => g.prefixes.includes('10.20.0.0/16'))?.candidates.join(',');

t.test("the leader's failover decision reaches the other replica's agents", async (t) => {
  const { replicas, apis } = await startReplicas(t, `xl_serving_${process.pid}`, SETTINGS);
  const [a, b] = replicas as [ChildController, ChildController];
  const [apiA, apiB] = apis as [Api, Api];
  const box = async (api: Api, c: ChildController, name: string, subnet: string) => {
    const client = await enrolBox(t, api, { name, urls: [c.url], caFingerprint: c.caFingerprint, subnets: [subnet] });
    return streamConfigs(client, [subnet]);
  };
  const gw1 = await box(apiA, a, 'gw-1', '10.20.0.0/16');
  const gw2 = await box(apiB, b, 'gw-2', '10.20.0.0/16');
  const boxC = await box(apiB, b, 'box-c', '10.60.0.0/16');
  t.teardown(() => Promise.all([gw1.watch.stop(), gw2.watch.stop(), boxC.watch.stop()]));
  await apiA.request('PUT', '/v1/policy', { text: POLICY, headers: { 'if-match': '"0"' } });

  await waitFor("box-c's candidates for records, gw-1 first", () =>
    recordsVia(boxC.configs.at(-1)) === 'gw-1,gw-2' ? true : undefined,
  );
  const leader = (await apiB.request<{ evaluatedBy?: { isThisReplica: boolean } }>('GET', '/v1/health')).body;
  t.equal(leader.evaluatedBy?.isThisReplica, false, 'B follows: A evaluates');

  await gw1.watch.stop();
  const stoppedAt = Date.now();
  await waitFor(
    'B putting gw-2 first for box-c',
    () => (recordsVia(boxC.configs.at(-1)) === 'gw-2,gw-1' ? true : undefined),
    15_000,
  );
  t.pass(
    `B put gw-2 first in box-c's candidates ${Date.now() - stoppedAt} ms after gw-1's stream to A ended (silent after 3 s)`,
  );
  // A stores the evaluation's events in their own write; B may have the new config first (one
  // fresh-clone CI read B's history the moment it did and found no event yet). Wait for it.
  const recordedAt = await waitFor(
    "gw-1 no longer serving in B's history",
    async () => {
      const history = (
        await apiB.request<{ events: Array<{ subject: string; to: string | null }> }>(
          'GET',
          '/v1/health/history?limit=1000',
        )
      ).body.events;
      return history.some((e) => e.subject === 'serving:gw-1' && e.to === 'down') ? Date.now() : undefined;
    },
    5_000,
  ).catch(() => null);
  t.ok(recordedAt !== null, "B's history (stored by A) records gw-1 no longer serving");
  if (recordedAt !== null) t.comment(`in B's history ${recordedAt - stoppedAt} ms after gw-1's stream ended`);
});
