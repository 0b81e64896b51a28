// `crosslink policy check` / `whatif` handlers, with an in-memory file and captured output.
import t from 'tap';
import { runPolicyCheck, runPolicyWhatif, type PolicyCliIo } from './policy-local.js';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const leeds = readFileSync(join(root, 'examples', 'leeds.yaml'), 'utf8');

function io(files: Record<string, string>): PolicyCliIo & { stdout: string; stderr: string } {
  const o = {
    stdout: '',
    stderr: '',
    readFile: (p: string) => {
      const text = files[p];
      if (text === undefined) throw new Error(`ENOENT: no such file, open '${p}'`);
      return text;
    },
    out: (s: string) => {
      o.stdout += s;
    },
    err: (s: string) => {
      o.stderr += s;
    },
  };
  return o;
}

t.test('check: valid file prints the summary, exit 0', async (t) => {
  const x = io({ 'leeds.yaml': leeds });
  t.equal(runPolicyCheck({ file: 'leeds.yaml', json: false, minPrefixLength: 8 }, x), 0);
  t.match(
    x.stdout,
    /leeds\.yaml: valid\n {2}agents 7, subnets 8, groups 3, rules 7, peer links 10\n {2}tests 11 passed, 0 failed\n/,
  );
  t.equal(x.stderr, '');
});

t.test('check: every error as FILE:LINE: path: message, exit 1', async (t) => {
  const x = io({
    'bad.yaml': 'version: 1\nzones: { n3: {} }\nsubnets:\n  a: { cidr: 10.0.0.5/24, zone: n4, via: x }\n',
  });
  t.equal(runPolicyCheck({ file: 'bad.yaml', json: false, minPrefixLength: 8 }, x), 1);
  t.equal(
    x.stderr,
    [
      'bad.yaml:4: subnets.a.cidr: "10.0.0.5/24" has host bits set; the network address is 10.0.0.0/24',
      'bad.yaml:4: subnets.a.zone: unknown zone "n4" (did you mean "n3"?)',
      'bad.yaml: invalid: 2 errors',
      '',
    ].join('\n'),
  );
});

t.test('check: failing tests, exit 1; JSON output', async (t) => {
  const x = io({ 'l.yaml': leeds.replace('port: 22\n    expect: deny', 'port: 22\n    expect: allow') });
  t.equal(runPolicyCheck({ file: 'l.yaml', json: false, minPrefixLength: 8 }, x), 1);
  t.match(x.stderr, /l\.yaml: test failed: tests\[1\]/);
  t.match(x.stdout, /tests 10 passed, 1 failed/);
  const y = io({ 'l.yaml': leeds });
  t.equal(runPolicyCheck({ file: 'l.yaml', json: true, minPrefixLength: 8 }, y), 0);
  t.match(JSON.parse(y.stdout), { ok: true, summary: { agents: 7 }, tests: { passed: 11, failed: 0 } });
});

t.test('check: unreadable file', async (t) => {
  const x = io({});
  t.equal(runPolicyCheck({ file: 'nope.yaml', json: false, minPrefixLength: 8 }, x), 1);
  t.match(x.stderr, /nope\.yaml: cannot read/);
});

t.test('whatif: allow and deny with the rule', async (t) => {
  const x = io({ 'l.yaml': leeds });
  t.equal(
    runPolicyWhatif(
      {
        file: 'l.yaml',
        from: '10.60.1.10',
        to: '10.20.1.10',
        port: 443,
        proto: 'tcp',
        json: false,
        minPrefixLength: 8,
      },
      x,
    ),
    0,
  );
  t.match(x.stdout, /^allow: 10\.60\.1\.10 -> 10\.20\.1\.10 tcp\/443 \(rule social-care-to-care-records\)\n/);
  const y = io({ 'l.yaml': leeds });
  t.equal(
    runPolicyWhatif(
      { file: 'l.yaml', from: '10.60.1.10', to: '10.20.1.10', port: 22, proto: 'tcp', json: true, minPrefixLength: 8 },
      y,
    ),
    0,
  );
  t.match(JSON.parse(y.stdout), { decision: 'deny', rule: null });
  const z = io({ 'l.yaml': leeds });
  // A wrong option is a usage error (exit 2, docs/errors.md).
  t.equal(
    runPolicyWhatif(
      { file: 'l.yaml', from: 'nowhere', to: '10.20.1.10', port: 22, proto: 'tcp', json: false, minPrefixLength: 8 },
      z,
    ),
    2,
  );
  t.match(z.stderr, /neither an IP address nor a subnet/);
});

t.test('whatif: a flow that mixes IPv6 and IPv4 is refused, not answered', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    [
      'fd00:60:1::10',
      '10.20.1.10',
      /a flow cannot mix IPv6 and IPv4: from fd00:60:1::10 is IPv6, to 10\.20\.1\.10 is IPv4/,
    ],
    [
      '10.60.1.10',
      'fd00:20:1::10',
      /a flow cannot mix IPv4 and IPv6: from 10\.60\.1\.10 is IPv4, to fd00:20:1::10 is IPv6/,
    ],
    // lth-dns (10.20.2.0/28) has no IPv6 prefix.
    ['fd00:60:1::10', 'lth-dns', /fd00:60:1::10 is IPv6, and to subnet "lth-dns" has no IPv6 prefix/],
  ];
  for (const [from, to, message] of cases) {
    const x = io({ 'l.yaml': leeds });
    t.equal(
      runPolicyWhatif({ file: 'l.yaml', from, to, port: 443, proto: 'tcp', json: false, minPrefixLength: 8 }, x),
      2,
      `${from} -> ${to}: exit 2`,
    );
    t.match(x.stderr, message);
    t.equal(x.stdout, '', 'no answer printed');
  }
  const same = io({ 'l.yaml': leeds });
  t.equal(
    runPolicyWhatif(
      {
        file: 'l.yaml',
        from: 'fd00:60:1::10',
        to: 'fd00:20:1::10',
        port: 443,
        proto: 'tcp',
        json: false,
        minPrefixLength: 8,
      },
      same,
    ),
    0,
    'IPv6 to IPv6 is answered',
  );
  t.match(same.stdout, /^allow: /);
});

t.test('whatif: numeric options are checked', async (t) => {
  const cases: Array<[Partial<Parameters<typeof runPolicyWhatif>[0]>, RegExp]> = [
    [{ port: Number('abc') }, /--port must be a port number from 1 to 65535; got not a number/],
    [{ port: 99999 }, /--port must be a port number from 1 to 65535; got 99999/],
    [{ port: 0 }, /got 0/],
    [{ port: 44.5 }, /got 44\.5/],
    [{ port: undefined }, /--port is required with --proto tcp/],
    [{ proto: 'icmp', port: 3 }, /--port does not apply to --proto icmp/],
  ];
  for (const [over, message] of cases) {
    const x = io({ 'l.yaml': leeds });
    t.equal(
      runPolicyWhatif(
        {
          file: 'l.yaml',
          from: '10.60.1.10',
          to: '10.20.1.10',
          port: 443,
          proto: 'tcp',
          json: false,
          minPrefixLength: 8,
          ...over,
        },
        x,
      ),
      2,
      JSON.stringify(over),
    );
    t.match(x.stderr, message);
  }
});

t.test('check and whatif: --min-prefix-length must be a whole number from 0 to 128', async (t) => {
  for (const n of [Number('abc'), -5, 129, 8.5]) {
    const x = io({ 'l.yaml': leeds });
    t.equal(
      runPolicyCheck({ file: 'l.yaml', json: false, minPrefixLength: n }, x),
      2,
      `check --min-prefix-length ${n}`,
    );
    t.match(x.stderr, /^--min-prefix-length must be a whole number from 0 to 128; got /);
    const y = io({ 'l.yaml': leeds });
    t.equal(
      runPolicyWhatif(
        {
          file: 'l.yaml',
          from: '10.60.1.10',
          to: '10.20.1.10',
          port: 443,
          proto: 'tcp',
          json: false,
          minPrefixLength: n,
        },
        y,
      ),
      2,
      `whatif --min-prefix-length ${n}`,
    );
  }
});

t.test('-f - reads the policy from standard input (a real process)', async (t) => {
  const run = (args: string[], input: string) =>
    spawnSync(process.execPath, ['--import', 'tsx', join(root, 'cli', 'main.ts'), ...args], {
      input,
      encoding: 'utf8',
      timeout: 60_000,
    });
  const ok = run(['policy', 'check', '-f', '-'], leeds);
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /^<stdin>: valid\n/);
  const bad = run(['policy', 'check', '-f', '-'], 'version: 1\nrules:\n  - name: x\n    from: [nope]\n');
  t.equal(bad.status, 1);
  t.match(bad.stderr, /^<stdin>:4: rules\[0\]\.from\[0\]: unknown subnet or group "nope"/m);
  const w = run(['policy', 'whatif', '-f', '-', '--from', '10.60.1.10', '--to', '10.20.1.10', '--port', '443'], leeds);
  t.equal(w.status, 0, w.stderr);
  t.match(w.stdout, /^allow: /);
});
