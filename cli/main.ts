#!/usr/bin/env node
// The `crosslink` executable: one binary, subcommands per concern. The only place that prints for
// humans at the top level; command handlers set process.exitCode and return.
import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { VERSION } from './version.js';
import { checkCommand as policyCheckCommand, whatifCommand } from './commands/policy-local.js';
import { registerRemoteCommands } from './commands/remote.js';
import { controllerCommand } from './commands/controller.js';
import { agentCommand } from './commands/agent.js';
import { statusCommand, checkCommand as healthCheckCommand } from './commands/health.js';
import { doctorCommand } from './commands/doctor.js';

class UsageError extends Error {}

export async function main(argv: string[]): Promise<void> {
  const y = yargs(argv)
    .scriptName('crosslink')
    .usage('$0 <command> [options]\n\nLinks selected subnets of N3/HSCN and PSN through a WireGuard overlay under one reviewed policy.')
    .command(controllerCommand())
    .command(agentCommand)
    .command(statusCommand)
    .command(healthCheckCommand)
    .command(doctorCommand);
  await registerRemoteCommands(y, { policyLocal: [policyCheckCommand, whatifCommand] as unknown as CommandModule[] })
    .demandCommand(1, 'Name a command (see --help).')
    .strict()
    .recommendCommands()
    .version(VERSION)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      // Throwing stops yargs from running the handler after a validation failure.
      throw err ?? new UsageError(msg);
    })
    .parseAsync();
}

main(hideBin(process.argv)).catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`crosslink: ${err.message}\nRun with --help for usage.\n`);
    process.exitCode = 2;
    return;
  }
  const e = err as { message?: string };
  process.stderr.write(`crosslink: ${e?.message ?? String(err)}\n`);
  if (process.env.CROSSLINK_DEBUG) console.error(err);
  process.exitCode = process.exitCode && process.exitCode !== 0 ? process.exitCode : 1;
});
