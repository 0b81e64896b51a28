// `crosslink policy apply|get|history|rollback|diff`: the controller's policy (/v1/policy). The local
// `policy check|whatif` (cli/commands/policy-local.ts) join them in one `policy` group.
import type { Argv, CommandModule } from 'yargs';
import type { AgentView } from '../../controller/api/agents.js';
import type { DryRunResult, PolicyDocument, PutResult, VersionInfo } from '../../controller/api/policy.js';
import { describePathView } from '../../controller/policy/paths.js';
import { givenText } from '../flags.js';
import { inputName } from '../read-input.js';
import { ApiError, type ApiClient } from './api.js';
import {
  asArgs,
  connectionOptions,
  EXIT,
  isConfirmed,
  jsonOption,
  processIo,
  withClient,
  yesOption,
  type ConnArgs,
  type OlderMayLack,
  type RemoteIo,
} from './connection.js';
import { detailLine, table, time } from './output.js';

type AgentDiff = OlderMayLack<DryRunResult['agents'][number], 'isConnected'>;

/** What the controller's dry run answers (older controllers leave the newer fields out). */
type DryRunView = OlderMayLack<
  Omit<DryRunResult, 'agents'>,
  'baseVersion' | 'policy' | 'notEnrolled' | 'unserved' | 'paths'
> & { agents: AgentDiff[] };

/** PUT /v1/policy and the rollback (controllers before `isUnchanged` leave it out). */
type PutBody = OlderMayLack<PutResult, 'isUnchanged'>;

/** The policy-level changes, then what each box gets (naming boxes that are offline or not yet
 *  enrolled), the subnets nobody would serve, and the pairs without a shared underlay. */
function printDiff(io: RemoteIo, dry: DryRunView): void {
  const { agents, paths = [] } = dry;
  if (dry.policy !== undefined) {
    if (dry.policy.length === 0) io.out('policy: no change\n');
    else {
      io.out('policy:\n');
      for (const line of dry.policy) io.out(`  ${line}\n`);
    }
  }
  if (agents.length === 0) io.out('boxes: no config changes\n');
  else io.out('boxes:\n');
  for (const a of agents) {
    io.out(`  ${a.agent}${a.isConnected === false ? ' (offline: gets it when it reconnects)' : ''}:\n`);
    for (const c of a.changes) io.out(`    ${c}\n`);
  }
  if (dry.notEnrolled !== undefined && dry.notEnrolled.length > 0)
    io.out(`not enrolled yet (get their config when they enrol): ${dry.notEnrolled.join(', ')}\n`);
  for (const u of dry.unserved ?? []) io.out(`unserved: ${u.subnet}: ${u.reason}\n`);
  if (paths.length > 0) {
    io.out(`pairs that do not share an underlay: ${paths.length}\n`);
    for (const p of paths) io.out(`  ${p.a} <-> ${p.b}: ${describePathView(p)}\n`);
  }
}

async function currentVersion(api: ApiClient): Promise<number> {
  try {
    return (await api.request<PolicyDocument>('GET', '/v1/policy')).body.version;
  } catch (e) {
    if (e instanceof ApiError && e.code === 'not_found') return 0;
    throw e;
  }
}

function applyCommand(
  io: RemoteIo,
): CommandModule<object, ConnArgs & { file: string; dryRun: boolean; comment?: string }> {
  return {
    command: 'apply',
    describe: 'Validate, test and apply a policy file (prints the per-agent diff first)',
    builder: (y) =>
      asArgs(
        connectionOptions(y)
          .option('file', {
            alias: 'f',
            type: 'string',
            demandOption: true,
            describe: 'Policy file (YAML or JSON; - for standard input)',
          })
          .option('dry-run', { type: 'boolean', default: false, describe: 'Only show what would change' })
          .option('comment', { alias: 'm', type: 'string', describe: 'Why (recorded with the version)' })
          .option(jsonOption),
      ),
    handler: async (cliArgs) => {
      let text: string;
      try {
        text = io.readFile(cliArgs.file);
      } catch (e) {
        io.err(`crosslink: ${inputName(cliArgs.file)}: cannot read: ${(e as Error).message}\n`);
        process.exitCode = EXIT.failed;
        return;
      }
      const args = { ...cliArgs, file: inputName(cliArgs.file) };
      process.exitCode = await withClient(
        args,
        io,
        async (api) => {
          const dry = (await api.request<DryRunView>('POST', '/v1/policy/dry-run', { json: { document: text } })).body;
          // Apply only on the version the shown diff is against (one round trip less than asking).
          const expected = dry.baseVersion ?? (await currentVersion(api));
          if (args.dryRun) {
            if (args.json) io.out(`${JSON.stringify(dry, null, 2)}\n`);
            else {
              printDiff(io, dry);
              io.out(
                `dry run: ${args.file} is valid, ${dry.testsRun} test${dry.testsRun === 1 ? '' : 's'} passed; nothing applied\n`,
              );
            }
            return EXIT.ok;
          }
          const put = (
            await api.request<PutBody>('PUT', '/v1/policy', {
              json: { document: text, ...(args.comment ? { comment: args.comment } : {}) },
              headers: { 'if-match': `"${expected}"` },
            })
          ).body;
          if (args.json) io.out(`${JSON.stringify({ ...put, agents: dry.agents }, null, 2)}\n`);
          else if (put.isUnchanged === true)
            io.out(`unchanged: ${args.file} is policy version ${put.version} already; nothing written\n`);
          else {
            printDiff(io, dry);
            io.out(
              `applied ${args.file} as policy version ${put.version}${put.isDistributed ? '' : ' (not yet pushed to agents: see the controller log)'}\n`,
            );
          }
          return EXIT.ok;
        },
        args.file,
      );
    },
  };
}

// The program's version is only `crosslink --version` (cli/run.ts), so here --version is the policy's.
function getCommand(io: RemoteIo): CommandModule<object, ConnArgs & { policyVersion?: number }> {
  return {
    command: 'get',
    describe: 'Print the current policy document (or --policy-version N)',
    builder: (y) =>
      asArgs(
        connectionOptions(y)
          .option('policy-version', { alias: 'version', type: 'number', describe: 'An earlier version' })
          .option(jsonOption),
      ),
    handler: async (args) => {
      if (args.policyVersion !== undefined && (!Number.isInteger(args.policyVersion) || args.policyVersion < 1)) {
        io.err(
          `crosslink: --policy-version must be a version number (1, 2, ...); got ${givenText(args.policyVersion)}\n`,
        );
        process.exitCode = EXIT.usage;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        const path = args.policyVersion !== undefined ? `/v1/policy/versions/${args.policyVersion}` : '/v1/policy';
        const p = (await api.request<PolicyDocument>('GET', path)).body;
        io.out(
          args.json ? `${JSON.stringify(p, null, 2)}\n` : p.document.endsWith('\n') ? p.document : `${p.document}\n`,
        );
        return EXIT.ok;
      });
    },
  };
}

function historyCommand(io: RemoteIo): CommandModule<object, ConnArgs> {
  return {
    command: 'history',
    describe: 'List policy versions',
    builder: (y) => connectionOptions(y).option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const { versions } = (await api.request<{ versions: VersionInfo[] }>('GET', '/v1/policy/versions')).body;
        io.out(
          args.json
            ? `${JSON.stringify(versions, null, 2)}\n`
            : table(
                ['VERSION', 'CREATED', 'BY', 'COMMENT'],
                versions.map((v) => [v.version, time(v.createdAtMs), v.createdBy, v.comment]),
              ),
        );
        return EXIT.ok;
      });
    },
  };
}

function rollbackCommand(io: RemoteIo): CommandModule<object, ConnArgs & { policyVersion: number; comment?: string }> {
  return {
    command: 'rollback <policy-version>',
    describe: 'Make an earlier version current again (recorded as a new version)',
    builder: (y) =>
      asArgs(
        connectionOptions(y)
          .positional('policy-version', { type: 'number', demandOption: true, describe: 'Version to return to' })
          .option('comment', { alias: 'm', type: 'string', describe: 'Why' })
          .options(yesOption),
      ),
    handler: async (args) => {
      const version = args.policyVersion;
      if (!Number.isInteger(version) || version < 1) {
        io.err('crosslink: VERSION must be a positive whole number\n');
        process.exitCode = EXIT.usage;
        return;
      }
      if (!(await isConfirmed(args, io, `Make policy version ${version} current again?`))) {
        process.exitCode = EXIT.failed;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        const r = (
          await api.request<PutBody>('POST', '/v1/policy/rollback', {
            json: { version, ...(args.comment ? { comment: args.comment } : {}) },
          })
        ).body;
        io.out(
          r.isUnchanged === true
            ? `unchanged: version ${version} is the current document already (policy version ${r.version}); nothing written\n`
            : `rolled back to version ${version}: now policy version ${r.version}\n`,
        );
        return EXIT.ok;
      });
    },
  };
}

function diffCommand(io: RemoteIo): CommandModule<object, ConnArgs & { a: string; b: string }> {
  return {
    command: 'diff <a> <b>',
    describe:
      "What changes from policy A to policy B, at the policy level; each a file (- for standard input) or a version number of the controller's history. Exit 0 same, 1 different (as diff), 2 trouble",
    builder: (y) =>
      asArgs(
        connectionOptions(y)
          .positional('a', { type: 'string', describe: 'FILE or VERSION' })
          .positional('b', { type: 'string', describe: 'FILE or VERSION' })
          .option(jsonOption)
          .example('$0 policy diff 3 policy.yaml', 'what applying policy.yaml would change against version 3'),
      ),
    handler: async (args) => {
      const sides = [String(args.a), String(args.b)];
      const isVersion = (s: string) => /^[1-9][0-9]*$/.test(s);
      const texts = new Map<string, string>();
      for (const s of sides.filter((x) => !isVersion(x))) {
        try {
          texts.set(s, io.readFile(s));
        } catch (e) {
          io.err(`crosslink: ${inputName(s)}: cannot read: ${(e as Error).message}\n`);
          process.exitCode = EXIT.usage;
          return;
        }
      }
      // The policy reader and validator, only for this command: every other remote command starts
      // without them (they were ~100 ms of each `policy apply`).
      const [{ parsePolicy }, { diffPolicies }] = await Promise.all([
        import('../../controller/policy/validate.js'),
        import('../../controller/policy/policy-diff.js'),
      ]);
      // `via` may name enrolled agents the document does not list: the controller's list, when asked.
      const compare = (knownAgents: string[] = []): number => {
        const parsed = sides.map((s) => {
          const r = parsePolicy(texts.get(s)!, { knownAgents });
          if (r.errors) for (const e of r.errors) io.err(detailLine(e, isVersion(s) ? `version ${s}` : inputName(s)));
          return r.policy;
        });
        if (!parsed[0] || !parsed[1]) {
          io.err('crosslink: cannot compare an invalid policy (errors above)\n');
          return EXIT.usage;
        }
        const lines = diffPolicies(parsed[0], parsed[1]);
        if (args.json) io.out(`${JSON.stringify({ a: sides[0], b: sides[1], changes: lines }, null, 2)}\n`);
        else io.out(lines.length === 0 ? 'no change\n' : lines.map((l) => `${l}\n`).join(''));
        return lines.length === 0 ? EXIT.ok : EXIT.failed;
      };
      if (!sides.some(isVersion)) {
        process.exitCode = compare();
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        for (const s of sides.filter(isVersion))
          texts.set(s, (await api.request<PolicyDocument>('GET', `/v1/policy/versions/${s}`)).body.document);
        const { agents } = (await api.request<{ agents: AgentView[] }>('GET', '/v1/agents')).body;
        return compare(agents.map((a) => a.name));
      });
    },
  };
}

/** The subcommands of `policy` that talk to the controller. */
export function policyCommands(io: RemoteIo = processIo): CommandModule[] {
  return [
    applyCommand(io),
    getCommand(io),
    historyCommand(io),
    rollbackCommand(io),
    diffCommand(io),
  ] as unknown as CommandModule[];
}

/** Registers `policy`: the local commands given (`check`, `whatif`), then the controller's. */
export function registerPolicyCommand<T>(
  y: Argv<T>,
  opts: { io?: RemoteIo; policyLocal?: CommandModule[] } = {},
): Argv<T> {
  const io = opts.io ?? processIo;
  return y.command('policy', 'Check, evaluate and manage the policy', (p) => {
    let g = p;
    for (const c of [...(opts.policyLocal ?? []), ...policyCommands(io)]) g = g.command(c);
    return g.demandCommand(1, 'Name a policy subcommand (see --help).');
  });
}
