// `crosslink agent …` alone: the entry of dist/crosslink-agent.cjs, the one-file bundle the package's
// /usr/bin/crosslink runs for agent commands (and so the crosslink-agent unit). It registers only
// the agent command, so the long-running agent does not load the controller, the REST client or
// the policy tools, and as one CommonJS file it skips resolving and linking ~100 ES modules:
// docs/performance.md ("Agent") has the memory this saves. Parsing, help and exit codes are
// cli/run.ts's, the same as cli/main.ts's, so `crosslink agent …` behaves identically from either.
import { hideBin } from 'yargs/helpers';
import { runCli } from './run.js';
import { agentCommand } from './commands/agent.js';

void runCli(hideBin(process.argv), (y) => y.command(agentCommand));
