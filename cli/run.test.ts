// runCli's own answers: the program version, asked for at the top or after command words only.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Argv } from 'yargs';
import { runCli } from './run.js';
import { VERSION } from '../lib/version.js';

async function run(argv: string[]): Promise<{ out: string; code: number; policyVersion?: unknown }> {
  let out = '';
  let policyVersion: unknown;
  const write = process.stdout.write.bind(process.stdout);
  const writeErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = (s: string) => {
    out += s;
    return true;
  };
  process.stderr.write = () => true;
  process.exitCode = 0;
  try {
    await runCli(argv, (y: Argv) =>
      y
        .command('policy', 'policy', (p) =>
          p.command(
            'get',
            'get',
            (g) => g.option('policy-version', { alias: 'version', type: 'number' }),
            (a) => {
              policyVersion = a.policyVersion;
            },
          ),
        )
        .command('agent', 'agent', (a) =>
          a.command(
            'run',
            'run',
            (r) => r,
            () => undefined,
          ),
        )
        .command(
          'check',
          'check',
          (c) => c,
          () => undefined,
        ),
    );
  } finally {
    process.stdout.write = write;
    process.stderr.write = writeErr;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { out, code, policyVersion };
}

t.test('the program version', async (t) => {
  for (const argv of [['--version'], ['version'], ['agent', '--version']]) {
    const r = await run(argv);
    t.same({ out: r.out, code: r.code }, { out: `${VERSION}\n`, code: 0 }, argv.join(' '));
  }
});

t.test('policy get --version N is the policy version, not the program version', async (t) => {
  const r = await run(['policy', 'get', '--version', '1']);
  t.equal(r.out, '', 'nothing printed by runCli');
  t.equal(r.policyVersion, 1);
});

t.test('a usage error of the monitoring plugin is UNKNOWN (3), of anything else 2', async (t) => {
  const check = await run(['check', '--bogus']);
  t.equal(check.code, 3);
  t.match(check.out, /^CROSSLINK UNKNOWN - usage: Unknown argument: bogus\n$/);
  t.equal((await run(['agent', 'run', '--bogus'])).code, 2);
});

t.test('crosslink completion prints a bash completion script (a real process: yargs exits after it)', async (t) => {
  const main = fileURLToPath(new URL('./main.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', main, 'completion'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /###-begin-crosslink-completions-###/);
  t.match(r.stdout, /--get-yargs-completions/);
  const words = spawnSync(
    process.execPath,
    ['--import', 'tsx', main, '--get-yargs-completions', 'crosslink', 'policy', ''],
    { encoding: 'utf8', timeout: 60_000 },
  );
  t.match(words.stdout, /^apply$/m, 'it completes subcommands');
});
