// GET /v1/trace over the REST API: the answer, and every wrong input as a 4xx naming the field.
import t from 'tap';
import { create } from '@bufbuild/protobuf';
import { AgentConfigSchema, PeerPathSchema, PeerSchema } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { makeHarness, POLICY_YAML } from './harness.fixture.js';

const YAML = { 'content-type': 'application/yaml', 'if-match': '"0"' };

t.test('GET /v1/trace', async (t) => {
  const h = await makeHarness();
  t.teardown(() => h.close());
  const url = '/v1/trace?from=10.60.1.10&to=10.20.1.10&port=443';

  const none = await h.call({ method: 'GET', url });
  t.equal(none.statusCode, 409, 'no policy yet');
  t.match(none.json(), { code: 'conflict', message: /there is no policy yet/ });

  t.equal((await h.call({ method: 'PUT', url: '/v1/policy', headers: YAML, payload: POLICY_YAML })).statusCode, 200);
  const unserved = await h.call({ method: 'GET', url, as: 'auditor' });
  t.equal(unserved.statusCode, 200, 'an auditor may trace');
  t.match(unserved.json(), {
    policyVersion: 1,
    outcome: 'unserved',
    decision: 'allow',
    rule: 'care-records',
    from: { subnet: 'council', zone: 'psn', servedBy: null },
    path: null,
  });

  h.dist.served = { council: 'box-b', hospital: 'box-a' };
  h.dist.configs.set(
    'box-b',
    create(AgentConfigSchema, {
      agentName: 'box-b',
      peers: [
        create(PeerSchema, {
          name: 'box-a',
          endpoint: '[2001:db8::9]:51900',
          paths: [create(PeerPathSchema, { endpoint: '[2001:db8::9]:51900', relay: 'hub', underlay: 'psn-wan' })],
        }),
      ],
    }),
  );
  // Live: an auditor may not send traffic; a bad live value names the field; the boxes are asked in path order.
  const forbidden = await h.call({ method: 'GET', url: `${url}&live=true`, as: 'auditor' });
  t.equal(forbidden.statusCode, 403);
  t.match(forbidden.json(), { code: 'forbidden', message: /an auditor token may not send a live test flow/ });
  t.equal(h.dist.liveRequests.length, 0, 'and nothing was sent');
  const badLive = await h.call({ method: 'GET', url: `${url}&live=yes` });
  t.match(badLive.json(), { code: 'invalid_request', details: [{ path: 'query.live' }] });
  h.dist.liveAnswers.set('box-a', {
    verdict: 'admitted',
    rule: 'care-records',
    direction: 'inbound',
    packets: 2,
    bytes: 120,
    replyPackets: 2,
    replyBytes: 112,
    detail: 'admitted by rule "care-records" (inbound)',
  });
  const live = (await h.call({ method: 'GET', url: `${url}&live=true`, as: 'operator' })).json<{
    live: { ran: boolean; boxes: Array<{ agent: string; role: string; verdict: string }> };
  }>();
  t.same(
    live.live.boxes.map((b) => [b.agent, b.role, b.verdict]),
    [
      ['box-b', 'source', 'no-answer'],
      ['hub', 'relay', 'no-answer'],
      ['box-a', 'destination', 'admitted'],
    ],
  );
  t.match(h.dist.liveRequests[0]![0], {
    sourcePrefix: '10.60.0.0/16',
    target: '10.20.1.10',
    protocol: 'tcp',
    port: 443,
  });
  const anyProto = (
    await h.call({ method: 'GET', url: '/v1/trace?from=10.60.1.10&to=10.20.1.10&proto=any&live=true' })
  ).json<{
    live: { ran: boolean; reason: string };
  }>();
  t.match(anyProto.live, { ran: false, reason: /give --proto tcp, udp or icmp/ });
  const passes = (await h.call({ method: 'GET', url })).json<{ summary: string }>();
  t.match(passes, {
    outcome: 'passes',
    path: {
      kind: 'relay',
      from: 'box-b',
      to: 'box-a',
      relay: 'hub',
      standbyRelays: [],
      endpoint: '[2001:db8::9]:51900',
    },
    proto: 'tcp',
    port: 443,
  });
  t.match(passes.summary, /^passes: allowed by rule "care-records"; box-b -> box-a through relay hub/);
  t.match(passes, { from: { unconfirmed: null }, to: { unconfirmed: null } });
  // No box of hospital healthy to the controller: served on their own choice, and the trace says so.
  h.dist.unconfirmed = [{ subnet: 'hospital', candidates: ['box-a'], reason: 'box-a is unhealthy' }];
  const unconfirmed = (await h.call({ method: 'GET', url })).json<{ summary: string }>();
  t.match(unconfirmed, { outcome: 'passes', to: { servedBy: 'box-a', unconfirmed: 'box-a is unhealthy' } });
  t.match(
    unconfirmed.summary,
    /; unconfirmed: subnet hospital's boxes choose which serves it, none healthy to the controller \(box-a is unhealthy\)$/,
  );
  h.dist.unconfirmed = [];
  const denied = (
    await h.call({ method: 'GET', url: '/v1/trace?from=10.20.1.10&to=10.60.1.10&port=443' })
  ).json<unknown>();
  t.match(denied, { outcome: 'denied', decision: 'deny', path: null });
  t.match((await h.call({ method: 'GET', url: '/v1/trace?from=10.60.1.10&to=10.20.1.10&proto=icmp' })).json(), {
    outcome: 'denied',
    port: null,
  });

  const bad: Array<[string, string, RegExp]> = [
    ['from=10.60.1.10&to=10.20.1.10', 'query.port', /query\.port is required with proto tcp/],
    ['from=10.60.1.10&to=10.20.1.10&port=0', 'query.port', /query\.port must be a port number from 1 to 65535/],
    ['from=10.60.1.10&to=10.20.1.10&port=443x', 'query.port', /query\.port must be a port number/],
    ['from=10.60.1.10&to=10.20.1.10&proto=icmp&port=3', 'query.port', /does not apply to proto icmp/],
    [
      'from=10.60.1.10&to=10.20.1.10&proto=sctp&port=3',
      'query.proto',
      /query\.proto must be one of tcp, udp, icmp, any/,
    ],
    ['from=council&to=10.20.1.10&port=443', 'query.from', /query\.from must be an IP address/],
    ['from=10.60.1.10&to=10.20.1.999&port=443', 'query.to', /query\.to must be an IP address/],
    ['from=fd00::1&to=10.20.1.10&port=443', 'query', /a flow cannot mix IPv6 and IPv4/],
    ['to=10.20.1.10&port=443', 'query', /from/],
  ];
  for (const [query, path, message] of bad) {
    const r = await h.call({ method: 'GET', url: `/v1/trace?${query}` });
    t.equal(r.statusCode, 400, query);
    t.match(
      r.json(),
      { code: 'invalid_request', message, details: [{ path: new RegExp(`^${path.replace('.', '\\.')}`) }] },
      query,
    );
  }
  t.equal((await h.call({ method: 'GET', url, as: null })).statusCode, 401);
});
