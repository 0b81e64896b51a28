// The REST API through fastify's inject(): the happy paths, roles, and bad input on every endpoint
// (each answered with the right 4xx and code, with nothing written).
import t from 'tap';
import { parseJoinToken } from '../../lib/join-token.js';
import { agentRecord } from '../../controller/store/store.contract.js';
import { readStoredPolicy } from '../../controller/policy/stored.js';
import { VERSION } from '../../lib/version.js';
import { makeHarness, POLICY_YAML, type Harness } from './harness.fixture.js';

const YAML = { 'content-type': 'application/yaml' };
const json = (r: { body: string }) =>
  JSON.parse(r.body) as Record<string, unknown> & {
    code?: string;
    details?: Array<{ path?: string; line?: number; message: string }>;
  };

async function snapshot(h: Harness) {
  return {
    audit: await h.store.auditCount(),
    policy: (await h.store.currentPolicy())?.version ?? 0,
    agents: (await h.store.listAgents()).map((a) => [a.name, a.revokedAtMs]),
    joinTokens: (await h.store.listJoinTokens()).length,
    apiTokens: (await h.store.listApiTokens()).map((x) => [x.id, x.revokedAtMs]),
  };
}

t.test('health, readiness, CA and OpenAPI need no token', async (t) => {
  const h = await makeHarness();
  t.teardown(() => h.close());
  t.equal((await h.call({ method: 'GET', url: '/healthz', as: null })).statusCode, 200);
  t.equal((await h.call({ method: 'GET', url: '/readyz', as: null })).statusCode, 200);
  h.dist.isReadyNow = false;
  const notReady = await h.call({ method: 'GET', url: '/readyz', as: null });
  t.equal(notReady.statusCode, 503);
  t.match(json(notReady), { code: 'unavailable', details: [{ path: 'distribution' }] });
  const ca = await h.call({ method: 'GET', url: '/v1/ca', as: null });
  t.equal(ca.statusCode, 200);
  t.match(ca.body, /BEGIN CERTIFICATE/);
  const doc = json(await h.call({ method: 'GET', url: '/openapi.json', as: null })) as {
    openapi: string;
    paths: Record<string, unknown>;
  };
  t.equal(doc.openapi, '3.0.3');
  for (const p of [
    '/v1/policy',
    '/v1/policy/dry-run',
    '/v1/policy/versions',
    '/v1/policy/diff',
    '/v1/policy/rules',
    '/v1/policy/rollback',
    '/v1/agents',
    '/v1/agents/{name}',
    '/v1/agents/{name}/revoke',
    '/v1/join-tokens',
    '/v1/join-tokens/{id}/revoke',
    '/v1/tokens',
    '/v1/tokens/{id}/revoke',
    '/v1/audit',
    '/v1/audit/verify',
    '/healthz',
    '/readyz',
  ]) {
    t.ok(doc.paths[p], `openapi documents ${p}`);
  }
  const nf = await h.call({ method: 'GET', url: '/v1/nothing' });
  t.equal(nf.statusCode, 404);
  t.match(json(nf), { code: 'not_found' });
});

t.test('policy: put with If-Match, get with ETag, history, dry-run, rollback', async (t) => {
  const h = await makeHarness();
  t.teardown(() => h.close());

  const none = await h.call({ method: 'GET', url: '/v1/policy' });
  t.equal(none.statusCode, 404);
  t.equal(none.headers.etag, '"0"');

  const put = await h.call({
    method: 'PUT',
    url: '/v1/policy',
    headers: { ...YAML, 'if-match': '"0"' },
    payload: POLICY_YAML,
  });
  t.equal(put.statusCode, 200, put.body);
  t.equal(put.headers.etag, '"1"');
  t.match(json(put), { version: 1, createdBy: 'admin-1', isDistributed: true });
  t.equal(h.dist.policies.length, 1);
  t.equal(h.dist.policies[0]!.version, 1);

  const got = await h.call({ method: 'GET', url: '/v1/policy', as: 'auditor' });
  t.equal(got.statusCode, 200);
  t.equal(got.headers.etag, '"1"');
  t.equal(json(got).document, POLICY_YAML, 'the document is stored exactly as sent');
  t.notOk('validated' in json(got), 'the validated form stays inside');
  t.same(
    readStoredPolicy((await h.store.currentValidatedPolicy())!.validated, VERSION),
    h.dist.policies[0]!.policy,
    'stored beside it: the validated policy the distributor got, for the other replicas',
  );

  // The current policy's rules as a table (the distributor's current policy: the one put last).
  t.same(json(await h.call({ method: 'GET', url: '/v1/policy/rules', as: 'auditor' })), {
    version: 1,
    rules: [
      {
        name: 'care-records',
        from: ['council'],
        to: ['hospital'],
        ports: ['tcp/443'],
        ticket: '',
        description: '',
        notBefore: null,
        notAfter: null,
      },
    ],
  });

  // JSON wrapper with a comment; bare If-Match number accepted.
  const doc2 = POLICY_YAML.replace('tcp/443', 'tcp/8443').replace(/port: 443/g, 'port: 8443');
  const put2 = await h.call({
    method: 'PUT',
    url: '/v1/policy',
    headers: { 'if-match': '1' },
    payload: { document: doc2, comment: 'move to 8443' },
  });
  t.equal(put2.statusCode, 200, put2.body);
  t.match(json(put2), { version: 2, comment: 'move to 8443' });

  // The policy itself as a JSON object.
  const obj = {
    version: 1,
    zones: { n3: { description: 'x' } },
    agents: { 'box-a': { zones: ['n3'] } },
    subnets: { hospital: { cidr: '10.20.0.0/16', zone: 'n3', via: ['box-a'] } },
    rules: [],
  };
  const put3 = await h.call({ method: 'PUT', url: '/v1/policy', headers: { 'if-match': '"2"' }, payload: obj });
  t.equal(put3.statusCode, 200, put3.body);
  t.same(JSON.parse(json(await h.call({ method: 'GET', url: '/v1/policy' })).document as string), obj);

  const versions = json(await h.call({ method: 'GET', url: '/v1/policy/versions' })) as unknown as {
    versions: Array<{ version: number; comment: string }>;
  };
  t.same(
    versions.versions.map((v) => v.version),
    [1, 2, 3],
  );
  t.match(json(await h.call({ method: 'GET', url: '/v1/policy/versions/2' })), { version: 2, document: doc2 });
  t.equal((await h.call({ method: 'GET', url: '/v1/policy/versions/9' })).statusCode, 404);

  // The policy-level diff of two stored versions: what `crosslink policy diff 1 3` prints.
  const diff = await h.call({ method: 'GET', url: '/v1/policy/diff?from=1&to=3', as: 'auditor' });
  t.equal(diff.statusCode, 200, diff.body);
  const changes = (json(diff) as unknown as { changes: string[] }).changes;
  t.ok(changes.length > 0, 'versions 1 and 3 differ');
  t.same(json(await h.call({ method: 'GET', url: '/v1/policy/diff?from=3&to=3' })), { from: 3, to: 3, changes: [] });
  const missing = await h.call({ method: 'GET', url: '/v1/policy/diff?from=1&to=9' });
  t.equal(missing.statusCode, 404);
  t.match(json(missing), { code: 'not_found', details: [{ path: 'querystring.to' }] });
  const bad = await h.call({ method: 'GET', url: '/v1/policy/diff?from=x&to=1' });
  t.equal(bad.statusCode, 400);
  t.match(json(bad), { code: 'invalid_request', message: /from/ });

  t.same(json(await h.call({ method: 'GET', url: '/v1/policy/rules' })), { version: 3, rules: [] });

  const dry = await h.call({
    method: 'POST',
    url: '/v1/policy/dry-run',
    as: 'operator',
    headers: YAML,
    payload: POLICY_YAML,
  });
  t.equal(dry.statusCode, 200, dry.body);
  t.same(json(dry), {
    baseVersion: 3, // what the diffs are against: If-Match for applying exactly this
    testsRun: 2,
    // Policy-level: against the current version (the JSON document), whatever the boxes do.
    policy: [
      '~ zone n3: description x -> NHS N3',
      '+ zone psn: description council PSN',
      '+ agent box-b: zones psn',
      '+ subnet council: cidr 10.60.0.0/16; zone psn; via box-b',
      '+ rule care-records: from council; to hospital; ports tcp/443',
      '+ test 10.60.1.1 -> 10.20.1.1 tcp/443 expect allow',
      '+ test 10.20.1.1 -> 10.60.1.1 tcp/443 expect deny',
    ],
    agents: [{ agent: 'box-b', changes: ['+ rule care-records tcp/443'], isConnected: true }],
    notEnrolled: ['box-a', 'box-b'],
    unserved: [],
    paths: [],
  });

  const rb = await h.call({ method: 'POST', url: '/v1/policy/rollback', payload: { version: 1 } });
  t.equal(rb.statusCode, 200, rb.body);
  t.match(json(rb), { version: 4, comment: 'rollback to version 1' });
  t.equal(json(await h.call({ method: 'GET', url: '/v1/policy' })).document, POLICY_YAML);
  t.same(
    h.dist.policies.map((p) => p.version),
    [1, 2, 3, 4],
  );

  const entries = (await h.store.listAudit({})).filter((e) => e.action.startsWith('policy.'));
  t.same(
    entries.map((e) => e.action),
    ['policy.put', 'policy.put', 'policy.put', 'policy.rollback'],
  );
  t.match(entries[1], {
    actor: { name: 'admin-1', role: 'admin', address: '127.0.0.1' },
    before: { version: 1, document: POLICY_YAML },
    after: { version: 2, document: doc2, comment: 'move to 8443' },
  });
  t.match(entries[3], { after: { rolledBackTo: 1, version: 4 } });
});

t.test('an unchanged document writes nothing: no version, no audit entry, nothing pushed', async (t) => {
  const h = await makeHarness();
  t.teardown(() => h.close());
  t.equal(
    (await h.call({ method: 'PUT', url: '/v1/policy', headers: { ...YAML, 'if-match': '"0"' }, payload: POLICY_YAML }))
      .statusCode,
    200,
  );
  const before = await snapshot(h);
  const again = await h.call({
    method: 'PUT',
    url: '/v1/policy',
    headers: { 'if-match': '"1"' },
    payload: { document: POLICY_YAML, comment: 'again' },
  });
  t.equal(again.statusCode, 200, again.body);
  t.match(json(again), { version: 1, isUnchanged: true, isDistributed: true });
  t.equal(again.headers.etag, '"1"');
  t.same(await snapshot(h), before, 'no new version, no audit entry');
  t.same(
    h.dist.policies.map((p) => p.version),
    [1],
    'nothing pushed again',
  );
  // A stale If-Match is still refused, unchanged or not.
  t.equal(
    (await h.call({ method: 'PUT', url: '/v1/policy', headers: { ...YAML, 'if-match': '"0"' }, payload: POLICY_YAML }))
      .statusCode,
    412,
  );
  // Rolling back to the document that is current is unchanged too.
  const rb = await h.call({ method: 'POST', url: '/v1/policy/rollback', payload: { version: 1 } });
  t.equal(rb.statusCode, 200, rb.body);
  t.match(json(rb), { version: 1, isUnchanged: true });
  t.same(await snapshot(h), before);
  // One byte more is a change.
  const changed = await h.call({
    method: 'PUT',
    url: '/v1/policy',
    headers: { ...YAML, 'if-match': '"1"' },
    payload: `${POLICY_YAML}# reviewed\n`,
  });
  t.match(json(changed), { version: 2, isUnchanged: false });
});

t.test('policy errors: every validation error with its line; failing tests; stale and missing If-Match', async (t) => {
  const h = await makeHarness();
  t.teardown(() => h.close());
  t.equal(
    (await h.call({ method: 'PUT', url: '/v1/policy', headers: { ...YAML, 'if-match': '"0"' }, payload: POLICY_YAML }))
      .statusCode,
    200,
  );
  const before = await snapshot(h);

  const invalid = await h.call({
    method: 'PUT',
    url: '/v1/policy',
    headers: { ...YAML, 'if-match': '"1"' },
    payload: 'version: 1\nrules:\n  - name: x\n    from: [nope]\n',
  });
  t.equal(invalid.statusCode, 400);
  const ib = json(invalid);
  t.equal(ib.code, 'policy_invalid');
  t.ok(ib.details!.length >= 2, 'every error is listed');
  t.ok(
    ib.details!.some((d) => d.path === 'rules[0].from[0]' && d.line === 4),
    'errors carry path and line',
  );

  const syntax = await h.call({
    method: 'PUT',
    url: '/v1/policy',
    headers: { ...YAML, 'if-match': '"1"' },
    payload: 'version: 1\nfoo: [\n',
  });
  t.equal(syntax.statusCode, 400);
  t.match(json(syntax), { code: 'policy_invalid', details: [{ line: Number }] });

  const failing = POLICY_YAML.replace('expect: deny', 'expect: allow');
  const tf = await h.call({
    method: 'PUT',
    url: '/v1/policy',
    headers: { ...YAML, 'if-match': '"1"' },
    payload: failing,
  });
  t.equal(tf.statusCode, 400);
  t.match(json(tf), {
    code: 'policy_tests_failed',
    details: [{ path: 'tests[1]', message: /expected allow but got deny/ }],
  });
  const tfDry = await h.call({ method: 'POST', url: '/v1/policy/dry-run', headers: YAML, payload: failing });
  t.match(json(tfDry), { code: 'policy_tests_failed' });

  const stale = await h.call({
    method: 'PUT',
    url: '/v1/policy',
    headers: { ...YAML, 'if-match': '"0"' },
    payload: POLICY_YAML,
  });
  t.equal(stale.statusCode, 412);
  t.match(json(stale), { code: 'precondition_failed', message: /version 1/ });
  const missing = await h.call({ method: 'PUT', url: '/v1/policy', headers: YAML, payload: POLICY_YAML });
  t.equal(missing.statusCode, 428);
  t.match(json(missing), { code: 'precondition_required' });
  const staleRb = await h.call({
    method: 'POST',
    url: '/v1/policy/rollback',
    headers: { 'if-match': '"7"' },
    payload: { version: 1 },
  });
  t.equal(staleRb.statusCode, 412);

  t.same(await snapshot(h), before, 'nothing was written');
  t.equal(h.dist.policies.length, 1, 'nothing was distributed');
});

t.test('bad input on every endpoint: right 4xx and code, nothing written', async (t) => {
  const h = await makeHarness({ bodyLimitBytes: 64 * 1024 });
  t.teardown(() => h.close());
  t.equal(
    (await h.call({ method: 'PUT', url: '/v1/policy', headers: { ...YAML, 'if-match': '"0"' }, payload: POLICY_YAML }))
      .statusCode,
    200,
  );
  await h.store.enrollAgent(agentRecord('box-a'), 'none', {
    actor: { name: 'system', role: 'system', address: '' },
    action: 'agent.enroll',
    target: 'agent/box-a',
    before: null,
    after: null,
  });
  const jt = json(await h.call({ method: 'POST', url: '/v1/join-tokens', payload: { name: 'box-c' } }));
  const before = await snapshot(h);
  const big = 'x'.repeat(70 * 1024);
  const adminId = (await h.store.listApiTokens()).find((x) => x.role === 'admin')!.id;

  type Case = [label: string, opts: Parameters<Harness['call']>[0], status: number, code: string, path?: RegExp];
  const ep = (method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string) => ({ method, url });
  const cases: Case[] = [
    // authentication and roles
    ['no token', { ...ep('GET', '/v1/policy'), as: null }, 401, 'unauthenticated'],
    ['wrong token', { ...ep('GET', '/v1/agents'), bearer: 'Bearer xlapi_nope' }, 401, 'unauthenticated'],
    ['not bearer', { ...ep('GET', '/v1/agents'), bearer: 'Basic YWxpY2U6eA==' }, 401, 'unauthenticated'],
    [
      'operator writes policy',
      { ...ep('PUT', '/v1/policy'), as: 'operator', headers: { ...YAML, 'if-match': '"1"' }, payload: POLICY_YAML },
      403,
      'forbidden',
    ],
    [
      'operator rolls back',
      { ...ep('POST', '/v1/policy/rollback'), as: 'operator', payload: { version: 1 } },
      403,
      'forbidden',
    ],
    ['operator reads audit', { ...ep('GET', '/v1/audit'), as: 'operator' }, 403, 'forbidden'],
    [
      'operator makes API token',
      { ...ep('POST', '/v1/tokens'), as: 'operator', payload: { name: 'x', role: 'admin' } },
      403,
      'forbidden',
    ],
    [
      'auditor makes join token',
      { ...ep('POST', '/v1/join-tokens'), as: 'auditor', payload: { name: 'box-d' } },
      403,
      'forbidden',
    ],
    ['auditor revokes agent', { ...ep('POST', '/v1/agents/box-a/revoke'), as: 'auditor' }, 403, 'forbidden'],
    ['auditor deletes agent', { ...ep('DELETE', '/v1/agents/box-a'), as: 'auditor' }, 403, 'forbidden'],
    [
      'auditor dry-run',
      { ...ep('POST', '/v1/policy/dry-run'), as: 'auditor', headers: YAML, payload: POLICY_YAML },
      403,
      'forbidden',
    ],
    ['auditor revokes token', { ...ep('POST', `/v1/tokens/${adminId}/revoke`), as: 'auditor' }, 403, 'forbidden'],
    [
      'unauthenticated oversized body',
      { ...ep('PUT', '/v1/policy'), as: null, headers: YAML, payload: big },
      401,
      'unauthenticated',
    ],
    // policy
    [
      'policy malformed JSON',
      {
        ...ep('PUT', '/v1/policy'),
        headers: { 'content-type': 'application/json', 'if-match': '"1"' },
        payload: '{"document": ',
      },
      400,
      'invalid_request',
    ],
    [
      'policy JSON array',
      { ...ep('PUT', '/v1/policy'), headers: { 'if-match': '"1"' }, payload: [1, 2] },
      400,
      'invalid_request',
    ],
    [
      'policy document wrong type',
      { ...ep('PUT', '/v1/policy'), headers: { 'if-match': '"1"' }, payload: { document: 5 } },
      400,
      'invalid_request',
      /body\.document/,
    ],
    [
      'policy unknown wrapper field',
      { ...ep('PUT', '/v1/policy'), headers: { 'if-match': '"1"' }, payload: { document: POLICY_YAML, force: true } },
      400,
      'invalid_request',
      /body\.force/,
    ],
    [
      'policy unknown top-level key',
      { ...ep('PUT', '/v1/policy'), headers: { ...YAML, 'if-match': '"1"' }, payload: POLICY_YAML + 'colour: blue\n' },
      400,
      'policy_invalid',
    ],
    [
      'policy empty body',
      { ...ep('PUT', '/v1/policy'), headers: { ...YAML, 'if-match': '"1"' }, payload: '' },
      400,
      'invalid_request',
    ],
    [
      'policy oversized',
      { ...ep('PUT', '/v1/policy'), headers: { ...YAML, 'if-match': '"1"' }, payload: big },
      413,
      'payload_too_large',
    ],
    [
      'policy wrong media type',
      { ...ep('PUT', '/v1/policy'), headers: { 'content-type': 'text/html', 'if-match': '"1"' }, payload: '<p>' },
      415,
      'unsupported_media_type',
    ],
    [
      'policy garbage If-Match',
      { ...ep('PUT', '/v1/policy'), headers: { ...YAML, 'if-match': 'W/"abc"' }, payload: POLICY_YAML },
      400,
      'invalid_request',
    ],
    [
      'dry-run malformed JSON',
      { ...ep('POST', '/v1/policy/dry-run'), headers: { 'content-type': 'application/json' }, payload: '{' },
      400,
      'invalid_request',
    ],
    [
      'dry-run invalid policy',
      { ...ep('POST', '/v1/policy/dry-run'), headers: YAML, payload: 'version: 7\n' },
      400,
      'policy_invalid',
    ],
    [
      'dry-run oversized',
      { ...ep('POST', '/v1/policy/dry-run'), headers: YAML, payload: big },
      413,
      'payload_too_large',
    ],
    [
      'rollback wrong type',
      { ...ep('POST', '/v1/policy/rollback'), payload: { version: '1' } },
      400,
      'invalid_request',
      /body\.version/,
    ],
    [
      'rollback unknown field',
      { ...ep('POST', '/v1/policy/rollback'), payload: { version: 1, now: true } },
      400,
      'invalid_request',
      /body\.now/,
    ],
    [
      'rollback missing version',
      { ...ep('POST', '/v1/policy/rollback'), payload: {} },
      400,
      'invalid_request',
      /body\.version/,
    ],
    [
      'rollback malformed JSON',
      { ...ep('POST', '/v1/policy/rollback'), headers: { 'content-type': 'application/json' }, payload: '{"version":' },
      400,
      'invalid_request',
    ],
    ['rollback to nothing', { ...ep('POST', '/v1/policy/rollback'), payload: { version: 99 } }, 404, 'not_found'],
    [
      'rollback oversized',
      {
        ...ep('POST', '/v1/policy/rollback'),
        headers: { 'content-type': 'application/json' },
        payload: `{"version":1,"comment":"${big}"}`,
      },
      413,
      'payload_too_large',
    ],
    ['policy version not a number', { ...ep('GET', '/v1/policy/versions/abc') }, 400, 'invalid_request'],
    // agents
    ['agent bad name', { ...ep('GET', '/v1/agents/BAD_NAME') }, 400, 'invalid_request', /params\.name/],
    ['agent unknown', { ...ep('GET', '/v1/agents/ghost') }, 404, 'not_found'],
    ['revoke unknown agent', { ...ep('POST', '/v1/agents/ghost/revoke') }, 404, 'not_found'],
    ['delete unknown agent', { ...ep('DELETE', '/v1/agents/ghost') }, 404, 'not_found'],
    ['delete bad name', { ...ep('DELETE', '/v1/agents/a..b') }, 400, 'invalid_request'],
    // join tokens
    [
      'join token unknown field',
      { ...ep('POST', '/v1/join-tokens'), payload: { name: 'box-d', colour: 'red' } },
      400,
      'invalid_request',
      /body\.colour/,
    ],
    [
      'join token ttl as text',
      { ...ep('POST', '/v1/join-tokens'), payload: { name: 'box-d', ttlSeconds: '3600' } },
      400,
      'invalid_request',
      /body\.ttlSeconds/,
    ],
    [
      'join token ttl too short',
      { ...ep('POST', '/v1/join-tokens'), payload: { name: 'box-d', ttlSeconds: 5 } },
      400,
      'invalid_request',
    ],
    [
      'join token bad name',
      { ...ep('POST', '/v1/join-tokens'), payload: { name: 'Box D' } },
      400,
      'invalid_request',
      /body\.name/,
    ],
    ['join token no body', { ...ep('POST', '/v1/join-tokens') }, 400, 'invalid_request'],
    [
      'join token malformed JSON',
      { ...ep('POST', '/v1/join-tokens'), headers: { 'content-type': 'application/json' }, payload: '{"name":"x"' },
      400,
      'invalid_request',
    ],
    [
      'join token as YAML',
      { ...ep('POST', '/v1/join-tokens'), headers: YAML, payload: 'name: box-d' },
      415,
      'unsupported_media_type',
    ],
    [
      'join token as text/plain',
      { ...ep('POST', '/v1/join-tokens'), headers: { 'content-type': 'text/plain' }, payload: '{"name":"box-d"}' },
      415,
      'unsupported_media_type',
    ],
    [
      'join token as a form',
      {
        ...ep('POST', '/v1/join-tokens'),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'name=box-d',
      },
      415,
      'unsupported_media_type',
    ],
    [
      'policy as text/plain',
      {
        ...ep('PUT', '/v1/policy'),
        headers: { 'content-type': 'text/plain', 'if-match': '"1"' },
        payload: POLICY_YAML,
      },
      415,
      'unsupported_media_type',
    ],
    // methods
    ['DELETE on the policy', { ...ep('DELETE', '/v1/policy') }, 405, 'method_not_allowed'],
    ['PUT on an agent', { ...ep('PUT', '/v1/agents/box-a'), payload: {} }, 405, 'method_not_allowed'],
    ['no such path', { ...ep('GET', '/v1/nothing') }, 404, 'not_found'],
    [
      'join token oversized',
      {
        ...ep('POST', '/v1/join-tokens'),
        headers: { 'content-type': 'application/json' },
        payload: `{"name":"${big}"}`,
      },
      413,
      'payload_too_large',
    ],
    ['join token revoke unknown', { ...ep('POST', '/v1/join-tokens/jt_nothing/revoke') }, 404, 'not_found'],
    ['join token revoke bad id', { ...ep('POST', '/v1/join-tokens/a%20b/revoke') }, 400, 'invalid_request'],
    // API tokens
    [
      'API token bad role',
      { ...ep('POST', '/v1/tokens'), payload: { name: 'ci', role: 'root' } },
      400,
      'invalid_request',
      /body\.role/,
    ],
    [
      'API token unknown field',
      { ...ep('POST', '/v1/tokens'), payload: { name: 'ci', role: 'admin', ttl: 1 } },
      400,
      'invalid_request',
      /body\.ttl/,
    ],
    [
      'API token name wrong type',
      { ...ep('POST', '/v1/tokens'), payload: { name: 7, role: 'admin' } },
      400,
      'invalid_request',
      /body\.name/,
    ],
    [
      'API token duplicate live name',
      { ...ep('POST', '/v1/tokens'), payload: { name: 'operator-1', role: 'operator' } },
      409,
      'conflict',
    ],
    [
      'API token malformed JSON',
      { ...ep('POST', '/v1/tokens'), headers: { 'content-type': 'application/json' }, payload: 'nul' },
      400,
      'invalid_request',
    ],
    ['API token revoke unknown', { ...ep('POST', '/v1/tokens/tok_nothing/revoke') }, 404, 'not_found'],
    // audit
    [
      'audit limit not a number',
      { ...ep('GET', '/v1/audit?limit=lots') },
      400,
      'invalid_request',
      /querystring\.limit/,
    ],
    ['audit unknown query', { ...ep('GET', '/v1/audit?sort=desc') }, 400, 'invalid_request', /querystring\.sort/],
    [
      'audit limit 0 (was clamped to 1)',
      { ...ep('GET', '/v1/audit?limit=0') },
      400,
      'invalid_request',
      /querystring\.limit/,
    ],
    [
      'audit limit above 1000 (was clamped)',
      { ...ep('GET', '/v1/audit?limit=5000') },
      400,
      'invalid_request',
      /querystring\.limit/,
    ],
  ];
  for (const [label, opts, status, code, path] of cases) {
    const r = await h.call(opts);
    t.equal(r.statusCode, status, `${label}: status (${r.body.slice(0, 160)})`);
    const b = json(r);
    t.equal(b.code, code, `${label}: code`);
    t.type(b.message, 'string', `${label}: message`);
    t.ok(Array.isArray(b.details), `${label}: details`);
    if (path)
      t.ok(
        b.details!.some((d) => path.test(d.path ?? '')),
        `${label}: names the field (${JSON.stringify(b.details)})`,
      );
    t.notMatch(r.body, /at .*\.(ts|js):\d+/, `${label}: no stack trace`);
  }
  t.same(await snapshot(h), before, 'no bad request wrote anything');
  t.same(h.dist.changed, [], 'no bad request reached distribution');
  t.ok(jt.token);
});

t.test("messages in the CLI's and the docs' terms, not the schema's", async (t) => {
  const h = await makeHarness();
  t.teardown(() => h.close());
  const name = json(await h.call({ method: 'POST', url: '/v1/join-tokens', payload: { name: 'Box D' } }));
  t.match(name.message, 'body.name must be a name of lowercase letters, digits and "-", 1-63 characters');
  t.notMatch(name.message, /pattern|\^\[/, 'no regular expression');
  const ttl = json(
    await h.call({ method: 'POST', url: '/v1/join-tokens', payload: { name: 'box-d', ttlSeconds: 31 * 86_400 } }),
  );
  t.match(ttl.message, 'body.ttlSeconds must be at most 2592000 (30 days)');
  const role = json(
    await h.call({
      method: 'PUT',
      url: '/v1/policy',
      as: 'operator',
      headers: { ...YAML, 'if-match': '"0"' },
      payload: POLICY_YAML,
    }),
  );
  t.equal(role.message, 'an operator token may not change the policy (apply, rollback): that needs the admin role');
  const big = json(
    await h.call({
      method: 'POST',
      url: '/v1/join-tokens',
      headers: { 'content-type': 'application/json' },
      payload: `{"name":"${'x'.repeat(2 << 20)}"}`,
    }),
  );
  t.equal(big.message, "the request body is larger than the controller's limit of 1 MiB");
});

t.test('HTTP conventions: 401 says how to authenticate, 405 says which methods', async (t) => {
  const h = await makeHarness();
  t.teardown(() => h.close());
  const none = await h.call({ method: 'GET', url: '/v1/agents', as: null });
  t.equal(none.statusCode, 401);
  t.equal(none.headers['www-authenticate'], 'Bearer realm="crosslink"');
  const wrong = await h.call({ method: 'GET', url: '/v1/agents', bearer: 'Bearer xlapi_nope' });
  t.equal(wrong.headers['www-authenticate'], 'Bearer realm="crosslink", error="invalid_token"');
  const del = await h.call({ method: 'DELETE', url: '/v1/policy' });
  t.equal(del.statusCode, 405);
  t.equal(del.headers.allow, 'GET, HEAD, PUT');
  t.match(json(del).message, 'DELETE is not allowed on /v1/policy; it takes GET, HEAD, PUT');
  const agent = await h.call({ method: 'POST', url: '/v1/agents/box-a' });
  t.equal(agent.headers.allow, 'GET, HEAD, DELETE');
});

t.test('join tokens: shown once, parseable, listed without secret, revocable', async (t) => {
  const h = await makeHarness();
  t.teardown(() => h.close());
  const r = await h.call({
    method: 'POST',
    url: '/v1/join-tokens',
    as: 'operator',
    payload: { name: 'box-a', ttlSeconds: 7200, isReusable: true },
  });
  t.equal(r.statusCode, 201, r.body);
  const created = json(r) as { id: string; token: string; state: string; isReusable: boolean };
  const parts = parseJoinToken(created.token);
  t.same(
    { u: parts.controllerUrls[0], f: parts.caFingerprint },
    { u: 'https://controller.test:8443', f: 'ab'.repeat(32) },
  );
  t.match(created, { state: 'active', isReusable: true, name: 'box-a' });
  const list = await h.call({ method: 'GET', url: '/v1/join-tokens', as: 'auditor' });
  t.equal(list.statusCode, 200);
  t.notMatch(list.body, parts.secret, 'the secret is not listed');
  const stored = (await h.store.listJoinTokens())[0]!;
  t.notMatch(list.body, stored.secretHash, 'nor its hash');
  const audit = await h.call({ method: 'GET', url: '/v1/audit', as: 'auditor' });
  t.notMatch(audit.body, parts.secret, 'the audit log holds no secret');
  t.notMatch(audit.body, stored.secretHash, 'nor its hash');
  const rv = await h.call({ method: 'POST', url: `/v1/join-tokens/${created.id}/revoke`, as: 'operator' });
  t.equal(rv.statusCode, 200);
  t.match(json(rv), { state: 'revoked' });
  t.equal((await h.call({ method: 'POST', url: `/v1/join-tokens/${created.id}/revoke` })).statusCode, 409);
});

t.test('API tokens: create, use, revoke; last admin is kept', async (t) => {
  const h = await makeHarness();
  t.teardown(() => h.close());
  const r = await h.call({ method: 'POST', url: '/v1/tokens', payload: { name: 'ci-deploy', role: 'operator' } });
  t.equal(r.statusCode, 201, r.body);
  const created = json(r) as { id: string; token: string };
  t.match(created.token, /^xlapi_/);
  t.equal((await h.call({ method: 'GET', url: '/v1/agents', bearer: `Bearer ${created.token}` })).statusCode, 200);
  const list = await h.call({ method: 'GET', url: '/v1/tokens', as: 'auditor' });
  t.notMatch(list.body, created.token);
  t.equal((await h.call({ method: 'POST', url: `/v1/tokens/${created.id}/revoke` })).statusCode, 200);
  const refused = await h.call({ method: 'GET', url: '/v1/agents', bearer: `Bearer ${created.token}` });
  t.equal(refused.statusCode, 401, 'a revoked token is refused at once');
  const adminId = (await h.store.listApiTokens()).find((x) => x.role === 'admin')!.id;
  const last = await h.call({ method: 'POST', url: `/v1/tokens/${adminId}/revoke` });
  t.equal(last.statusCode, 409);
  t.match(json(last), { code: 'conflict', message: /last admin/ });
});

t.test('agents: list, show, revoke, delete; distribution told', async (t) => {
  const h = await makeHarness();
  t.teardown(() => h.close());
  const sys = {
    actor: { name: 'system', role: 'system' as const, address: '' },
    action: 'agent.enroll',
    target: 'x',
    before: null,
    after: null,
  };
  await h.store.enrollAgent(agentRecord('box-a', { lastReport: '{"generation":3}' }), 'none', sys);
  await h.store.enrollAgent(
    agentRecord('box-b', { id: 'ag-b', credentialHash: 'c-b', overlayAddress: '100.64.0.3/10' }),
    'none',
    sys,
  );
  const list = await h.call({ method: 'GET', url: '/v1/agents', as: 'auditor' });
  t.equal(list.statusCode, 200);
  const agents = (json(list) as unknown as { agents: Array<Record<string, unknown>> }).agents;
  t.same(
    agents.map((a) => [a.name, a.isConnected, a.served]),
    [
      ['box-a', true, ['hospital']],
      ['box-b', false, []],
    ],
  );
  t.same(
    agents.map((a) => a.unserved),
    [[], []],
    'nothing unserved',
  );
  // A subnet its box leaves unserved is named with that box, and only with it.
  h.dist.dryRunUnserved = [
    { subnet: 'council', reason: 'box-b does not advertise fd00:60::/64', isAwaitingEnrolment: false },
  ];
  const again = (
    json(await h.call({ method: 'GET', url: '/v1/agents' })) as unknown as { agents: Array<Record<string, unknown>> }
  ).agents;
  t.same(
    again.map((a) => [a.name, a.unserved]),
    [
      ['box-a', []],
      ['box-b', [{ subnet: 'council', reason: 'box-b does not advertise fd00:60::/64' }]],
    ],
  );
  h.dist.dryRunUnserved = [];
  t.notMatch(list.body, 'cred-box-a', 'credential hashes never leave the controller');
  const show = json(await h.call({ method: 'GET', url: '/v1/agents/box-a' }));
  t.same(show.lastReport, { generation: 3 });
  const rv = await h.call({ method: 'POST', url: '/v1/agents/box-a/revoke', as: 'operator' });
  t.equal(rv.statusCode, 200, rv.body);
  t.match(json(rv), { isRevoked: true });
  t.equal((await h.call({ method: 'POST', url: '/v1/agents/box-a/revoke' })).statusCode, 409);
  t.equal((await h.call({ method: 'DELETE', url: '/v1/agents/box-b', as: 'operator' })).statusCode, 204);
  t.same(h.dist.changed, [['box-a'], ['box-b']]);
  const actions = (await h.store.listAudit({})).map((e) => e.action);
  t.same(actions.slice(-2), ['agent.revoke', 'agent.delete']);
  t.notMatch(JSON.stringify(await h.store.listAudit({})), 'cred-box', 'audit entries hold no credential hash');
});

t.test('audit: list pages, verify detects tampering', async (t) => {
  const h = await makeHarness();
  t.teardown(() => h.close());
  for (const name of ['a1', 'a2', 'a3'])
    t.equal((await h.call({ method: 'POST', url: '/v1/join-tokens', payload: { name } })).statusCode, 201);
  const page = json(await h.call({ method: 'GET', url: '/v1/audit?limit=2', as: 'auditor' })) as unknown as {
    entries: Array<{ id: number; actor: unknown; target: string }>;
    nextAfterId: number;
  };
  t.same(
    page.entries.map((e) => e.id),
    [1, 2],
  );
  t.equal(page.nextAfterId, 2);
  t.match(page.entries[0], { actor: { name: 'admin-1', role: 'admin', address: '127.0.0.1' } });
  const rest = json(await h.call({ method: 'GET', url: '/v1/audit?afterId=2&limit=2' })) as unknown as {
    entries: unknown[];
    nextAfterId: null;
  };
  t.equal(rest.entries.length, 1);
  t.equal(rest.nextAfterId, null);
  t.same(json(await h.call({ method: 'GET', url: '/v1/audit/verify', as: 'auditor' })), {
    isValid: true,
    count: 3,
    lastHash: (await h.store.auditHead()).lastHash,
  });

  const { default: Database } = await import('better-sqlite3');
  const raw = new Database(h.dbPath);
  raw.prepare("update audit_log set target = 'join_token/forged' where id = 2").run([]);
  raw.close();
  const broken = json(await h.call({ method: 'GET', url: '/v1/audit/verify' }));
  t.match(broken, { isValid: false, brokenAtId: 2, reason: /changed/ });
});
