// `crosslink token create|list|revoke`: API tokens for people and automation (/v1/tokens).
import type { CommandModule } from 'yargs';
import type { TokenView } from '../../controller/api/api-tokens.js';
import {
  connectionOptions,
  EXIT,
  confirmedRequest,
  jsonOption,
  processIo,
  withClient,
  yesOption,
  type ConnArgs,
  type RemoteIo,
} from './connection.js';
import { table, time } from './output.js';

function createCommand(io: RemoteIo): CommandModule<object, ConnArgs & { name: string; role: string }> {
  return {
    command: 'create',
    describe: 'Make an API token (shown once)',
    builder: (y) =>
      connectionOptions(y)
        .option('name', { type: 'string', demandOption: true, describe: 'Who or what uses it' })
        .option('role', {
          type: 'string',
          choices: ['admin', 'operator', 'auditor'],
          demandOption: true,
          describe: 'admin: everything; operator: agents and join tokens; auditor: read-only',
        })
        .option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const t = (
          await api.request<TokenView & { token: string }>('POST', '/v1/tokens', {
            json: { name: args.name, role: args.role },
          })
        ).body;
        if (args.json) io.out(`${JSON.stringify(t, null, 2)}\n`);
        else {
          io.out(`${t.token}\n`);
          io.err(`API token ${t.id} "${t.name}" with role ${t.role}. It is shown only now.\n`);
        }
        return EXIT.ok;
      });
    },
  };
}

function listCommand(io: RemoteIo): CommandModule<object, ConnArgs> {
  return {
    command: 'list',
    describe: 'List API tokens',
    builder: (y) => connectionOptions(y).option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const { tokens } = (await api.request<{ tokens: TokenView[] }>('GET', '/v1/tokens')).body;
        io.out(
          args.json
            ? `${JSON.stringify(tokens, null, 2)}\n`
            : table(
                ['ID', 'NAME', 'ROLE', 'STATE', 'CREATED', 'LAST USED'],
                tokens.map((t) => [
                  t.id,
                  t.name,
                  t.role,
                  t.isRevoked ? 'revoked' : 'active',
                  time(t.createdAtMs),
                  time(t.lastUsedAtMs),
                ]),
              ),
        );
        return EXIT.ok;
      });
    },
  };
}

function revokeCommand(io: RemoteIo): CommandModule<object, ConnArgs & { id: string }> {
  return {
    command: 'revoke <id>',
    describe: 'Revoke an API token',
    builder: (y) => connectionOptions(y).positional('id', { type: 'string', demandOption: true }).options(yesOption),
    handler: async (args) => {
      process.exitCode = await confirmedRequest(
        args,
        io,
        `Revoke API token ${args.id}? Whoever uses it is locked out at once.`,
        {
          method: 'POST',
          path: `/v1/tokens/${encodeURIComponent(args.id)}/revoke`,
          done: `revoked API token ${args.id}`,
        },
      );
    },
  };
}

/** `crosslink token`. */
export function apiTokenCommand(io: RemoteIo = processIo): CommandModule {
  return {
    command: 'token',
    describe: 'Make, list and revoke API tokens',
    builder: (y) =>
      y
        .command(createCommand(io))
        .command(listCommand(io))
        .command(revokeCommand(io))
        .demandCommand(1, 'Name a token subcommand (see --help).'),
    handler: () => {},
  };
}
