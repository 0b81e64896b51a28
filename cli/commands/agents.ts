// `crosslink agents list|show|revoke|delete`: the enrolled boxes (GET/POST/DELETE /v1/agents).
import type { CommandModule } from 'yargs';
import type { AgentView } from '../../controller/api/agents.js';
import {
  connectionOptions,
  EXIT,
  confirmedRequest,
  jsonOption,
  processIo,
  withClient,
  yesOption,
  type ConnArgs,
  type OlderMayLack,
  type RemoteIo,
} from './connection.js';
import { table, time } from './output.js';

/** An agent as any controller answers: those before underlays leave out the relay and endpoint
 *  fields, those before unserved subnets leave out `unserved`. */
type AgentBody = OlderMayLack<AgentView, 'endpoints' | 'isRelay' | 'relayedPairs' | 'unserved'>;

function listCommand(io: RemoteIo): CommandModule<object, ConnArgs> {
  return {
    command: 'list',
    describe: 'List agents',
    builder: (y) => connectionOptions(y).option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const { agents } = (await api.request<{ agents: AgentBody[] }>('GET', '/v1/agents')).body;
        io.out(
          args.json
            ? `${JSON.stringify(agents, null, 2)}\n`
            : table(
                ['NAME', 'STATE', 'OVERLAY', 'ENDPOINT', 'GENERATION', 'SERVES', 'LAST REPORT'],
                agents.map((a) => [
                  a.name,
                  a.isRevoked ? 'revoked' : a.isConnected ? 'connected' : 'offline',
                  a.overlayAddress,
                  a.endpoints?.length ? a.endpoints.map((e) => `${e.underlay}=${e.endpoint}`).join(',') : a.endpoint,
                  `${a.appliedGeneration}/${a.desiredGeneration}`,
                  a.served.join(','),
                  time(a.lastReportAtMs),
                ]),
              ),
        );
        if (!args.json) {
          // A subnet of a box's via that nobody serves because of that box: say so under the table.
          const seen = new Set<string>();
          for (const a of agents)
            for (const u of a.unserved ?? [])
              if (!seen.has(u.subnet)) {
                seen.add(u.subnet);
                io.out(`unserved: ${u.subnet}: ${u.reason}\n`);
              }
        }
        return EXIT.ok;
      });
    },
  };
}

function showCommand(io: RemoteIo): CommandModule<object, ConnArgs & { name: string }> {
  return {
    command: 'show <name>',
    describe: 'Show one agent with its last report',
    builder: (y) => connectionOptions(y).positional('name', { type: 'string', demandOption: true }).option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const a = (await api.request<AgentBody>('GET', `/v1/agents/${encodeURIComponent(args.name)}`)).body;
        if (args.json) io.out(`${JSON.stringify(a, null, 2)}\n`);
        else {
          const rows: Array<[string, string]> = [
            ['name', a.name],
            [
              'state',
              a.isRevoked
                ? `revoked ${time(a.revokedAtMs)}`
                : a.isConnected
                  ? `connected since ${time(a.connectedSinceMs)}`
                  : 'offline',
            ],
            ['overlay address', a.overlayAddress],
            [
              'endpoint',
              a.endpoints?.length
                ? a.endpoints.map((e) => `${e.underlay}=${e.endpoint}`).join(', ')
                : a.endpoint || '-',
            ],
            [
              'relay',
              a.isRelay
                ? `yes${a.relayedPairs?.length ? `: relays ${a.relayedPairs.join(', ')}` : ', relays nothing now'}`
                : 'no',
            ],
            ['public key', a.publicKey],
            ['version', a.agentVersion],
            ['enrolled', time(a.enrolledAtMs)],
            ['generation applied/desired', `${a.appliedGeneration}/${a.desiredGeneration}`],
            ['advertised', a.advertised.join(', ') || '-'],
            ['serves', a.served.join(', ') || '-'],
            ...(a.unserved ?? []).map((u): [string, string] => ['unserved', `${u.subnet}: ${u.reason}`]),
            ['last report', time(a.lastReportAtMs)],
          ];
          io.out(rows.map(([k, v]) => `${k.padEnd(27)} ${v}\n`).join(''));
          if (a.lastReport) io.out(`last report:\n${JSON.stringify(a.lastReport, null, 2)}\n`);
        }
        return EXIT.ok;
      });
    },
  };
}

function revokeCommand(io: RemoteIo): CommandModule<object, ConnArgs & { name: string }> {
  return {
    command: 'revoke <name>',
    describe: 'Revoke an agent: refused at once and dropped by every peer',
    builder: (y) => connectionOptions(y).positional('name', { type: 'string', demandOption: true }).options(yesOption),
    handler: async (args) => {
      process.exitCode = await confirmedRequest(args, io, `Revoke agent ${args.name}? Its box is cut off at once.`, {
        method: 'POST',
        path: `/v1/agents/${encodeURIComponent(args.name)}/revoke`,
        done: `revoked agent ${args.name}`,
      });
    },
  };
}

function deleteCommand(io: RemoteIo): CommandModule<object, ConnArgs & { name: string }> {
  return {
    command: 'delete <name>',
    describe: 'Forget an agent (it must enroll again)',
    builder: (y) => connectionOptions(y).positional('name', { type: 'string', demandOption: true }).options(yesOption),
    handler: async (args) => {
      process.exitCode = await confirmedRequest(
        args,
        io,
        `Delete agent ${args.name}? It must enrol again with a new join token.`,
        { method: 'DELETE', path: `/v1/agents/${encodeURIComponent(args.name)}`, done: `deleted agent ${args.name}` },
      );
    },
  };
}

/** `crosslink agents`. */
export function agentsCommand(io: RemoteIo = processIo): CommandModule {
  return {
    command: 'agents',
    describe: 'List, show, revoke and delete agents',
    builder: (y) =>
      y
        .command(listCommand(io))
        .command(showCommand(io))
        .command(revokeCommand(io))
        .command(deleteCommand(io))
        .demandCommand(1, 'Name an agents subcommand (see --help).'),
    handler: () => {},
  };
}
