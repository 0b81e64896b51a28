// Crash consistency: a controller on SQLite takes a stream of writes (join tokens, API tokens,
// policy versions) from several concurrent clients and is killed with SIGKILL mid-stream. After a
// restart every write that was acknowledged before the kill is there, and the audit chain is whole.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../../cli/commands/api.js';
import { POLICY_YAML } from './harness.fixture.js';
import { startChildController, waitExit } from './child.js';

t.test('SIGKILL mid-stream loses no acknowledged write', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-crash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await startChildController(dir);
  t.teardown(() => {
    if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  });
  const api = await ApiClient.connect({
    controller: c.url,
    token: c.adminToken,
    caFingerprint: c.caFingerprint,
    timeoutMs: 10_000,
  });

  const ackedJoin = new Set<string>();
  const ackedTokens = new Set<string>();
  let ackedPolicyVersion = 0;
  let isKilled = false;
  let n = 0;

  const joinWriter = async (w: number) => {
    while (!isKilled) {
      try {
        const r = await api.request<{ id: string }>('POST', '/v1/join-tokens', { json: { name: `w${w}-${n++}` } });
        ackedJoin.add(r.body.id);
      } catch {
        if (isKilled) return;
      }
    }
  };
  const tokenWriter = async () => {
    while (!isKilled) {
      try {
        const r = await api.request<{ id: string }>('POST', '/v1/tokens', {
          json: { name: `t${n++}`, role: 'auditor' },
        });
        ackedTokens.add(r.body.id);
      } catch {
        if (isKilled) return;
      }
    }
  };
  const policyWriter = async () => {
    for (let v = 0; !isKilled; v++) {
      try {
        const r = await api.request<{ version: number }>('PUT', '/v1/policy', {
          text: `${POLICY_YAML}# revision ${v}\n`,
          headers: { 'if-match': `"${ackedPolicyVersion}"` },
        });
        ackedPolicyVersion = r.body.version;
      } catch {
        if (isKilled) return;
      }
    }
  };
  const writers = [joinWriter(1), joinWriter(2), joinWriter(3), tokenWriter(), policyWriter()];

  // Kill once a good number of writes have been acknowledged, while requests are in flight.
  while (ackedJoin.size + ackedTokens.size + ackedPolicyVersion < 60) await new Promise((r) => setTimeout(r, 20));
  c.proc.kill('SIGKILL');
  isKilled = true;
  await waitExit(c.proc);
  await Promise.all(writers);
  api.close();
  t.equal(c.proc.signalCode, 'SIGKILL');
  t.ok(
    ackedJoin.size > 0 && ackedTokens.size > 0 && ackedPolicyVersion > 0,
    `writes acknowledged before the kill: ${ackedJoin.size} join tokens, ${ackedTokens.size} API tokens, policy v${ackedPolicyVersion}`,
  );

  const c2 = await startChildController(dir);
  t.teardown(() => {
    if (c2.proc.exitCode === null) c2.proc.kill('SIGKILL');
  });
  const api2 = await ApiClient.connect({ controller: c2.url, token: c2.adminToken, caFingerprint: c2.caFingerprint });
  const joinIds = new Set(
    (await api2.request<{ joinTokens: Array<{ id: string }> }>('GET', '/v1/join-tokens')).body.joinTokens.map(
      (j) => j.id,
    ),
  );
  const tokenIds = new Set(
    (await api2.request<{ tokens: Array<{ id: string }> }>('GET', '/v1/tokens')).body.tokens.map((x) => x.id),
  );
  const policy = (await api2.request<{ version: number }>('GET', '/v1/policy')).body;
  t.same(
    [...ackedJoin].filter((id) => !joinIds.has(id)),
    [],
    'every acknowledged join token survived',
  );
  t.same(
    [...ackedTokens].filter((id) => !tokenIds.has(id)),
    [],
    'every acknowledged API token survived',
  );
  t.ok(policy.version >= ackedPolicyVersion, `policy version ${policy.version} >= acknowledged ${ackedPolicyVersion}`);
  t.match(
    (await api2.request('GET', '/v1/audit/verify')).body,
    { isValid: true },
    'the audit chain is whole after the crash',
  );
  api2.close();
  c2.proc.kill('SIGTERM');
  await waitExit(c2.proc);
});
