// The `crosslink` command line, shared by its two entry points: cli/main.ts (every command) and
// cli/agent-main.ts (only `crosslink agent …`, bundled into dist/crosslink-agent.cjs for the
// long-running agent). One parser setup, one error and exit-code policy for both, so a command
// behaves, and its help reads, the same from either. The only place that prints for humans at the
// top level; command handlers set process.exitCode and return.
import yargs, { type Argv } from 'yargs';
import { VERSION } from '../lib/version.js';

class UsageError extends Error {}

function isProgramVersionAsked(argv: string[]): boolean {
  const words = argv.slice(0, -1);
  return (
    argv.at(-1) === '--version' &&
    words.every((w) => !w.startsWith('-')) &&
    !(words[0] === 'policy' && words[1] === 'get')
  );
}

/** Parses `argv` (without node and the script) against the commands `register` adds, and runs the
 *  chosen handler. Never throws: failures are printed and set process.exitCode (2 usage, else 1). */
export async function runCli(argv: string[], register: (y: Argv) => Argv | Promise<Argv>): Promise<void> {
  // The program's version: `crosslink --version`, `crosslink version`, or `--version` after command
  // words alone (`crosslink agent --version`). yargs's own --version took the flag everywhere, so
  // `policy get --version 1` printed 0.1.0 and exited 0; there --version is the policy's version.
  if (isProgramVersionAsked(argv)) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  try {
    const y = yargs(argv)
      .scriptName('crosslink')
      .usage(
        '$0 <command> [options]\n\nLinks selected subnets of N3/HSCN and PSN through a WireGuard overlay under one reviewed policy.',
      )
      // English whatever LANG says: every description is English (yargs translated only its own
      // words: "Kommandos:" over English text), and the agent bundle does not carry yargs's
      // translation files, so help reads the same from both entry points.
      .detectLocale(false);
    await (
      await register(y)
    )
      .demandCommand(1, 'Name a command (see --help).')
      .strict()
      .recommendCommands()
      .version(false)
      .command(
        'version',
        'Print the program version (also: crosslink --version)',
        (v) => v,
        () => {
          process.stdout.write(`${VERSION}\n`);
        },
      )
      .completion(
        'completion',
        'Print a bash (or zsh) completion script: crosslink completion > /etc/bash_completion.d/crosslink',
      )
      .help()
      .alias('h', 'help')
      .wrap(Math.min(110, process.stdout.columns || 100))
      .fail((msg, err) => {
        // Throwing stops yargs from running the handler after a validation failure.
        throw err ?? new UsageError(msg);
      })
      .parseAsync();
  } catch (err) {
    if (err instanceof UsageError) {
      // `crosslink check` is a monitoring plugin: by the Nagios plugin guidelines a usage error is
      // UNKNOWN (3), with the one status line monitoring shows; 2 would read as CRITICAL.
      if (argv[0] === 'check') {
        process.stdout.write(`CROSSLINK UNKNOWN - usage: ${err.message.replace(/\s+/g, ' ')}\n`);
        process.stderr.write('Run crosslink check --help for usage.\n');
        process.exitCode = 3;
        return;
      }
      process.stderr.write(`crosslink: ${err.message}\nRun with --help for usage.\n`);
      process.exitCode = 2;
      return;
    }
    const e = err as { message?: string };
    process.stderr.write(`crosslink: ${e?.message ?? String(err)}\n`);
    if (process.env.CROSSLINK_DEBUG) console.error(err);
    process.exitCode = process.exitCode && process.exitCode !== 0 ? process.exitCode : 1;
  }
}
