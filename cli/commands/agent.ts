// `crosslink agent run | status | down | config check`. Handlers set process.exitCode and return;
// only cli/main.ts exits.
import { existsSync } from 'node:fs';
import type { Argv, CommandModule, Options } from 'yargs';
import type { Logger } from 'pino';
import { createLogger } from '../../lib/logger.js';
import { isCrosslinkError } from '../../lib/errors.js';
import {
  DEFAULT_CONFIG_FILE,
  DEFAULT_STATUS_LISTEN,
  loadAgentConfigFile,
  resolveAgentOptions,
  settingsFromFlags,
  type AgentSettingsInput,
} from '../../agent/config.js';
import type { AgentStatus } from '../../agent/health/status-server.js';
import { VERSION } from '../../lib/version.js';
import { flowsCommand } from './agent-flows.js';

// The agent's runtime (Linux host, Connect client, reconciler) is imported by the handlers that
// need it (run, down), not here: cli/main.ts loads every command module for every command.
const agentMain = () => import('../../agent/main.js');

/** Where output goes; tests pass their own. */
export interface AgentCliIo {
  out(text: string): void;
  err(text: string): void;
  fetch: typeof fetch;
}

const realIo: AgentCliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  fetch: (...a) => fetch(...a),
};

type Flags = Record<string, unknown> & { config?: string };

function describeError(e: unknown): string {
  if (isCrosslinkError(e)) return e.message;
  return e instanceof Error ? e.message : String(e);
}

/** File (when given, or the default file when it exists) + flags. */
async function loadSettings(flags: Flags): Promise<{ file: AgentSettingsInput; flags: AgentSettingsInput }> {
  const path = flags.config ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  const file = path ? await loadAgentConfigFile(path) : {};
  return { file, flags: settingsFromFlags(flags) };
}

// The options as plain tables (yargs reads them for help and errors; cli/agent-main.ts's fast path
// parses `agent run` with the same table, without loading yargs: cli/fast-path.ts).
const SETTING_OPTIONS: Record<string, Options> = {
  config: {
    type: 'string',
    describe: `Agent config file (same keys as these flags; default ${DEFAULT_CONFIG_FILE} if it exists)`,
  },
  'state-dir': {
    type: 'string',
    describe: 'Directory for keys, credential and the last config (default /var/lib/crosslink/agent)',
  },
  interface: { type: 'string', describe: 'WireGuard interface the agent owns (default crosslink0)' },
};

const settingFlags = (y: Argv) => y.options(SETTING_OPTIONS);

export const RUN_OPTIONS: Record<string, Options> = {
  ...SETTING_OPTIONS,
  join: { type: 'string', describe: 'Join token (first run only)' },
  name: { type: 'string', describe: 'Agent name (default: the host name)' },
  'listen-port': { type: 'number', describe: 'WireGuard UDP port (default 51820)' },
  endpoint: {
    type: 'string',
    describe:
      'NAME=HOST:PORT other boxes on underlay NAME reach this one at; repeat once per underlay (a bare HOST:PORT is the underlay "default")',
  },
  relay: {
    type: 'boolean',
    describe:
      "Consent to relay other boxes' encrypted WireGuard datagrams between this box's underlays (the policy must say relay: true too)",
  },
  advertise: { type: 'string', describe: 'Prefixes this box can serve, comma-separated' },
  'status-listen': {
    type: 'string',
    describe: `Local status endpoint (default ${DEFAULT_STATUS_LISTEN}; "" = off)`,
  },
  wireguard: {
    choices: ['kernel', 'userspace', 'auto'],
    describe: 'WireGuard implementation (default auto)',
  },
  mtu: { type: 'number', describe: 'MTU of the interface (default 1420)' },
  'report-interval-seconds': {
    type: 'number',
    describe: "Seconds between reports to the controller (default 10; match the controller's report-interval-seconds)",
  },
  'flow-log-mb': {
    type: 'number',
    describe: 'Size limit of the flow log in STATE_DIR (flows.jsonl and one rotation), MB (default 32; 0 = off)',
  },
  'ipfix-collector': {
    type: 'string',
    array: true,
    describe: 'Export flow records as IPFIX (UDP) to HOST:PORT (default port 4739); repeat for more',
  },
  syslog: {
    type: 'string',
    describe: 'Send flow records as RFC 5424 syslog to udp://HOST[:514], tcp://HOST[:601] or tls://HOST[:6514]',
  },
  'syslog-ca': {
    type: 'string',
    describe: 'PEM CA file for a tls:// syslog receiver (default: system CAs)',
  },
};

// ---------- run ----------

export const runCommand: CommandModule<object, Flags> = {
  command: 'run',
  describe: 'Run the agent: enroll (first time), then keep this box equal to its config',
  builder: (y) => y.options(RUN_OPTIONS),
  handler: async (argv) => {
    const log = createLogger({ name: 'crosslink-agent' });
    let host: { close(): void } | null = null;
    try {
      const s = await loadSettings(argv);
      const opts = resolveAgentOptions(s.flags, s.file, VERSION);
      const { realAgentDeps, runAgent } = await agentMain();
      const deps = realAgentDeps(log);
      host = deps.host;
      await runAgent(opts, deps);
    } catch (e) {
      log.error({ err: describeError(e) }, 'agent stopped with an error');
      process.stderr.write(`crosslink agent run: ${describeError(e)}\n`);
      process.exitCode = 1;
    } finally {
      host?.close();
      log.flush?.();
    }
  },
};

// ---------- status ----------

export interface StatusArgs {
  statusListen: string;
  json: boolean;
  timeoutMs?: number;
}

const age = (s: number | null) =>
  s === null
    ? 'never'
    : s < 120
      ? `${Math.round(s)} s ago`
      : s < 7200
        ? `${Math.round(s / 60)} min ago`
        : `${Math.round(s / 3600)} h ago`;
const bytes = (n: number) =>
  n < 1024
    ? `${n} B`
    : n < 1024 ** 2
      ? `${(n / 1024).toFixed(1)} KiB`
      : n < 1024 ** 3
        ? `${(n / 1024 ** 2).toFixed(1)} MiB`
        : `${(n / 1024 ** 3).toFixed(1)} GiB`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd())
    .join('\n');
}

/** Human-readable status. */
export function formatStatus(s: AgentStatus): string {
  const lines: string[] = [];
  lines.push(`agent       ${s.name} (${s.version})  interface ${s.interface}  overlay ${s.overlayAddress || '-'}`);
  const c = s.controller;
  lines.push(
    c.isConnected
      ? `controller  connected  ${c.url}`
      : `controller  NOT CONNECTED: config stale since ${c.staleSince} (${Math.round(c.staleSeconds)} s)${c.reason ? `: ${c.reason}` : ''}`,
  );
  lines.push(
    `generation  applied ${s.generation.applied}, enforcing ${s.generation.desired}, seen ${s.generation.seen}${s.isApplied ? '' : '  (NOT fully applied)'}`,
  );
  lines.push(
    s.lastApply
      ? `last apply  ${s.lastApply.at} (${s.lastApply.durationMs} ms, ${s.lastApply.steps} steps)`
      : 'last apply  never',
  );
  if (s.errors.length === 0) lines.push('errors      none');
  else {
    lines.push(`errors      ${s.errors.length}`);
    for (const e of s.errors) {
      const what = e.command ? `${e.command} -> exit ${e.exitCode}: ${e.stderr.trim().split('\n')[0]}` : e.message;
      lines.push(`  ${e.step}${e.isTerminal ? ' (config invalid, not retried)' : ''}: ${what}`);
    }
  }
  if (s.peers.length === 0) lines.push('peers       none');
  else {
    lines.push(`peers       ${s.peers.length}`);
    lines.push(
      table([
        ['NAME', 'ENDPOINT', 'HANDSHAKE', 'RX', 'TX'],
        ...s.peers.map((p) => [
          p.name,
          p.endpoint || '-',
          age(p.handshakeAgeSeconds),
          bytes(p.rxBytes),
          bytes(p.txBytes),
        ]),
      ]),
    );
  }
  if (s.failover) formatFailover(s.failover, lines);
  return `${lines.join('\n')}\n`;
}

/** Serving groups: who carries each one this box sends to, whether it holds the gateways of the
 *  ones it may serve, and what the echo says of each peer. */
/** A sending box's choice, and whether it is the candidate whose echo says it holds the gateway. */
function sentTo(active: string, holder: string | null): string {
  if (holder === active) return `sent to ${active} (holds the gateway)`;
  return holder === null ? `sent to ${active} (no holder heard)` : `sent to ${active} (gateway held by ${holder})`;
}

function formatFailover(f: NonNullable<AgentStatus['failover']>, lines: string[]): void {
  lines.push(
    `failover    ${f.groups.length} serving group(s); ${f.isEligible ? 'reaches the overlay' : 'reaches NO peer over the overlay (holds no gateway)'}`,
  );
  lines.push(
    table([
      ['GROUP', 'CANDIDATES', 'NOW'],
      ...f.groups.map((g) => [
        g.name,
        g.candidates.join(' > '),
        g.role === 'sender' ? sentTo(g.active, g.holder) : g.isHolding ? 'this box holds the gateway' : 'standing by',
      ]),
    ]),
  );
  if (f.peers.length > 0)
    lines.push(
      table([
        ['ECHO PEER', 'STATE', 'FOR'],
        ...f.peers.map((p) => [p.name, p.state, p.forSeconds === null ? '-' : `${p.forSeconds}s`]),
      ]),
    );
}

/**
 * Exit code: 0 reachable, connected and fully applied; 1 reachable but stale, failing or not
 * applied; 2 the status endpoint cannot be reached (agent not running?).
 */
export async function runAgentStatus(args: StatusArgs, io: AgentCliIo = realIo): Promise<number> {
  const url = `http://${args.statusListen}/status`;
  let s: AgentStatus;
  try {
    const res = await io.fetch(url, { signal: AbortSignal.timeout(args.timeoutMs ?? 3000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    s = (await res.json()) as AgentStatus;
  } catch (e) {
    io.err(`crosslink agent status: cannot read ${url}: ${describeError(e)} (is the agent running?)\n`);
    return 2;
  }
  io.out(args.json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
  return s.controller.isConnected && s.isApplied && s.errors.length === 0 ? 0 : 1;
}

export const statusCommand: CommandModule<object, Flags> = {
  command: 'status',
  describe: 'Show the local agent status (works with the controller unreachable). Exit 0 ok, 1 degraded, 2 unreachable',
  builder: (y) =>
    y
      .option('status-listen', {
        type: 'string',
        describe: `Status endpoint of the agent (default from --config, else ${DEFAULT_STATUS_LISTEN})`,
      })
      .option('config', { type: 'string', describe: 'Agent config file to take status-listen from' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the raw JSON' }),
  handler: async (argv) => {
    try {
      const s = await loadSettings({ config: argv.config, 'status-listen': argv['status-listen'] });
      const statusListen = s.flags.statusListen || s.file.statusListen || DEFAULT_STATUS_LISTEN;
      process.exitCode = await runAgentStatus({ statusListen, json: argv.json === true });
    } catch (e) {
      process.stderr.write(`crosslink agent status: ${describeError(e)}\n`);
      process.exitCode = 2;
    }
  },
};

// ---------- down ----------

export const downCommand: CommandModule<object, Flags> = {
  command: 'down',
  describe: 'Remove everything the agent created on this box (interface, routes, nft table). Stop the service first',
  builder: (y) => settingFlags(y),
  handler: async (argv) => {
    const log: Logger = createLogger({ name: 'crosslink-agent' });
    const { agentDown, realHost } = await agentMain();
    const host = realHost();
    try {
      const s = await loadSettings({ config: argv.config, interface: argv.interface });
      const { interfaceName } = resolveAgentOptions(s.flags, s.file, VERSION);
      const errors = await agentDown({ interfaceName }, { host, log });
      if (errors.length === 0) {
        process.stdout.write(`removed ${interfaceName}, Crosslink's routes and the nft table crosslink\n`);
      } else {
        for (const e of errors)
          process.stderr.write(
            `crosslink agent down: ${e.step}: ${e.command ? `${e.command} -> exit ${e.exitCode}: ` : ''}${e.stderr.trim()}\n`,
          );
        process.exitCode = 1;
      }
    } catch (e) {
      process.stderr.write(`crosslink agent down: ${describeError(e)}\n`);
      process.exitCode = 1;
    } finally {
      host.close();
    }
  },
};

// ---------- config check ----------

export async function runConfigCheck(file: string, io: Pick<AgentCliIo, 'out' | 'err'> = realIo): Promise<number> {
  try {
    const s = await loadAgentConfigFile(file);
    const o = resolveAgentOptions({}, s, VERSION);
    io.out(
      `${file}: valid\n  name ${o.name ?? '(host name)'}, interface ${o.interfaceName}, listen-port ${o.listenPort}, endpoint ${o.endpoint || '(none)'}, ` +
        `advertise ${o.advertise.join(',') || '(none)'}, status-listen ${o.statusListen || '(off)'}, wireguard ${o.wireguard}\n`,
    );
    return 0;
  } catch (e) {
    io.err(`${describeError(e)}\n`);
    return 1;
  }
}

export const configCommand: CommandModule = {
  command: 'config',
  describe: 'Agent config file tools',
  builder: (y) =>
    y
      .command({
        command: 'check',
        describe: 'Validate the agent config file; errors name the key and line',
        builder: (yy) => yy.option('config', { type: 'string', default: DEFAULT_CONFIG_FILE, describe: 'Config file' }),
        handler: async (argv) => {
          process.exitCode = await runConfigCheck(String(argv.config));
        },
      })
      .demandCommand(1, 'Name a config subcommand (check).'),
  handler: () => undefined,
};

export const agentCommand: CommandModule = {
  command: 'agent',
  describe: 'Run and inspect the Crosslink agent on this edge box',
  builder: (y) =>
    y
      .command(runCommand as unknown as CommandModule)
      .command(statusCommand as unknown as CommandModule)
      .command(downCommand as unknown as CommandModule)
      .command(flowsCommand as unknown as CommandModule)
      .command(configCommand)
      .demandCommand(1, 'Name an agent subcommand (see --help).'),
  handler: () => undefined,
};
