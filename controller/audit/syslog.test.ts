// The audit log as syslog: the message of one entry, and a real controller (runController) sending
// each new entry once, in order, to a UDP receiver; a bad --syslog names the setting.
import t from 'tap';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../../cli/commands/api.js';
import { silentLogger } from '../../lib/logger.js';
import { resolveSettings, runController } from '../main.js';
import { formatAuditSyslog } from './syslog.js';

t.test('one entry, one RFC 5424 message: facility log audit, notice, the actor and the chain hash', async (t) => {
  const text = formatAuditSyslog(
    {
      id: 7,
      atMs: Date.UTC(2026, 11, 5, 21, 0, 0, 250),
      actor: { name: 'alice', role: 'operator', address: '10.250.0.5' },
      action: 'policy.put',
      target: 'policy',
      before: { version: 3 },
      after: { version: 4 },
      hash: 'ab'.repeat(32),
      prevHash: 'cd'.repeat(32),
    },
    'ctl-1',
  );
  t.equal(
    text,
    `<109>1 2026-12-05T21:00:00.250Z ctl-1 crosslink-controller - policy.put [audit@32473 id="7" action="policy.put" target="policy" actor="alice" role="operator" address="10.250.0.5" hash="${'ab'.repeat(32)}"] alice (operator from 10.250.0.5): policy.put policy`,
  );
});

t.test('a controller with --syslog sends each new audit entry once, in order', async (t) => {
  const rx = createSocket('udp4');
  const got: string[] = [];
  rx.on('message', (m) => got.push(m.toString('utf8')));
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', r));
  t.teardown(() => rx.close());
  const dir = mkdtempSync(join(tmpdir(), 'xl-audit-syslog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await runController({
    settings: { 'data-dir': dir, listen: ['127.0.0.1:0'], syslog: `udp://127.0.0.1:${rx.address().port}` },
    log: silentLogger(),
    print: () => undefined,
    handleSignals: false,
  });
  t.teardown(() => c.close());
  const api = await ApiClient.connect({
    controller: c.url,
    token: readFileSync(join(dir, 'admin.token'), 'utf8').trim(),
    caFingerprint: c.caFingerprint,
  });
  for (const name of ['gp-a', 'gp-b']) {
    const r = await api.request('POST', '/v1/join-tokens', { json: { name } });
    t.equal(r.status, 201, `join token for ${name}`);
  }
  const deadline = Date.now() + 5000;
  while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.equal(got.length, 2, 'two entries, two messages (the entries from before the start are not resent)');
  t.match(
    got[0],
    /^<109>1 \S+ \S+ crosslink-controller - join_token\.create \[audit@32473 id="\d+" action="join_token\.create" target="join_token\/[^"]+" actor="admin" role="admin"/,
  );
  t.match(got[1], /target="join_token\/[^"]+"/);
  const ids = got.map((m) => Number(/ id="(\d+)"/.exec(m)![1]));
  t.ok(ids[1]! > ids[0]!, 'in the order of the log');
});

t.test('a --syslog that is not a syslog URL is refused, naming the setting', async (t) => {
  await t.rejects(resolveSettings({ 'data-dir': '/tmp/x', syslog: 'http://siem:514' }), {
    code: 'config_invalid',
    message: /^syslog: .*scheme must be udp, tcp or tls/,
  });
});
