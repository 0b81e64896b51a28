// runCli's own answers: the program version, asked for at the top or after command words only.
import t from 'tap';
import type { Argv } from 'yargs';
import { runCli } from './run.js';
import { VERSION } from './version.js';

async function run(argv: string[]): Promise<{ out: string; code: number; policyVersion?: unknown }> {
  let out = '';
  let policyVersion: unknown;
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => { out += s; return true; }) as typeof process.stdout.write;
  process.exitCode = 0;
  try {
    await runCli(argv, (y: Argv) => y
      .command('policy', 'policy', (p) => p.command('get', 'get', (g) => g.option('policy-version', { alias: 'version', type: 'number' }), (a) => { policyVersion = a.policyVersion; }))
      .command('agent', 'agent', (a) => a.command('run', 'run', (r) => r, () => undefined)));
  } finally {
    process.stdout.write = write;
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
