// CLI start-up: `npm run bench:cli` (needs `make build`). Prints figures; never fails on a time.
//
// Wall time of whole `crosslink` processes (node dist/cli/main.js), median and max of --runs, for
// what monitoring and people run most: --version, `check` and `status` against a controller that
// refuses the connection at once (127.0.0.1:1: the time is start-up, not the network), and
// `policy check` of the Leeds example. `check --no-json` is the same check parsed by yargs (the fast
// path in cli/fast-path.ts leaves that flag to it): the difference is what skipping yargs saves.
// Beside them, `node -e 0`: the floor no Node CLI goes below.
//
//   npm run bench:cli -- [--runs 15]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } } });
const RUNS = Number(values.runs);
const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const leeds = fileURLToPath(new URL('../../examples/leeds.yaml', import.meta.url));
const conn = [
  '--controller',
  'https://127.0.0.1:1',
  '--token',
  'x',
  '--ca-fingerprint',
  'ab'.repeat(32),
  '--timeout',
  '1',
];

const cases: Array<[string, string[]]> = [
  ['node -e 0 (floor)', ['-e', '0']],
  ['crosslink --version', [main, '--version']],
  ['crosslink check (refused)', [main, 'check', ...conn]],
  // --no-json means the same as no flag, but the fast path leaves it to yargs: what yargs costs.
  ['crosslink check --no-json (through yargs)', [main, 'check', ...conn, '--no-json']],
  ['crosslink status (refused)', [main, 'status', ...conn]],
  ['crosslink policy check -f leeds.yaml', [main, 'policy', 'check', '-f', leeds]],
];

process.stdout.write(`bench:cli (${RUNS} runs each, wall time of the whole process; Node ${process.version})\n`);
for (const [name, args] of cases) {
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    spawnSync(process.execPath, args, { stdio: 'ignore' });
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  process.stdout.write(
    `  ${name.padEnd(44)} median ${ms[Math.floor(ms.length / 2)]!.toFixed(0)} ms   max ${ms.at(-1)!.toFixed(0)} ms\n`,
  );
}
