// `crosslink status` (a table for people) and `crosslink check` (a monitoring plugin by the Nagios
// conventions, fit for cron, Icinga or a systemd timer as it is). Both read GET /v1/health from the
// controller; the fetching is a parameter so tests (and other transports) can replace it.
// Handlers set process.exitCode and return; only cli/main.ts exits.
import type { ArgumentsCamelCase, Argv, CommandModule, Options } from 'yargs';
import {
  checkHealth,
  formatStatus,
  parseThresholds,
  unreachableResult,
  type CheckFilter,
  type CheckResult,
  type HealthResponse,
  type Thresholds,
} from '../health-format.js';
import { ApiClient } from './api.js';
import { timeoutProblem } from '../flags.js';

export interface ConnectionArgs {
  /** One URL, or several tried in turn (repeated --controller, or spaces in CROSSLINK_CONTROLLER). */
  controller: string | string[];
  token: string;
  caFingerprint: string;
  /** Seconds to wait for the controller. */
  timeout: number;
}

/** Fetches GET /v1/health; throws if the controller cannot be reached or answers an error. */
export type HealthFetcher = (conn: ConnectionArgs) => Promise<unknown>;

export interface HealthCliDeps {
  fetchHealth: HealthFetcher;
  out(text: string): void;
  err(text: string): void;
}

/** The real transport: the pinned-TLS API client (cli/commands/api.ts). */
export const fetchHealthViaApi: HealthFetcher = async (conn) => {
  const client = await ApiClient.connect({
    controller: conn.controller,
    token: conn.token,
    caFingerprint: conn.caFingerprint,
    timeoutMs: conn.timeout * 1000,
  });
  try {
    return (await client.request('GET', '/v1/health')).body;
  } finally {
    client.close();
  }
};

const realDeps: HealthCliDeps = {
  fetchHealth: fetchHealthViaApi,
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

function isHealthResponse(body: unknown): body is HealthResponse {
  const b = body as Partial<HealthResponse> | null;
  return (
    typeof b === 'object' &&
    b !== null &&
    typeof b.state === 'string' &&
    Array.isArray(b.agents) &&
    Array.isArray(b.links) &&
    Array.isArray(b.probes)
  );
}

/** The options of `status` and `check`, as yargs reads them; cli/fast-path.ts parses the same
 *  tables without yargs for the runs monitoring makes every minute. */
export const CONNECTION_OPTIONS = {
  controller: {
    type: 'string',
    describe:
      'Controller URL, https://HOST:PORT; repeat for a controller on several networks (tried in turn) (env CROSSLINK_CONTROLLER)',
    default: process.env.CROSSLINK_CONTROLLER,
    defaultDescription: '$CROSSLINK_CONTROLLER',
  },
  token: {
    type: 'string',
    describe: 'API token (env CROSSLINK_TOKEN; prefer the environment, argv is visible to other users)',
    default: process.env.CROSSLINK_TOKEN,
    defaultDescription: '$CROSSLINK_TOKEN',
  },
  'ca-fingerprint': {
    type: 'string',
    describe: "sha256 of the controller CA's DER, hex (env CROSSLINK_CA_FINGERPRINT)",
    default: process.env.CROSSLINK_CA_FINGERPRINT,
    defaultDescription: '$CROSSLINK_CA_FINGERPRINT',
  },
  timeout: { type: 'number', describe: 'Seconds to wait for the controller', default: 10 },
} satisfies Record<string, Options>;

export const STATUS_OPTIONS = {
  ...CONNECTION_OPTIONS,
  json: { type: 'boolean', default: false, describe: "Print the controller's JSON answer" },
} satisfies Record<string, Options>;

export const CHECK_OPTIONS = {
  ...CONNECTION_OPTIONS,
  agent: { type: 'string', describe: 'Check only this agent' },
  link: { type: 'string', describe: 'Check only this link, A:B' },
  probe: { type: 'string', describe: 'Check only this path probe, RULE/INDEX (or AGENT/RULE/INDEX)' },
  warning: {
    alias: 'w',
    type: 'string',
    array: true,
    describe:
      'WARNING when METRIC is outside RANGE: rtt=50 (ms), loss=5 (%), handshake=150 (s); Nagios range syntax (10, 10:, ~:10, 10:20, @10:20); repeatable',
  },
  critical: {
    alias: 'c',
    type: 'string',
    array: true,
    describe: 'CRITICAL when METRIC is outside RANGE, as --warning',
  },
  json: {
    type: 'boolean',
    default: false,
    describe: 'Print {status, exitCode, summary, perfdata} as JSON instead of the plugin line (same exit code)',
  },
} satisfies Record<string, Options>;

interface RawConnection {
  controller?: string | string[];
  token?: string;
  caFingerprint?: string;
  timeout?: number;
}

/** The connection, or the name of the first missing setting. */
function connection(a: RawConnection): ConnectionArgs | string {
  if (!a.controller) return 'no controller: pass --controller https://HOST:PORT or set CROSSLINK_CONTROLLER';
  if (!a.token) return 'no API token: set CROSSLINK_TOKEN or pass --token';
  if (!a.caFingerprint) return 'no CA fingerprint: pass --ca-fingerprint or set CROSSLINK_CA_FINGERPRINT';
  const timeout = a.timeout === undefined ? null : timeoutProblem(a.timeout);
  if (timeout !== null) return timeout;
  return { controller: a.controller, token: a.token, caFingerprint: a.caFingerprint, timeout: a.timeout ?? 10 };
}

function errorText(e: unknown): string {
  const err = e as { code?: string; message?: string };
  const msg = err?.message ?? String(e);
  return err?.code && err.code !== 'internal' ? `${msg} (${err.code})` : msg;
}

export interface StatusArgs extends RawConnection {
  json?: boolean;
}

/** `crosslink status`. Returns the exit code: 0 printed, 1 the controller refused, 3 unreachable. */
export async function runStatus(args: StatusArgs, deps: HealthCliDeps = realDeps): Promise<number> {
  const conn = connection(args);
  if (typeof conn === 'string') {
    deps.err(`crosslink status: ${conn}\n`);
    return 2;
  }
  let body: unknown;
  try {
    body = await deps.fetchHealth(conn);
  } catch (e) {
    deps.err(`crosslink status: ${errorText(e)}\n`);
    return (e as Error)?.name === 'UnreachableError' ? 3 : 1;
  }
  if (!isHealthResponse(body)) {
    deps.err('crosslink status: the controller answered something that is not a health report\n');
    return 1;
  }
  deps.out(args.json ? `${JSON.stringify(body, null, 2)}\n` : formatStatus(body));
  return 0;
}

export interface CheckArgs extends RawConnection {
  agent?: string;
  link?: string;
  probe?: string;
  /** METRIC=RANGE items (rtt ms, loss %, handshake s), Nagios range syntax. */
  warning?: string[];
  critical?: string[];
  json?: boolean;
}

/** `crosslink check`. Prints one line on stdout; returns the Nagios exit code (0, 1, 2, 3). */
export async function runCheck(args: CheckArgs, deps: HealthCliDeps = realDeps): Promise<number> {
  const conn = connection(args);
  let result: CheckResult;
  let thresholds: Thresholds | string;
  try {
    thresholds = parseThresholds(args.warning, args.critical);
  } catch (e) {
    thresholds = (e as Error).message;
  }
  if (typeof conn === 'string' || typeof thresholds === 'string') {
    // A usage error: UNKNOWN, as the plugin guidelines say.
    result = unreachableResult(typeof conn === 'string' ? conn : (thresholds as string));
  } else {
    try {
      const body = await deps.fetchHealth(conn);
      if (!isHealthResponse(body))
        result = unreachableResult('the controller answered something that is not a health report');
      else {
        const filter: CheckFilter = {};
        if (args.agent) filter.agent = args.agent;
        if (args.link) filter.link = args.link;
        if (args.probe) filter.probe = args.probe;
        result = checkHealth(body, filter, thresholds);
      }
    } catch (e) {
      // Unreachable, TLS pin mismatch, refused token, controller not ready: the check cannot tell.
      result = unreachableResult(errorText(e));
    }
  }
  if (args.json) {
    const summary = result.summary ?? result.line.replace(/^CROSSLINK \S+ - /, '');
    deps.out(
      `${JSON.stringify({ status: result.status, exitCode: result.exitCode, summary, perfdata: result.perfdata ?? {} })}\n`,
    );
  } else deps.out(`${result.line}\n`);
  return result.exitCode;
}

export function createStatusCommand(deps: HealthCliDeps = realDeps): CommandModule<object, StatusArgs> {
  return {
    command: 'status',
    describe: 'Show the state of every agent, link and path probe, worst first, with the reason',
    builder: (y: Argv) => y.options(STATUS_OPTIONS),
    handler: async (argv: ArgumentsCamelCase<StatusArgs>) => {
      process.exitCode = await runStatus(argv, deps);
    },
  };
}

export function createCheckCommand(deps: HealthCliDeps = realDeps): CommandModule<object, CheckArgs> {
  return {
    command: 'check',
    describe: 'Monitoring plugin: one summary line with performance data; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN',
    builder: (y: Argv) =>
      y
        .options(CHECK_OPTIONS)
        .example(
          '$0 check -w rtt=50 -c rtt=200 -w loss=5 -c loss=20',
          'thresholds on the worst link RTT (ms) and loss (%)',
        )
        .example('$0 check', 'the whole fleet')
        .example('$0 check --link gp-surgery:civic-hall', 'one link, e.g. as an Icinga service'),
    handler: async (argv: ArgumentsCamelCase<CheckArgs>) => {
      process.exitCode = await runCheck(argv, deps);
    },
  };
}

/** `crosslink status`, wired to the real controller. */
export const statusCommand = createStatusCommand();
/** `crosslink check` (health), wired to the real controller. Import as `healthCheckCommand` next to `policy check`. */
export const checkCommand = createCheckCommand();
