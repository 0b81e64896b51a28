// The commands that talk to the controller's API (policy, agents, join-token, token, audit), against a
// real controller process over pinned TLS, with captured output.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { startChildController, waitExit } from '../../test/controller/child.js';
import { POLICY_YAML } from '../../test/controller/harness.fixture.js';
import { controllerCommand } from './controller.js';
import { agentsCommand } from './agents.js';
import { apiTokenCommand } from './api-tokens.js';
import { auditCommand } from './audit.js';
import type { RemoteIo } from './connection.js';
import { joinTokenCommand, parseDuration } from './join-tokens.js';
import { table } from './output.js';
import { registerPolicyCommand } from './policy.js';

interface Run {
  code: number;
  out: string;
  err: string;
}

async function cli(argv: string[], env: Record<string, string | undefined> = {}, ask?: RemoteIo['ask']): Promise<Run> {
  let out = '';
  let err = '';
  const io: RemoteIo = {
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
    readFile: (p) => readFileSync(p, 'utf8'),
    env,
    ...(ask ? { ask } : {}),
  };
  process.exitCode = 0;
  let isUsageError = false;
  try {
    // As cli/run.ts: yargs's global --version is off (the program's version is only asked at the top).
    await registerPolicyCommand(yargs(argv), { io })
      .command(agentsCommand(io))
      .command(joinTokenCommand(io))
      .command(apiTokenCommand(io))
      .command(auditCommand(io))
      .command(controllerCommand(io))
      .strict()
      .version(false)
      .fail((msg, e) => {
        throw e ?? new Error(msg);
      })
      .exitProcess(false)
      .parseAsync();
  } catch (e) {
    err += (e as Error).message;
    isUsageError = true;
  }
  const code = isUsageError ? 2 : Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { code, out, err };
}

t.test('helpers', async (t) => {
  t.equal(parseDuration('90s'), 90);
  t.equal(parseDuration('15m'), 900);
  t.equal(parseDuration('2h'), 7200);
  t.equal(parseDuration('7d'), 604800);
  t.equal(parseDuration('600'), 600);
  t.equal(parseDuration('soon'), null);
  t.equal(
    table(
      ['A', 'BB'],
      [
        ['x', null],
        ['long', 2],
      ],
    ),
    'A     BB\nx     -\nlong  2\n',
  );
});

t.test('controller config check', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-cfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.yaml');
  writeFileSync(good, `data-dir: ${dir}\nlisten: 127.0.0.1:9443\noverlay-cidr: 100.64.0.0/16\n`);
  const ok = await cli(['controller', 'config', 'check', '--config', good]);
  t.equal(ok.code, 0, ok.err);
  t.match(ok.out, /valid/);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(
    bad,
    `data-dir: ${dir}\nlisten: 127.0.0.1:9443\noverlay-cidrs: 100.64.0.0/16\nheartbeat-interval-seconds: 90\n`,
  );
  const r = await cli(['controller', 'config', 'check', '--config', bad]);
  t.equal(r.code, 2);
  t.match(r.err, /bad\.yaml:3: unknown setting "overlay-cidrs"/);
  const bad2 = join(dir, 'bad2.yaml');
  writeFileSync(bad2, `data-dir: ${dir}\nlisten: nowhere\nheartbeat-interval-seconds: 90\n`);
  const r2 = await cli(['controller', 'config', 'check', '--config', bad2]);
  t.equal(r2.code, 2);
  t.match(r2.err, /bad2\.yaml:2: listen:/);
  t.match(r2.err, /bad2\.yaml:3: heartbeat-interval-seconds: must be between 1 and 30/);
  const flagOverride = await cli(['controller', 'config', 'check', '--config', good, '--overlay-cidr', 'banana']);
  t.equal(flagOverride.code, 2, 'flags are validated too');
  t.match(flagOverride.err, /overlay-cidr/);
  const twoListens = await cli([
    'controller',
    'config',
    'check',
    '--config',
    good,
    '--listen',
    '127.0.0.1:9443',
    '--listen',
    '127.0.0.2:9443',
  ]);
  t.equal(twoListens.code, 0, twoListens.err);
  t.match(twoListens.out, /listen 127\.0\.0\.1:9443, 127\.0\.0\.2:9443/, '--listen is repeatable');
  const badSecond = await cli([
    'controller',
    'config',
    'check',
    '--config',
    good,
    '--listen',
    '127.0.0.1:9443',
    '--listen',
    'nowhere',
  ]);
  t.equal(badSecond.code, 2);
  t.match(badSecond.err, /listen\[1\]: "nowhere" is not HOST:PORT/, 'the bad one named with its index');
});

t.test('remote commands against a real controller', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await startChildController(join(dir, 'data'));
  t.teardown(async () => {
    c.proc.kill('SIGTERM');
    await waitExit(c.proc);
  });
  const conn = ['--controller', c.url, '--token', c.adminToken, '--ca-fingerprint', c.caFingerprint];
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, POLICY_YAML);
  const failing = join(dir, 'failing.yaml');
  writeFileSync(failing, POLICY_YAML.replace('expect: deny', 'expect: allow'));
  const invalid = join(dir, 'invalid.yaml');
  writeFileSync(invalid, 'version: 1\nrules:\n  - name: x\n    from: [nope]\n');

  // A controller on two networks: a URL this host cannot reach first, then the real one.
  const deadFirst = ['--controller', 'https://127.0.0.1:1', ...conn];
  const viaSecond = await cli(['agents', 'list', ...deadFirst]);
  t.equal(viaSecond.code, 0, `tries the next --controller URL: ${viaSecond.err}`);
  const noneAnswers = await cli([
    'agents',
    'list',
    ...conn.map((a) => (a.startsWith('https://') ? 'https://127.0.0.1:1' : a)),
  ]);
  t.equal(noneAnswers.code, 3, 'no URL answers: unreachable');
  t.match(noneAnswers.err, /cannot reach the controller securely at 127\.0\.0\.1:1/);

  const missing = await cli(['agents', 'list']);
  t.equal(missing.code, 2, 'no connection settings: usage error');
  t.match(missing.err, /missing --controller/);

  const dry = await cli(['policy', 'apply', '-f', file, '--dry-run', ...conn]);
  t.equal(dry.code, 0, dry.err);
  t.match(dry.out, /dry run: .* is valid, 2 tests passed; nothing applied/);
  // No box has enrolled: the policy-level change is shown all the same, with what nobody serves.
  t.match(dry.out, /^policy:\n {2}\+ zone n3: description NHS N3\n/);
  t.match(dry.out, /\n {2}\+ rule care-records: from council; to hospital; ports tcp\/443\n/);
  t.match(dry.out, /\nboxes: no config changes\n/);
  t.match(dry.out, /\nnot enrolled yet \(get their config when they enrol\): box-a, box-b\n/);
  t.match(dry.out, /\nunserved: council: .*\nunserved: hospital: /);
  t.equal((await cli(['policy', 'history', '--json', ...conn])).out.trim(), '[]', 'dry run applied nothing');

  const apply = await cli(['policy', 'apply', '-f', file, '-m', 'first', ...conn]);
  t.equal(apply.code, 0, apply.err);
  t.match(apply.out, /applied .* as policy version 1/);

  const tf = await cli(['policy', 'apply', '-f', failing, ...conn]);
  t.equal(tf.code, 1, 'failing tests refuse the apply');
  t.match(tf.err, /policy_tests_failed/);
  t.match(tf.err, /tests\[1\]: .*expected allow but got deny/);
  const inv = await cli(['policy', 'apply', '-f', invalid, ...conn]);
  t.equal(inv.code, 1);
  t.match(
    inv.err,
    /invalid\.yaml:4: rules\[0\]\.from\[0\]: unknown subnet or group "nope"/,
    'errors point into the file',
  );

  const get = await cli(['policy', 'get', ...conn]);
  t.equal(get.out, POLICY_YAML);
  t.match(JSON.parse((await cli(['policy', 'get', '--json', ...conn])).out), { version: 1 });
  t.match(JSON.parse((await cli(['policy', 'get', '--json', '--policy-version', '1', ...conn])).out), {
    version: 1,
    document: POLICY_YAML,
  });
  const byVersion = await cli(['policy', 'get', '--version', '1', ...conn]);
  t.equal(byVersion.out, POLICY_YAML, 'policy get --version 1 prints policy version 1 (not the program version)');
  const badVersion = await cli(['policy', 'get', '--version', 'x', ...conn]);
  t.equal(badVersion.code, 2, 'a version that is not a number: usage error');
  t.match(badVersion.err, /--policy-version must be a version number \(1, 2, \.\.\.\); got not a number/);
  const same = await cli(['policy', 'apply', '-f', file, ...conn]);
  t.equal(same.code, 0, same.err);
  t.match(
    same.out,
    /^unchanged: .*policy\.yaml is policy version 1 already; nothing written\n$/,
    'an unchanged file writes nothing',
  );
  const edited = join(dir, 'edited.yaml');
  writeFileSync(edited, `${POLICY_YAML}# reviewed\n`);
  t.equal((await cli(['policy', 'apply', '-f', edited, ...conn])).code, 0);
  // policy diff: versions of the history and files, in any mix.
  const d12 = await cli(['policy', 'diff', '1', '2', ...conn]);
  t.equal(d12.code, 0, `versions 1 and 2 mean the same (only a comment differs): ${d12.err}`);
  t.equal(d12.out, 'no change\n');
  const wider = join(dir, 'wider.yaml');
  writeFileSync(wider, POLICY_YAML.replace('ports: [tcp/443]', 'ports: [tcp/443, tcp/8443]'));
  const dv = await cli(['policy', 'diff', '1', wider, ...conn]);
  t.equal(dv.code, 1, 'different: exit 1, as diff');
  t.equal(dv.out, '~ rule care-records: ports tcp/443 -> tcp/443, tcp/8443\n');
  const files = await cli(['policy', 'diff', file, wider]);
  t.equal(files.code, 1, 'two files need no controller');
  t.equal(files.out, dv.out);
  const missingFile = await cli(['policy', 'diff', file, join(dir, 'nope.yaml')]);
  t.equal(missingFile.code, 2);
  t.match(missingFile.err, /nope\.yaml: cannot read/);
  const badDoc = await cli(['policy', 'diff', file, invalid]);
  t.equal(badDoc.code, 2);
  t.match(badDoc.err, /invalid\.yaml:4: rules\[0\]\.from\[0\]: unknown subnet or group "nope"/);
  t.equal(
    (await cli(['policy', 'diff', '99', file, ...conn])).code,
    1,
    'a version that does not exist: the controller refuses',
  );
  // Destructive commands ask at a terminal (io.ask), unless --yes; a script is not asked.
  const asked: string[] = [];
  const no = await cli(['policy', 'rollback', '1', ...conn], {}, async (q) => {
    asked.push(q);
    return false;
  });
  t.equal(no.code, 1, 'answered no: not done');
  t.match(no.err, /not done \(answer y, or pass --yes\)/);
  t.same(asked, ['Make policy version 1 current again?']);
  const never = async (): Promise<boolean> => {
    throw new Error('asked despite --yes');
  };
  t.equal(
    (await cli(['agents', 'revoke', 'ghost', '--yes', ...conn], {}, never)).code,
    1,
    '--yes: not asked (ghost: the controller refuses)',
  );
  t.match(
    (await cli(['agents', 'delete', 'ghost', ...conn], {}, async () => null)).err,
    /not_found/,
    'nobody to ask (a script): goes ahead',
  );
  const slow = await cli(['agents', 'list', '--timeout', 'abc', ...conn]);
  t.equal(slow.code, 2);
  t.match(slow.err, /--timeout must be a number of seconds above 0 and at most 3600; got not a number/);
  const hist = await cli(['policy', 'history', ...conn]);
  t.match(hist.out, /^VERSION\s+CREATED\s+BY\s+COMMENT\n1 .* admin\s+first\n2 /);
  const rb = await cli(['policy', 'rollback', '1', ...conn]);
  t.equal(rb.code, 0, rb.err);
  t.match(rb.out, /now policy version 3/);
  t.equal((await cli(['policy', 'rollback', '99', ...conn])).code, 1);

  // Environment instead of flags.
  const env = { CROSSLINK_CONTROLLER: c.url, CROSSLINK_TOKEN: c.adminToken, CROSSLINK_CA_FINGERPRINT: c.caFingerprint };
  const jt = await cli(['join-token', 'create', '--name', 'box-a', '--ttl', '2h', '--reusable'], env);
  t.equal(jt.code, 0, jt.err);
  t.match(jt.out, /^xljoin1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/);
  t.match(jt.err, /reusable, expires/);
  const jtList = JSON.parse((await cli(['join-token', 'list', '--json'], env)).out) as Array<{
    id: string;
    state: string;
  }>;
  t.equal(jtList.length, 1);
  t.equal((await cli(['join-token', 'revoke', jtList[0]!.id], env)).code, 0);
  t.match((await cli(['join-token', 'list'], env)).out, /revoked/);
  t.equal((await cli(['join-token', 'create', '--name', 'box-a', '--ttl', 'soon'], env)).code, 2);

  const tok = await cli(['token', 'create', '--role', 'auditor', '--name', 'aud', ...conn]);
  t.equal(tok.code, 0, tok.err);
  const audToken = tok.out.trim();
  const audConn = ['--controller', c.url, '--token', audToken, '--ca-fingerprint', c.caFingerprint];
  const forbidden = await cli(['token', 'create', '--role', 'admin', '--name', 'x', ...audConn]);
  t.equal(forbidden.code, 1);
  t.match(forbidden.err, /forbidden/);
  t.match((await cli(['token', 'list', ...audConn])).out, /aud\s+auditor\s+active/);
  const badRole = await cli(['token', 'create', '--role', 'root', '--name', 'x', ...conn]);
  t.equal(badRole.code, 2, `bad role is a usage error: ${JSON.stringify(badRole)}`);

  const agents = await cli(['agents', 'list', ...conn]);
  t.equal(agents.code, 0);
  t.match(agents.out, /^NAME\s+STATE/);
  t.equal((await cli(['agents', 'show', 'ghost', ...conn])).code, 1);
  t.equal((await cli(['agents', 'revoke', 'ghost', ...conn])).code, 1);

  const longTtl = await cli(['join-token', 'create', '--name', 'box-x', '--ttl', '31d', ...conn]);
  t.equal(longTtl.code, 2, 'a ttl the controller would refuse is a usage error here');
  t.match(longTtl.err, /--ttl 31d is out of range: a join token lives from 1m to 30d/);
  const audit = await cli(['audit', 'list', ...audConn]);
  t.equal(audit.code, 0);
  t.match(audit.out, /policy\.put/);
  t.match(audit.out, /join_token\.revoke/);
  for (const [flag, value, message] of [
    ['--limit', '0', /--limit must be a whole number from 1 to 1000; got 0/],
    ['--limit', 'abc', /got not a number/],
    ['--after-id', '-1', /--after-id must be an entry id/],
  ] as const) {
    const r = await cli(['audit', 'list', flag, value, ...audConn]);
    t.equal(r.code, 2, `audit list ${flag} ${value}: usage error`);
    t.match(r.err, message);
  }
  const verify = await cli(['audit', 'verify', ...audConn]);
  t.equal(verify.code, 0);
  t.match(verify.out, /audit log intact: \d+ entries/);

  const unreachable = await cli([
    'agents',
    'list',
    '--controller',
    'https://127.0.0.1:1',
    '--token',
    'x',
    '--ca-fingerprint',
    c.caFingerprint,
  ]);
  t.equal(unreachable.code, 3);
  const wrongPin = await cli([
    'agents',
    'list',
    '--controller',
    c.url,
    '--token',
    c.adminToken,
    '--ca-fingerprint',
    'cd'.repeat(32),
  ]);
  t.equal(wrongPin.code, 3);
  t.match(wrongPin.err, /pinned CA/);
  const badPin = await cli([
    'agents',
    'list',
    '--controller',
    c.url,
    '--token',
    c.adminToken,
    '--ca-fingerprint',
    'xyz',
  ]);
  t.equal(badPin.code, 2);
});
