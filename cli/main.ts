#!/usr/bin/env node
// The `crosslink` executable: one binary, subcommands per concern. Parsing, help and exit codes
// are cli/run.ts's (shared with cli/agent-main.ts, the agent's bundled entry).
//
// It loads only the module of the command being run: monitoring runs `crosslink check` every minute
// for every check, and loading every command (the controller, the policy compiler, the agent) for
// each cost ~0.4 s. `crosslink --version` loads nothing but the version; `check` and `status` do
// not even load yargs when their command line is an ordinary one (cli/fast-path.ts). Help at the top, or a
// command name that is not one of these, loads them all (yargs then lists or suggests them).
import type { Argv, CommandModule } from 'yargs';

type Register = (y: Argv) => Promise<Argv>;

const loaders: Record<string, Register> = {
  controller: async (y) => y.command((await import('./commands/controller.js')).controllerCommand()),
  agent: async (y) => y.command((await import('./commands/agent.js')).agentCommand),
  status: async (y) => y.command((await import('./commands/health.js')).statusCommand),
  check: async (y) => y.command((await import('./commands/health.js')).checkCommand),
  doctor: async (y) => y.command((await import('./commands/doctor.js')).doctorCommand),
  trace: async (y) => y.command((await import('./commands/trace.js')).traceCommand as unknown as CommandModule),
  policy,
  agents: async (y) => y.command((await import('./commands/agents.js')).agentsCommand()),
  'join-token': async (y) => y.command((await import('./commands/join-tokens.js')).joinTokenCommand()),
  token: async (y) => y.command((await import('./commands/api-tokens.js')).apiTokenCommand()),
  audit: async (y) => y.command((await import('./commands/audit.js')).auditCommand()),
  rules: async (y) => y.command((await import('./commands/rules.js')).rulesCommand()),
  diagram: async (y) => y.command((await import('./commands/diagram.js')).diagramCommand() as unknown as CommandModule),
  version: (y) => Promise.resolve(y),
};

/** `policy` subcommands that talk to the controller: they need neither the policy compiler nor the
 *  local `check`/`whatif` (which load it), so `crosslink policy apply` starts without them. */
const REMOTE_POLICY = new Set(['apply', 'get', 'history', 'rollback', 'diff']);

async function policy(y: Argv): Promise<Argv> {
  // Only `policy` itself builds its subcommands (yargs runs a group's builder when it is the command).
  const words = argv.filter((a) => !a.startsWith('-'));
  const isLocalNeeded = words[0] === 'policy' && !REMOTE_POLICY.has(words[1] ?? '');
  const [{ registerPolicyCommand }, local] = await Promise.all([
    import('./commands/policy.js'),
    isLocalNeeded ? import('./commands/policy-local.js') : undefined,
  ]);
  return registerPolicyCommand(y, {
    policyLocal: local ? ([local.checkCommand, local.whatifCommand] as unknown as CommandModule[]) : [],
  });
}

/** Every command, in the order top-level help lists them. */
async function all(y: Argv): Promise<Argv> {
  let out = y;
  for (const register of Object.values(loaders)) out = await register(out);
  return out;
}

const argv = process.argv.slice(2);
if (argv.length === 1 && argv[0] === '--version') {
  process.stdout.write(`${(await import('../lib/version.js')).VERSION}\n`);
} else if (
  (argv[0] === 'check' || argv[0] === 'status') &&
  (await (await import('./fast-path.js')).runHealthCommandFast(argv))
) {
  // Done without yargs (see cli/fast-path.ts).
} else {
  const first = argv.find((a) => !a.startsWith('-'));
  const isTopHelp = first === undefined;
  const register = !isTopHelp && first in loaders ? loaders[first]! : all;
  const { runCli } = await import('./run.js');
  await runCli(argv, register);
}
