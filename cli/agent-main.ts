// `crosslink agent …` alone: the entry of dist/crosslink-agent.cjs, the one-file bundle the package's
// /usr/bin/crosslink runs for agent commands (and so the crosslink-agent unit). It registers only
// the agent command, so the long-running agent does not load the controller, the REST client or
// the policy tools, and as one CommonJS file it skips resolving and linking ~100 ES modules:
// docs/performance.md ("Agent") has the memory this saves. Parsing, help and exit codes are
// cli/run.ts's, the same as cli/main.ts's, so `crosslink agent …` behaves identically from either.
//
// An ordinary `agent run …` (what the unit runs) is parsed without yargs (cli/fast-path.ts, the
// same option table): yargs is imported only for anything else. Loaded, yargs's help layout creates
// an Intl.Segmenter and Unicode-property regexps at import, which cost the long-running agent
// ~2 MB of RSS for a command line read once (docs/performance.md, "Agent memory").
import { parseWithTable } from './fast-path.js';
import { RUN_OPTIONS, runCommand } from './commands/agent.js';

const argv = process.argv.slice(2);
const run = argv[0] === 'agent' && argv[1] === 'run' ? parseWithTable(argv.slice(2), RUN_OPTIONS) : null;
if (run !== null) void runCommand.handler(run as never);
else
  void (async () => {
    const [{ hideBin }, { runCli }, { agentCommand }] = await Promise.all([
      import('yargs/helpers'),
      import('./run.js'),
      import('./commands/agent.js'),
    ]);
    await runCli(hideBin(process.argv), (y) => y.command(agentCommand));
  })();
