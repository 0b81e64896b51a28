// dist/crosslink-agent.cjs: the agent commands (cli/agent-main.ts) bundled into one file by `make
// build`. The package's /usr/bin/crosslink runs it for `crosslink agent …`, the crosslink-agent unit
// included (test/deploy/deb.test.ts checks that on an installed box). Here, without root: it answers
// every agent command exactly as the full CLI (dist/cli/main.js) does, output and exit code; it
// runs on its own, with no node_modules next to it; and it carries nothing of the controller (the
// agent has no database: no better-sqlite3, kysely, pg, fastify).
import t from 'tap';
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bundle = join(repo, 'dist/crosslink-agent.cjs');
const full = join(repo, 'dist/cli/main.js');
const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node script ...args` with a clean environment (tap puts its loader in NODE_OPTIONS). */
function run(script: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [script, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', ...env },
      cwd: tmpdir(),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', rej);
    child.on('close', (code) => res({ code, stdout, stderr }));
  });
}

/** Every .js file under dir (the compiled tree the bundle is made from). */
function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? jsFiles(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : [],
  );
}

if (!existsSync(bundle) || !existsSync(full)) {
  t.fail(`${existsSync(full) ? bundle : full} is missing: run "make build"`);
} else {
  const tmp = mkdtempSync(join(tmpdir(), 'xl-agent-bundle-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const good = join(tmp, 'good.yaml');
  writeFileSync(good, 'name: leeds-gw\nadvertise: [10.20.1.0/24]\n');
  const bad = join(tmp, 'bad.yaml');
  writeFileSync(bad, 'name: leeds-gw\nlisten-port: nope\n');

  t.test('the bundle is not older than the compiled tree it is made from', async (t) => {
    const at = statSync(bundle).mtimeMs;
    const newer = jsFiles(join(repo, 'dist')).filter((f) => statSync(f).mtimeMs > at);
    t.same(newer, [], 'no compiled file is newer than dist/crosslink-agent.cjs (else: make build)');
  });

  t.test('agent commands answer as from the full CLI: stdout, stderr, exit code', async (t) => {
    const cases: { args: string[]; env?: Record<string, string> }[] = [
      { args: ['agent', '--help'] },
      { args: ['agent', '--help'], env: { LANG: 'de_DE.UTF-8' } },
      { args: ['agent'] },
      { args: ['agent', 'nope'] },
      { args: ['agent', '--version'] },
      { args: ['agent', 'run', '--help'] },
      { args: ['agent', 'run', '--wireguard', 'sometimes'] },
      { args: ['agent', 'status', '--help'] },
      { args: ['agent', 'status', '--bogus'] },
      { args: ['agent', 'status', '--status-listen', '127.0.0.1:1'] },
      { args: ['agent', 'status', '--config', bad] },
      { args: ['agent', 'down', '--help'] },
      { args: ['agent', 'config', '--help'] },
      { args: ['agent', 'config', 'check', '--help'] },
      { args: ['agent', 'config', 'check', '--config', good] },
      { args: ['agent', 'config', 'check', '--config', bad] },
      { args: ['agent', 'config', 'check', '--config', join(tmp, 'missing.yaml')] },
    ];
    for (const c of cases) {
      const [a, b] = await Promise.all([run(full, c.args, c.env), run(bundle, c.args, c.env)]);
      const what = `${
        c.env
          ? `${Object.entries(c.env)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')} `
          : ''
      }crosslink ${c.args.join(' ').replaceAll(tmp, '$TMP')}`;
      t.same(b, a, `${what}: exit ${a.code}, same output`);
    }
  });

  t.test('crosslink agent status --help from the bundle', async (t) => {
    const r = await run(bundle, ['agent', 'status', '--help']);
    t.equal(r.code, 0, 'exits 0');
    t.match(r.stdout, /^crosslink agent status\n\nShow the local agent status/);
    t.match(r.stdout, /--status-listen +Status endpoint of the agent/);
    t.match(r.stdout, /--json +Print the raw JSON/);
    t.equal(r.stderr, '');
  });

  t.test('the bundle runs on its own: no node_modules, version from package.json one level up', async (t) => {
    mkdirSync(join(tmp, 'lib/dist'), { recursive: true });
    copyFileSync(bundle, join(tmp, 'lib/dist/crosslink-agent.cjs'));
    copyFileSync(join(repo, 'package.json'), join(tmp, 'lib/package.json'));
    const v = await run(join(tmp, 'lib/dist/crosslink-agent.cjs'), ['agent', '--version']);
    t.same(v, { code: 0, stdout: `${version}\n`, stderr: '' }, `--version prints ${version}`);
    const c = await run(join(tmp, 'lib/dist/crosslink-agent.cjs'), ['agent', 'config', 'check', '--config', good]);
    t.equal(c.code, 0, 'config check runs (yaml, the agent config code)', { stderr: c.stderr });
    t.match(c.stdout, /good\.yaml: valid/);
  });

  t.test('nothing of the controller and no native module in the bundle', async (t) => {
    const text = readFileSync(bundle, 'utf8');
    const required = [...new Set([...text.matchAll(/\brequire\(["']([^"']+)["']\)/g)].map((m) => m[1]!))];
    const builtin = new Set(builtinModules);
    t.same(
      required.filter((m) => !builtin.has(m.replace(/^node:/, ''))),
      [],
      'it requires only Node built-ins: every npm dependency is inside',
    );
    const map = JSON.parse(readFileSync(`${bundle}.map`, 'utf8')) as { sources: string[] };
    t.ok(
      map.sources.some((s) => s.endsWith('agent/main.ts')),
      'the source map names the TypeScript sources (agent/main.ts)',
    );
    const forbidden = map.sources.filter((s) =>
      /(^|\/)controller\/|node_modules\/(better-sqlite3|bindings|kysely|pg|pg-[a-z-]+|fastify|@fastify\/[^/]+|@peculiar\/[^/]+)\//.test(
        s,
      ),
    );
    t.same(forbidden, [], 'no controller module, no better-sqlite3, kysely, pg, fastify or x509');
    t.ok(text.length < 4 * 1048576, `bundle size ${(text.length / 1048576).toFixed(2)} MiB`);
  });
}
