// `crosslink trace --from IP --to IP [--proto tcp] [--port P]`: asks the live controller whether a
// flow would pass now and why (GET /v1/trace). `policy whatif` answers the policy half offline.
import type { CommandModule } from 'yargs';
import { wholeNumberProblem } from '../flags.js';
import type { TraceResult } from '../../controller/api/trace.js';
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

type TraceEnd = TraceResult['from'];

type TraceArgs = ConnArgs & {
  from: string;
  to: string;
  proto: 'tcp' | 'udp' | 'icmp' | 'any';
  port?: number;
  live?: boolean;
};

type Live = NonNullable<TraceResult['live']>;

/** The live test's per-box table, in path order. */
export function formatLive(live: Live): string {
  if (!live.ran) return `live test not sent: ${live.reason}\n`;
  const rows = live.boxes.map((b) => [
    b.agent,
    b.role,
    b.verdict + (b.rule ? ` by rule ${b.rule}` : ''),
    `${b.packets}/${b.bytes}`,
    `${b.replyPackets}/${b.replyBytes}`,
    b.detail,
  ]);
  const head = ['box', 'role', 'saw', 'pkts/bytes', 'back', 'detail'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd() + '\n';
  return `live test (${live.windowMs} ms window):\n${line(head)}${rows.map(line).join('')}`;
}

function endLine(label: string, e: TraceEnd): string {
  if (e.subnet === null) return `  ${label} ${e.address}: in no subnet of the policy\n`;
  // `unconfirmed` is absent from an older controller's answer.
  const unconfirmed = e.unconfirmed ?? null;
  const who =
    e.servedBy === null
      ? `served by nobody: ${e.unserved}`
      : unconfirmed !== null
        ? `served by ${e.servedBy} or another of its boxes (their own choice; none healthy to the controller: ${unconfirmed})`
        : `served by ${e.servedBy}`;
  return `  ${label} ${e.address}: subnet ${e.subnet} (zone ${e.zone}), ${who}\n`;
}

export function formatTrace(r: TraceResult): string {
  let out = `${r.summary}\n${endLine('from', r.from)}${endLine('to  ', r.to)}`;
  if (r.path) {
    const p = r.path;
    const hops =
      p.kind === 'same-box' ? `${p.from} (LAN to LAN)` : [p.from, ...(p.relay ? [p.relay] : []), p.to].join(' -> ');
    const standby = p.standbyRelays.length > 0 ? `; standby relay ${p.standbyRelays.join(', ')}` : '';
    out += `  path: ${hops}${p.kind === 'same-box' ? '' : ` (${p.kind}, first hop ${p.endpoint || 'endpoint not known yet'}${standby})`}\n`;
  }
  return `${out}  policy version ${r.policyVersion}\n`;
}

/** The problem with the flow's options, or null. */
function usageProblem(a: TraceArgs): string | null {
  if (a.live && a.proto === 'any') return '--live sends one protocol: give --proto tcp, udp or icmp';
  if (a.proto === 'icmp' || a.proto === 'any')
    return a.port === undefined ? null : `--port does not apply to --proto ${a.proto}; leave it out`;
  if (a.port === undefined) return `--port is required with --proto ${a.proto}`;
  return wholeNumberProblem('--port', a.port, 1, 65535, 'a port number');
}

export function createTraceCommand(io: RemoteIo = processIo): CommandModule<object, TraceArgs> {
  return {
    command: 'trace',
    describe:
      'Would a flow pass the live overlay now, and why: the rule, the boxes serving both ends, the tunnel path. Exit 0 it passes, 1 it does not',
    builder: (y) =>
      asArgs(
        connectionOptions(y)
          .option('from', { type: 'string', demandOption: true, describe: 'Source IP address' })
          .option('to', { type: 'string', demandOption: true, describe: 'Destination IP address' })
          .option('proto', {
            choices: ['tcp', 'udp', 'icmp', 'any'] as const,
            default: 'tcp' as const,
            describe: 'Protocol',
          })
          .option('port', { type: 'number', describe: 'Destination port (tcp, udp)' })
          .option('live', {
            type: 'boolean',
            default: false,
            describe:
              'Also send a test flow from the source box (its own address in the source subnet) and show what each box on the path did with it (admin or operator token)',
          })
          .option(jsonOption)
          .example('$0 trace --from 10.60.1.10 --to 10.20.1.10 --port 443', 'social care to the care-record server')
          .example(
            '$0 trace --from 10.60.1.10 --to 10.20.1.10 --port 443 --live',
            'and what each box on the path does with a test flow now',
          ),
      ),
    handler: async (args) => {
      const usage = usageProblem(args);
      if (usage !== null) {
        io.err(`crosslink: ${usage}\n`);
        process.exitCode = EXIT.usage;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        const q = new URLSearchParams({ from: args.from, to: args.to, proto: args.proto });
        if (args.port !== undefined) q.set('port', String(args.port));
        if (args.live) q.set('live', 'true');
        const r = (await api.request<TraceResult>('GET', `/v1/trace?${q.toString()}`)).body;
        io.out(args.json ? `${JSON.stringify(r, null, 2)}\n` : formatTrace(r) + (r.live ? formatLive(r.live) : ''));
        return r.outcome === 'passes' ? EXIT.ok : EXIT.failed;
      });
    },
  };
}

export const traceCommand = createTraceCommand();
