// `crosslink rules stats [--agent NAME]`: what each policy rule let through, summed over the boxes
// (GET /v1/rules/stats), or on one box.
import type { CommandModule } from 'yargs';
import type { RuleStatsResult } from '../../controller/api/rules.js';
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
import { table } from './output.js';

type StatsArgs = ConnArgs & { agent?: string };

/** 1234567 -> "1.2 MB" (powers of 1000, as network counters are read). */
export function bytesText(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function formatRuleStats(r: RuleStatsResult, agent?: string): string {
  const single = agent !== undefined;
  const rows = single
    ? r.rules.flatMap((x) =>
        x.boxes.map((b) => [x.rule, b.direction, b.connections, b.packets, bytesText(b.bytes), b.reportedAt]),
      )
    : r.rules.map((x) => [
        x.isInPolicy ? x.rule : `${x.rule} (not in policy)`,
        x.connections,
        x.packets,
        bytesText(x.bytes),
        x.byDirection.inbound.connections,
        x.boxes.length === 0 ? '-' : [...new Set(x.boxes.map((b) => b.agent))].join(','),
      ]);
  const head = single
    ? ['RULE', 'DIRECTION', 'CONNECTIONS', 'PACKETS', 'BYTES', 'REPORTED']
    : ['RULE', 'CONNECTIONS', 'PACKETS', 'BYTES', 'RECEIVED', 'BOXES'];
  const where = single ? `on ${agent}` : `over ${r.agents} reporting box(es)`;
  const version = r.policyVersion === null ? 'no policy yet' : `policy version ${r.policyVersion}`;
  const note = single
    ? ''
    : 'CONNECTIONS, PACKETS and BYTES count each flow once, where it entered the overlay (or LAN to LAN on one box); RECEIVED: connections the destination boxes admitted.\n';
  const drops =
    r.zoneDrops.length === 0
      ? ''
      : `\nRefused (dropped) per zone pair:\n${table(
          ['FROM ZONE', 'TO ZONE', 'DIRECTION', 'PACKETS', 'BYTES', 'BOXES'],
          r.zoneDrops.map((z) => [
            z.sourceZone,
            z.destinationZone,
            z.direction,
            z.packets,
            bytesText(z.bytes),
            z.agents.join(','),
          ]),
        )}`;
  return `${rows.length === 0 ? 'no rule counters reported yet\n' : table(head, rows)}${note}${drops}${where}, ${version}; counted since each agent started\n`;
}

function statsCommand(io: RemoteIo): CommandModule<object, StatsArgs> {
  return {
    command: 'stats',
    describe: 'Connections, packets and bytes per policy rule, summed over the boxes (or on one)',
    builder: (y) =>
      asArgs(
        connectionOptions(y)
          .option('agent', { type: 'string', describe: "One agent's counters, per direction" })
          .option(jsonOption)
          .example('$0 rules stats', 'every rule of the policy, fleet-wide')
          .example('$0 rules stats --agent nhs-shared-hub', 'one box'),
      ),
    handler: async (args) => {
      if (args.agent !== undefined && args.agent.trim() === '') {
        io.err('crosslink: --agent needs an agent name\n');
        process.exitCode = EXIT.usage;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        const q = args.agent !== undefined ? `?agent=${encodeURIComponent(args.agent)}` : '';
        const r = (await api.request<RuleStatsResult>('GET', `/v1/rules/stats${q}`)).body;
        io.out(args.json ? `${JSON.stringify(r, null, 2)}\n` : formatRuleStats(r, args.agent));
        return EXIT.ok;
      });
    },
  };
}

/** `crosslink rules`. */
export function rulesCommand(io: RemoteIo = processIo): CommandModule {
  return {
    command: 'rules',
    describe: 'What the policy rules let through (per-rule counters from the boxes)',
    builder: (y) => y.command(statsCommand(io)).demandCommand(1, 'Name a rules subcommand (see --help).'),
    handler: () => {},
  };
}
