// `crosslink join-token create|list|revoke`: the tokens an agent enrols with (/v1/join-tokens).
import type { CommandModule } from 'yargs';
import type { JoinTokenView } from '../../controller/api/join-tokens.js';
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

/** "90s", "15m", "1h", "7d" or plain seconds -> seconds. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(text.trim());
  if (!m) return null;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}

function createCommand(
  io: RemoteIo,
): CommandModule<object, ConnArgs & { name: string; ttl: string; reusable: boolean }> {
  return {
    command: 'create',
    describe: 'Make a join token for an agent (shown once)',
    builder: (y) =>
      connectionOptions(y)
        .option('name', { type: 'string', demandOption: true, describe: 'Agent name the token enrolls' })
        .option('ttl', { type: 'string', default: '1h', describe: 'Lifetime: 90s, 15m, 1h, 7d' })
        .option('reusable', { type: 'boolean', default: false, describe: 'Allow more than one enrolment' })
        .option(jsonOption),
    handler: async (args) => {
      const ttlSeconds = parseDuration(args.ttl);
      if (ttlSeconds === null || ttlSeconds < 60 || ttlSeconds > 30 * 86_400) {
        io.err(
          ttlSeconds === null
            ? `crosslink: --ttl "${args.ttl}" is not a duration such as 15m, 1h or 7d\n`
            : `crosslink: --ttl ${args.ttl} is out of range: a join token lives from 1m to 30d\n`,
        );
        process.exitCode = EXIT.usage;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        const t = (
          await api.request<JoinTokenView & { token: string }>('POST', '/v1/join-tokens', {
            json: { name: args.name, ttlSeconds, isReusable: args.reusable },
          })
        ).body;
        if (args.json) io.out(`${JSON.stringify(t, null, 2)}\n`);
        else {
          io.out(`${t.token}\n`);
          io.err(
            `join token ${t.id} for agent ${t.name}, ${t.isReusable ? 'reusable' : 'single use'}, expires ${time(t.expiresAtMs)}. It is shown only now.\n`,
          );
        }
        return EXIT.ok;
      });
    },
  };
}

function listCommand(io: RemoteIo): CommandModule<object, ConnArgs> {
  return {
    command: 'list',
    describe: 'List join tokens',
    builder: (y) => connectionOptions(y).option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const { joinTokens } = (await api.request<{ joinTokens: JoinTokenView[] }>('GET', '/v1/join-tokens')).body;
        io.out(
          args.json
            ? `${JSON.stringify(joinTokens, null, 2)}\n`
            : table(
                ['ID', 'AGENT', 'STATE', 'REUSABLE', 'EXPIRES', 'CREATED BY'],
                joinTokens.map((t) => [
                  t.id,
                  t.name,
                  t.state,
                  t.isReusable ? 'yes' : 'no',
                  time(t.expiresAtMs),
                  t.createdBy,
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
    describe: 'Revoke a join token',
    builder: (y) => connectionOptions(y).positional('id', { type: 'string', demandOption: true }).options(yesOption),
    handler: async (args) => {
      process.exitCode = await confirmedRequest(args, io, `Revoke join token ${args.id}?`, {
        method: 'POST',
        path: `/v1/join-tokens/${encodeURIComponent(args.id)}/revoke`,
        done: `revoked join token ${args.id}`,
      });
    },
  };
}

/** `crosslink join-token`. */
export function joinTokenCommand(io: RemoteIo = processIo): CommandModule {
  return {
    command: 'join-token',
    describe: 'Make, list and revoke agent join tokens',
    builder: (y) =>
      y
        .command(createCommand(io))
        .command(listCommand(io))
        .command(revokeCommand(io))
        .demandCommand(1, 'Name a join-token subcommand (see --help).'),
    handler: () => {},
  };
}
