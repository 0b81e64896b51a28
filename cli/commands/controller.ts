// `crosslink controller serve` runs the controller; `crosslink controller config check` validates a
// controller.yaml (every problem with its key and line). Exit codes: 0 ok (serve: stopped cleanly),
// 1 failed at run time, 2 bad settings.
import type { Argv, CommandModule } from 'yargs';
import { CrosslinkError } from '../../lib/errors.js';
import type { ControllerSettings } from '../../controller/config.js';
import { EXIT, processIo, type RemoteIo } from './connection.js';

// The controller's modules (fastify, kysely, better-sqlite3, pg, x509, ...) are imported by the
// handlers that need them, not here: every `crosslink` process loads this file, and the agent
// (`crosslink agent run`, a long-running process on every edge box) must not carry them.
const controllerMain = () => import('../../controller/main.js');
const controllerConfig = () => import('../../controller/config.js');

interface ServeArgs {
  config?: string;
  dataDir?: string;
  listen?: string | string[];
  database?: string;
  overlayCidr?: string;
  tlsCert?: string;
  tlsKey?: string;
  url?: string | string[];
  san?: string[];
  heartbeatIntervalSeconds?: number;
  logLevel?: string;
  reportIntervalSeconds?: number;
  streamPingIntervalSeconds?: number;
  streamPingTimeoutSeconds?: number;
  silentIntervals?: number;
  healthIntervalSeconds?: number;
  handshakeDegradedSeconds?: number;
  handshakeDownSeconds?: number;
  failoverHoldDownSeconds?: number;
  probeIntervalSeconds?: number;
  metricsToken?: string;
  livenessIntervalMs?: number;
  livenessMultiplier?: number;
  livenessPort?: number;
  syslog?: string;
  syslogCa?: string;
}

function settingsOptions<T>(y: Argv<T>) {
  return y
    .option('config', { type: 'string', describe: 'controller.yaml with the same keys as these flags (flags win)' })
    .option('data-dir', { type: 'string', describe: 'Where the SQLite database, TLS identity and admin.token live' })
    .option('listen', {
      type: 'string',
      array: true,
      describe:
        'HOST:PORT to listen on (default 0.0.0.0:8443); repeat once per network the controller host is on: each address serves the API and the agents',
    })
    .option('database', {
      type: 'string',
      describe: 'postgres://… to use PostgreSQL (default: SQLite in the data dir)',
    })
    .option('overlay-cidr', { type: 'string', describe: 'Pool of agent overlay addresses (default 100.64.0.0/10)' })
    .option('tls-cert', {
      type: 'string',
      describe: 'Bring your own server certificate chain (PEM; last is the CA clients pin)',
    })
    .option('tls-key', { type: 'string', describe: 'Key for --tls-cert' })
    .option('url', {
      type: 'string',
      array: true,
      describe:
        'URL agents and the CLI dial, written into join tokens (default from --listen); repeat once per network the controller host is on: agents try them in turn',
    })
    .option('san', {
      type: 'string',
      array: true,
      describe: 'Extra names/addresses for the generated server certificate',
    })
    .option('heartbeat-interval-seconds', { type: 'number', describe: 'Config stream heartbeat, 1-30 (default 10)' })
    .option('log-level', {
      type: 'string',
      describe: 'fatal, error, warn, info, debug, trace or silent (default info)',
    })
    .option('report-interval-seconds', {
      type: 'number',
      describe: "Agents' report interval, as set on the agents (default 10)",
    })
    .option('silent-intervals', {
      type: 'number',
      describe: 'Report intervals of silence before an agent is down and fails over (default 3)',
    })
    .option('health-interval-seconds', { type: 'number', describe: 'Health evaluation period (default 5)' })
    .option('handshake-degraded-seconds', {
      type: 'number',
      describe: 'Handshake age that makes a link degraded (default 180)',
    })
    .option('handshake-down-seconds', {
      type: 'number',
      describe: 'Handshake age that makes a link down (default 300)',
    })
    .option('failover-hold-down-seconds', {
      type: 'number',
      describe: 'How long a recovered primary must stay healthy before it serves again (default 30)',
    })
    .option('probe-interval-seconds', {
      type: 'number',
      describe: "Agents' probe interval, sent in their configs (default 0: the agents' 5 s)",
    })
    .option('stream-ping-interval-seconds', {
      type: 'number',
      describe: 'HTTP/2 ping to every agent connection, 0.1-300 (default 5)',
    })
    .option('stream-ping-timeout-seconds', {
      type: 'number',
      describe: 'A ping unanswered this long closes the connection: a dead box is noticed without a FIN (default 5)',
    })
    .option('metrics-token', {
      type: 'string',
      describe: 'Bearer token GET /metrics requires (default: /metrics is open)',
    })
    .option('liveness-interval-ms', {
      type: 'number',
      describe: "Failover at the edges: the agents' echo period through the tunnel, ms (default 150)",
    })
    .option('liveness-multiplier', {
      type: 'number',
      describe:
        'Echo periods without a packet before a peer counts as dead (default 5: 825 ms with half an interval of grace)',
    })
    .option('liveness-port', {
      type: 'number',
      describe: 'UDP port of the echo and of the LAN advertisements between standbys (default 51821)',
    })
    .option('syslog', {
      type: 'string',
      describe: 'Send the audit log as RFC 5424 syslog to udp://HOST[:514], tcp://HOST[:601] or tls://HOST[:6514]',
    })
    .option('syslog-ca', {
      type: 'string',
      describe: 'PEM CA file for a tls:// syslog receiver (default: system CAs)',
    });
}

function flagsOf(a: ServeArgs): ControllerSettings {
  return {
    'data-dir': a.dataDir,
    listen: a.listen === undefined ? undefined : [a.listen].flat(),
    database: a.database,
    'overlay-cidr': a.overlayCidr,
    'tls-cert': a.tlsCert,
    'tls-key': a.tlsKey,
    url: a.url === undefined ? undefined : [a.url].flat(),
    san: a.san,
    'heartbeat-interval-seconds': a.heartbeatIntervalSeconds,
    'log-level': a.logLevel,
    'report-interval-seconds': a.reportIntervalSeconds,
    'silent-intervals': a.silentIntervals,
    'health-interval-seconds': a.healthIntervalSeconds,
    'handshake-degraded-seconds': a.handshakeDegradedSeconds,
    'handshake-down-seconds': a.handshakeDownSeconds,
    'failover-hold-down-seconds': a.failoverHoldDownSeconds,
    'probe-interval-seconds': a.probeIntervalSeconds,
    'metrics-token': a.metricsToken,
    'stream-ping-interval-seconds': a.streamPingIntervalSeconds,
    'stream-ping-timeout-seconds': a.streamPingTimeoutSeconds,
    'liveness-interval-ms': a.livenessIntervalMs,
    'liveness-multiplier': a.livenessMultiplier,
    'liveness-port': a.livenessPort,
    syslog: a.syslog,
    'syslog-ca': a.syslogCa,
  };
}

function reportSettingsError(io: RemoteIo, e: unknown, file?: string): number {
  if (e instanceof CrosslinkError && e.code === 'config_invalid') {
    io.err(`crosslink: ${e.message}\n`);
    if (e.details.length > 1)
      for (const d of e.details) io.err(`  ${file && d.line ? `${file}:${d.line}: ` : ''}${d.message}\n`);
    return EXIT.usage;
  }
  io.err(`crosslink: ${(e as Error).message}\n`);
  return EXIT.failed;
}

export function controllerCommand(io: RemoteIo = processIo): CommandModule {
  const serve: CommandModule<object, ServeArgs> = {
    command: 'serve',
    describe: 'Run the controller (REST API and agent service on one HTTPS port, or one per --listen)',
    builder: (y) => settingsOptions(y),
    handler: async (args) => {
      try {
        const { runController } = await controllerMain();
        const running = await runController({ settings: flagsOf(args), configFile: args.config, print: io.out });
        await running.closed;
        process.exitCode = EXIT.ok;
      } catch (e) {
        process.exitCode = reportSettingsError(io, e, args.config);
      }
    },
  };
  const check: CommandModule<object, ServeArgs> = {
    command: 'check',
    describe: 'Validate a controller.yaml (and any flags given with it) without starting',
    builder: (y) => settingsOptions(y).demandOption('config'),
    handler: async (args) => {
      try {
        const [{ loadSettingsFile }, { resolveSettings }] = await Promise.all([controllerConfig(), controllerMain()]);
        await loadSettingsFile(args.config!);
        const s = await resolveSettings(flagsOf(args), args.config);
        io.out(
          `${args.config}: valid (data-dir ${s['data-dir']}, listen ${s.listen.join(', ')}, database ${s.database?.replace(/\/\/[^@/]*@/, '//…@') ?? 'SQLite in the data dir'}, overlay ${s['overlay-cidr']})\n`,
        );
        process.exitCode = EXIT.ok;
      } catch (e) {
        process.exitCode = reportSettingsError(io, e, args.config);
      }
    },
  };
  return {
    command: 'controller',
    describe: 'Run and configure the controller',
    builder: (y) =>
      y
        .command(serve)
        .command('config', 'Controller settings', (c) =>
          c.command(check).demandCommand(1, 'Name a config subcommand (see --help).'),
        )
        .demandCommand(1, 'Name a controller subcommand (see --help).'),
    handler: () => {},
  };
}
