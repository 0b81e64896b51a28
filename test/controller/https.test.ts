// The controller in its own process over real TLS: the CLI's API client pins the CA by fingerprint,
// the REST API and the first admin token work, a wrong pin is refused, SIGTERM shuts it down cleanly.
import t from 'tap';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient, UnreachableError } from '../../cli/commands/api.js';
import { POLICY_YAML } from './harness.fixture.js';
import { startChildController, waitExit } from './child.js';

t.test('HTTPS controller: pinned client, REST, shutdown', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-https-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await startChildController(dir);
  t.teardown(() => {
    if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
  });
  t.equal(statSync(join(dir, 'admin.token')).mode & 0o777, 0o600, 'admin.token is 0600');
  t.match(c.stderr(), /listening on https:\/\/127\.0\.0\.1:\d+/);
  t.match(c.stderr(), new RegExp(`CA fingerprint: ${c.caFingerprint}`));

  const api = await ApiClient.connect({ controller: c.url, token: c.adminToken, caFingerprint: c.caFingerprint });
  t.teardown(() => api.close());
  t.equal((await api.request('GET', '/healthz')).status, 200);
  const ready = await api.request('GET', '/readyz');
  t.equal(ready.status, 200);
  const put = await api.request<{ version: number }>('PUT', '/v1/policy', {
    text: POLICY_YAML,
    headers: { 'if-match': '"0"' },
  });
  t.equal(put.body.version, 1);
  t.equal(put.headers.etag, '"1"');
  await t.rejects(api.request('PUT', '/v1/policy', { text: POLICY_YAML, headers: { 'if-match': '"0"' } }), {
    code: 'precondition_failed',
    httpStatus: 412,
  });
  const jt = await api.request<{ token: string }>('POST', '/v1/join-tokens', { json: { name: 'box-a' } });
  t.match(jt.body.token, /^xljoin1\./);

  await t.rejects(
    ApiClient.connect({ controller: c.url, token: c.adminToken, caFingerprint: 'ab'.repeat(32) }),
    UnreachableError,
    'a wrong pin is refused',
  );
  const bad = await ApiClient.connect({ controller: c.url, token: 'xlapi_wrong', caFingerprint: c.caFingerprint });
  await t.rejects(bad.request('GET', '/v1/agents'), { code: 'unauthenticated', httpStatus: 401 });
  bad.close();

  c.proc.kill('SIGTERM');
  await waitExit(c.proc);
  t.equal(c.proc.exitCode, 0, 'SIGTERM shuts down cleanly');
  await t.rejects(
    ApiClient.connect({ controller: c.url, token: c.adminToken, caFingerprint: c.caFingerprint }),
    UnreachableError,
  );
});
