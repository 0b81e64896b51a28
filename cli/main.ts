#!/usr/bin/env node
// The `crosslink` executable: one binary, subcommands per concern. Parsing, help and exit codes
// are cli/run.ts's (shared with cli/agent-main.ts, the agent's bundled entry).
import type { CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { runCli } from './run.js';
import { checkCommand as policyCheckCommand, whatifCommand } from './commands/policy-local.js';
import { registerRemoteCommands } from './commands/remote.js';
import { controllerCommand } from './commands/controller.js';
import { agentCommand } from './commands/agent.js';
import { statusCommand, checkCommand as healthCheckCommand } from './commands/health.js';
import { doctorCommand } from './commands/doctor.js';

void runCli(hideBin(process.argv), (y) => registerRemoteCommands(
  y.command(controllerCommand())
    .command(agentCommand)
    .command(statusCommand)
    .command(healthCheckCommand)
    .command(doctorCommand),
  { policyLocal: [policyCheckCommand, whatifCommand] as unknown as CommandModule[] },
));
