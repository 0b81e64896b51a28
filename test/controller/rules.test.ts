// GET /v1/rules/stats over the REST API: the boxes' reported per-rule counters summed per rule,
// one agent's alone, and wrong input as a 4xx naming the field.
import t from 'tap';
import { create, toJsonString } from '@bufbuild/protobuf';
import {
  ReportRequestSchema,
  RuleCounterSchema,
  ZoneDropCounterSchema,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import { agentRecord } from '../../controller/store/store.contract.js';
import { makeHarness, POLICY_YAML } from './harness.fixture.js';

const YAML = { 'content-type': 'application/yaml', 'if-match': '"0"' };
const sys = {
  actor: { name: 'system', role: 'system' as const, address: '' },
  action: 'agent.enroll',
  target: 'agent',
  before: null,
  after: null,
};

const report = (
  counters: Array<[string, string, number, number, number]>,
  drops: Array<[string, string, string, number, number]> = [],
) =>
  toJsonString(
    ReportRequestSchema,
    create(ReportRequestSchema, {
      zoneDrops: drops.map(([direction, sourceZone, destinationZone, packets, bytes]) =>
        create(ZoneDropCounterSchema, {
          direction,
          sourceZone,
          destinationZone,
          packets: BigInt(packets),
          bytes: BigInt(bytes),
        }),
      ),
      ruleCounters: counters.map(([rule, direction, connections, packets, bytes]) =>
        create(RuleCounterSchema, {
          rule,
          direction,
          connections: BigInt(connections),
          packets: BigInt(packets),
          bytes: BigInt(bytes),
        }),
      ),
    }),
  );

t.test('GET /v1/rules/stats', async (t) => {
  const h = await makeHarness();
  t.teardown(() => h.close());

  const empty = await h.call({ method: 'GET', url: '/v1/rules/stats' });
  t.equal(empty.statusCode, 200, 'no policy, no agents: an empty answer, not an error');
  t.same(empty.json(), { policyVersion: null, agents: 0, rules: [], zoneDrops: [] });

  t.equal((await h.call({ method: 'PUT', url: '/v1/policy', headers: YAML, payload: POLICY_YAML })).statusCode, 200);
  await h.store.enrollAgent(
    agentRecord('box-b', {
      lastReportAtMs: 5000,
      lastReport: report(
        [['care-records', 'outbound', 3, 40, 9000]],
        [
          ['outbound', 'nhs', 'council', 7, 420],
          ['outbound', 'council', 'nhs', 0, 0],
        ],
      ),
    }),
    'none',
    sys,
  );
  await h.store.enrollAgent(
    agentRecord('box-a', {
      id: 'ag-a',
      credentialHash: 'c-a',
      overlayAddress: '100.64.0.3/10',
      lastReportAtMs: 6000,
      lastReport: report([['care-records', 'inbound', 3, 38, 8900]], [['outbound', 'nhs', 'council', 2, 120]]),
    }),
    'none',
    sys,
  );
  await h.store.enrollAgent(
    agentRecord('box-c', { id: 'ag-c', credentialHash: 'c-c', overlayAddress: '100.64.0.4/10' }),
    'none',
    sys,
  );

  const all = await h.call({ method: 'GET', url: '/v1/rules/stats', as: 'auditor' });
  t.equal(all.statusCode, 200, 'an auditor may read the counters');
  t.match(all.json(), {
    policyVersion: 1,
    agents: 2,
    rules: [
      {
        rule: 'care-records',
        isInPolicy: true,
        connections: 3,
        packets: 40,
        bytes: 9000,
        byDirection: { inbound: { connections: 3, packets: 38, bytes: 8900 } },
        boxes: [
          { agent: 'box-a', direction: 'inbound', reportedAt: '1970-01-01T00:00:06.000Z' },
          { agent: 'box-b', direction: 'outbound', connections: 3 },
        ],
      },
    ],
    zoneDrops: [
      {
        direction: 'outbound',
        sourceZone: 'nhs',
        destinationZone: 'council',
        packets: 9,
        bytes: 540,
        agents: ['box-a', 'box-b'],
      },
    ],
  });
  t.equal(all.json<{ zoneDrops: unknown[] }>().zoneDrops.length, 1, 'a pair with nothing dropped is left out');

  const one = (await h.call({ method: 'GET', url: '/v1/rules/stats?agent=box-a' })).json<{
    agents: number;
    rules: Array<{ connections: number; boxes: unknown[] }>;
  }>();
  t.equal(one.agents, 1);
  t.equal(one.rules[0]!.connections, 0, "box-a only admitted the rule's flows inbound");
  t.equal(one.rules[0]!.boxes.length, 1);

  const missing = await h.call({ method: 'GET', url: '/v1/rules/stats?agent=nobody' });
  t.equal(missing.statusCode, 404);
  t.match(missing.json(), { code: 'not_found', details: [{ path: 'query.agent' }] });
  const extra = await h.call({ method: 'GET', url: '/v1/rules/stats?rule=x' });
  t.equal(extra.statusCode, 400, 'an unknown query field is refused');
  t.equal((await h.call({ method: 'GET', url: '/v1/rules/stats', as: null })).statusCode, 401);
});
