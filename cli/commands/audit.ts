// `crosslink audit list|verify`: the audit log and its hash chain (/v1/audit).
import type { CommandModule } from 'yargs';
import type { AuditEntryView, VerifyResult } from '../../controller/api/audit.js';
import { givenText, wholeNumberProblem } from '../flags.js';
import {
  asArgs,
  connectionOptions,
  EXIT,
  jsonOption,
  processIo,
  withClient,
  type ConnArgs,
  type RemoteIo,
} from './connection.js';
import { table, time } from './output.js';

function listCommand(io: RemoteIo): CommandModule<object, ConnArgs & { afterId: number; limit: number }> {
  return {
    command: 'list',
    describe: 'List audit entries, oldest first',
    builder: (y) =>
      asArgs(
        connectionOptions(y)
          .option('after-id', { type: 'number', default: 0, describe: 'Start after this entry' })
          .option('limit', { type: 'number', default: 100, describe: 'At most this many (1-1000)' })
          .option(jsonOption),
      ),
    handler: async (args) => {
      const bad =
        !Number.isInteger(args.afterId) || args.afterId < 0
          ? `--after-id must be an entry id (0 or more); got ${givenText(args.afterId)}`
          : wholeNumberProblem('--limit', args.limit, 1, 1000);
      if (bad !== null) {
        io.err(`crosslink: ${bad}\n`);
        process.exitCode = EXIT.usage;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        const r = (
          await api.request<{ entries: AuditEntryView[]; nextAfterId: number | null }>(
            'GET',
            `/v1/audit?afterId=${args.afterId}&limit=${args.limit}`,
          )
        ).body;
        if (args.json) io.out(`${JSON.stringify(r, null, 2)}\n`);
        else {
          io.out(
            table(
              ['ID', 'WHEN', 'WHO', 'ROLE', 'FROM', 'ACTION', 'TARGET'],
              r.entries.map((e) => [
                e.id,
                time(e.atMs),
                e.actor.name,
                e.actor.role,
                e.actor.address,
                e.action,
                e.target,
              ]),
            ),
          );
          if (r.nextAfterId !== null) io.err(`more: --after-id ${r.nextAfterId}\n`);
        }
        return EXIT.ok;
      });
    },
  };
}

function verifyCommand(io: RemoteIo): CommandModule<object, ConnArgs> {
  return {
    command: 'verify',
    describe: "Check the audit log's hash chain; says where it breaks",
    builder: (y) => connectionOptions(y).option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const v = (await api.request<VerifyResult>('GET', '/v1/audit/verify')).body;
        if (args.json) io.out(`${JSON.stringify(v, null, 2)}\n`);
        else if (v.isValid) io.out(`audit log intact: ${v.count} entries, chain verified\n`);
        else io.out(`audit log BROKEN at entry ${v.brokenAtId}: ${v.reason}\n`);
        return v.isValid ? EXIT.ok : EXIT.failed;
      });
    },
  };
}

/** `crosslink audit`. */
export function auditCommand(io: RemoteIo = processIo): CommandModule {
  return {
    command: 'audit',
    describe: 'Read and verify the audit log',
    builder: (y) =>
      y.command(listCommand(io)).command(verifyCommand(io)).demandCommand(1, 'Name an audit subcommand (see --help).'),
    handler: () => {},
  };
}
