// `crosslink agent flows [--follow] [--json]`: the box's flow log (agent/flows/flow-log.ts), read
// from the state dir on the box itself, so it works with the controller and the agent down.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import { DEFAULT_CONFIG_FILE, DEFAULT_STATE_DIR, loadAgentConfigFile } from '../../agent/config.js';
import { FLOW_LOG_FILE, followFlowLog, readFlowLog } from '../../agent/flows/flow-log.js';
import type { FlowRecord } from '../../lib/export/record.js';
import { table } from './output.js';

const PROTO: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6' };

const endpoint = (addr: string, port: number) => (port ? `${addr.includes(':') ? `[${addr}]` : addr}:${port}` : addr);

function row(r: FlowRecord): Array<string | number> {
  return [
    new Date(r.startMs).toISOString().replace('T', ' ').slice(0, 23),
    r.endMs === null ? '-' : `${((r.endMs - r.startMs) / 1000).toFixed(1)}s`,
    PROTO[r.protocol] ?? String(r.protocol),
    endpoint(r.srcAddress, r.srcPort),
    endpoint(r.dstAddress, r.dstPort),
    `${r.packets}/${r.bytes}`,
    `${r.replyPackets}/${r.replyBytes}`,
    r.rule ?? `(${r.verdict})`,
    r.direction,
    r.srcZone || r.dstZone ? `${r.srcZone || '?'}->${r.dstZone || '?'}` : '-',
  ];
}
const HEAD = [
  'START (UTC)',
  'DURATION',
  'PROTO',
  'SOURCE',
  'DESTINATION',
  'PKTS/BYTES',
  'REPLY PKTS/BYTES',
  'RULE',
  'DIRECTION',
  'ZONES',
];

type FlowsArgs = { config?: string; 'state-dir'?: string; follow: boolean; json: boolean; last: number };

export const flowsCommand: CommandModule<object, FlowsArgs> = {
  command: 'flows',
  describe: "This box's flow log: one record per finished flow a rule admitted (true addresses, bytes, the rule)",
  builder: (y) =>
    y
      .option('state-dir', {
        type: 'string',
        describe: `The agent's state dir (default from --config, else ${DEFAULT_STATE_DIR})`,
      })
      .option('config', { type: 'string', describe: `Agent config file (default ${DEFAULT_CONFIG_FILE} if it exists)` })
      .option('follow', {
        alias: 'f',
        type: 'boolean',
        default: false,
        describe: 'Keep printing new flows as they end',
      })
      .option('json', { type: 'boolean', default: false, describe: 'One JSON object per line' })
      .option('last', { type: 'number', default: 50, describe: 'Print the last N flows first (0: none)' }),
  handler: async (argv) => {
    if (!Number.isInteger(argv.last) || argv.last < 0) {
      process.stderr.write(
        `crosslink agent flows: --last must be a whole number, 0 or more; got ${String(argv.last)}\n`,
      );
      process.exitCode = 2;
      return;
    }
    let stateDir = argv['state-dir'];
    if (stateDir === undefined) {
      const file = argv.config ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
      try {
        stateDir = (file ? (await loadAgentConfigFile(file)).stateDir : undefined) ?? DEFAULT_STATE_DIR;
      } catch (e) {
        process.stderr.write(`crosslink agent flows: ${(e as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
    }
    const path = join(stateDir, FLOW_LOG_FILE);
    if (!existsSync(stateDir)) {
      process.stderr.write(`crosslink agent flows: no agent state dir at ${stateDir} (--state-dir)\n`);
      process.exitCode = 1;
      return;
    }
    const print = (rs: FlowRecord[]) => {
      if (rs.length === 0) return;
      process.stdout.write(argv.json ? rs.map((r) => `${JSON.stringify(r)}\n`).join('') : table(HEAD, rs.map(row)));
    };
    const all = argv.last > 0 ? readFlowLog(path) : [];
    print(all.slice(-argv.last));
    if (!argv.follow) {
      if (all.length === 0 && !argv.json) process.stderr.write(`no flows recorded yet in ${path}\n`);
      return;
    }
    await new Promise<void>((done) => {
      const stop = followFlowLog(path, (r) => print([r]));
      const end = () => {
        stop();
        done();
      };
      process.once('SIGINT', end);
      process.once('SIGTERM', end);
    });
  },
};
