// `crosslink policy check` and `crosslink policy whatif`: work on a local policy file, no controller.
// Handlers set process.exitCode and return; only cli/main.ts exits.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import {
  checkPolicy,
  DEFAULT_EXPIRY_WARN_DAYS,
  DEFAULT_MIN_PREFIX_LENGTH,
  describeErrorCount,
  describeFlow,
  describePairPath,
  evaluate,
  formatTime,
  pairPathJson,
  parsePolicy,
  type CheckSummary,
} from '../../controller/policy/index.js';
import type { ErrorDetail } from '../../lib/errors.js';
import { inputName, readInput } from '../read-input.js';
import { wholeNumberProblem } from '../flags.js';

/** Where output goes; tests pass their own. */
export interface PolicyCliIo {
  readFile(path: string): string;
  out(text: string): void;
  err(text: string): void;
}

const realIo: PolicyCliIo = {
  readFile: readInput,
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** "FILE:LINE: path: message" (line and path left out when unknown). */
export function formatErrorLine(file: string, e: ErrorDetail): string {
  const where = e.line !== undefined ? `${file}:${e.line}` : file;
  return e.path ? `${where}: ${e.path}: ${e.message}` : `${where}: ${e.message}`;
}

function readPolicy(file: string, io: PolicyCliIo): string | undefined {
  try {
    return io.readFile(file);
  } catch (e) {
    io.err(`${inputName(file)}: cannot read: ${(e as Error).message}\n`);
    return undefined;
  }
}

/** The problem with --min-prefix-length, or null. */
function minPrefixProblem(n: number): string | null {
  return wholeNumberProblem('--min-prefix-length', n, 0, 128);
}

export interface CheckArgs {
  file: string;
  json: boolean;
  minPrefixLength: number;
  /** Warn about rules that expire within this many days; default 14. */
  expiryWarnDays?: number;
}

/** Runs the check; returns the exit code (0 valid and all tests pass, 1 otherwise). */
export function runPolicyCheck(cliArgs: CheckArgs, io: PolicyCliIo = realIo, nowMs = Date.now()): number {
  const usage =
    minPrefixProblem(cliArgs.minPrefixLength) ??
    wholeNumberProblem('--expiry-warn-days', cliArgs.expiryWarnDays ?? DEFAULT_EXPIRY_WARN_DAYS, 0, 36_500);
  if (usage !== null) {
    io.err(`${usage}\n`);
    return 2;
  }
  const text = readPolicy(cliArgs.file, io);
  if (text === undefined) return 1;
  const args = { ...cliArgs, file: inputName(cliArgs.file) };
  const s = checkPolicy(text, {
    minPrefixLength: args.minPrefixLength,
    nowMs,
    expiryWarnDays: args.expiryWarnDays ?? DEFAULT_EXPIRY_WARN_DAYS,
  });
  if (args.json) {
    io.out(`${JSON.stringify(checkJson(args.file, s, nowMs), null, 2)}\n`);
    return s.isOk ? 0 : 1;
  }
  if (s.errors.length > 0) {
    for (const e of s.errors) io.err(`${formatErrorLine(args.file, e)}\n`);
    io.err(`${args.file}: invalid: ${describeErrorCount(s.errors)}\n`);
    return 1;
  }
  for (const w of s.warnings) io.err(`${formatErrorLine(args.file, w)}\n`);
  for (const r of s.tests.results) {
    if (!r.isPassed) io.err(`${args.file}: test failed: ${r.label}: got ${r.actual} (${r.reason})\n`);
  }
  io.out(
    `${args.file}: ${s.isOk ? 'valid' : 'valid, but tests failed'}\n` +
      `  agents ${s.agents}, subnets ${s.subnets}, groups ${s.groups}, rules ${s.rules}, peer links ${s.peerLinks}\n` +
      `  tests ${s.tests.passed} passed, ${s.tests.failed} failed\n` +
      s.windows.map((w) => `  window: rule ${w.rule}: ${windowText(w, nowMs)}\n`).join('') +
      (s.unserved.length === 0 ? '' : s.unserved.map((u) => `  unserved: ${u.subnet}: ${u.reason}\n`).join('')) +
      s.indirectPairs.map((p) => `  ${p.a} <-> ${p.b}: ${describePairPath(p.path)}\n`).join(''),
  );
  return s.isOk ? 0 : 1;
}

/** "from 2025-01-06T09:00:00Z (in 3 days) until 2025-03-31T17:00:00Z (in 84 days)". */
function windowText(w: { notBeforeMs?: number; notAfterMs?: number }, nowMs: number): string {
  const rel = (ms: number): string => {
    const s = Math.round((ms - nowMs) / 1000);
    const d =
      Math.abs(s) >= 172_800 ? `${Math.floor(Math.abs(s) / 86_400)} days` : `${Math.ceil(Math.abs(s) / 3600)} h`;
    return s >= 0 ? `in ${d}` : `${d} ago`;
  };
  const parts: string[] = [];
  if (w.notBeforeMs !== undefined) parts.push(`from ${formatTime(w.notBeforeMs)} (${rel(w.notBeforeMs)})`);
  if (w.notAfterMs !== undefined) parts.push(`until ${formatTime(w.notAfterMs)} (${rel(w.notAfterMs)})`);
  return parts.join(' ');
}

function checkJson(file: string, s: CheckSummary, nowMs: number): unknown {
  return {
    file,
    ok: s.isOk,
    errors: s.errors,
    summary: { agents: s.agents, subnets: s.subnets, groups: s.groups, rules: s.rules, peerLinks: s.peerLinks },
    tests: {
      passed: s.tests.passed,
      failed: s.tests.failed,
      results: s.tests.results.map((r) => ({
        label: r.label,
        passed: r.isPassed,
        actual: r.actual,
        rule: r.rule,
        reason: r.reason,
      })),
    },
    warnings: s.warnings,
    windows: s.windows.map((w) => ({
      rule: w.rule,
      notBefore: w.notBeforeMs !== undefined ? formatTime(w.notBeforeMs) : null,
      notAfter: w.notAfterMs !== undefined ? formatTime(w.notAfterMs) : null,
      secondsToExpiry: w.notAfterMs !== undefined ? Math.floor((w.notAfterMs - nowMs) / 1000) : null,
    })),
    unserved: s.unserved,
    paths: s.indirectPairs.map((p) => pairPathJson(p.a, p.b, p.path)),
  };
}

export interface WhatifArgs {
  file: string;
  from: string;
  to: string;
  port?: number;
  proto: 'tcp' | 'udp' | 'icmp';
  json: boolean;
  minPrefixLength: number;
}

/** The problem with whatif's flow options, or null. */
function whatifUsageProblem(args: WhatifArgs): string | null {
  if (args.proto === 'icmp')
    return args.port === undefined ? null : '--port does not apply to --proto icmp (ICMP has no ports); leave it out';
  if (args.port === undefined) return `--port is required with --proto ${args.proto}`;
  return wholeNumberProblem('--port', args.port, 1, 65535, 'a port number');
}

/**
 * Prints allow/deny and the rule. Exit (docs/errors.md): 0 when it could decide (either way), 1 on
 * a file it cannot read or an invalid policy, 2 on a wrong option (a bad port, an unknown name, a
 * flow that mixes IPv4 and IPv6).
 */
export function runPolicyWhatif(cliArgs: WhatifArgs, io: PolicyCliIo = realIo): number {
  const usage = whatifUsageProblem(cliArgs) ?? minPrefixProblem(cliArgs.minPrefixLength);
  if (usage !== null) {
    io.err(`${usage}\n`);
    return 2;
  }
  const text = readPolicy(cliArgs.file, io);
  if (text === undefined) return 1;
  const args = { ...cliArgs, file: inputName(cliArgs.file) };
  const v = parsePolicy(text, { minPrefixLength: args.minPrefixLength });
  if (!v.policy) {
    for (const e of v.errors) io.err(`${formatErrorLine(args.file, e)}\n`);
    return 1;
  }
  const port = args.port;
  let d;
  try {
    d = evaluate(v.policy, args.from, args.to, args.proto, port);
  } catch (e) {
    io.err(`${(e as Error).message}\n`);
    return 2;
  }
  if (args.json) {
    io.out(
      `${JSON.stringify({ from: args.from, to: args.to, proto: args.proto, port: port ?? null, decision: d.decision, rule: d.rule ?? null, reason: d.reason }, null, 2)}\n`,
    );
  } else {
    io.out(
      `${d.decision}: ${args.from} -> ${args.to} ${describeFlow(args.proto, port)}${d.rule ? ` (rule ${d.rule})` : ''}\n  ${d.reason}\n`,
    );
  }
  return 0;
}

const fileOption = {
  alias: 'f',
  type: 'string',
  demandOption: true,
  describe: 'Policy file (YAML or JSON; - for standard input)',
} as const;
const minPrefixOption = {
  type: 'number',
  default: DEFAULT_MIN_PREFIX_LENGTH,
  describe: 'Shortest subnet prefix length accepted',
} as const;

export const checkCommand: CommandModule<object, CheckArgs> = {
  command: 'check',
  describe:
    'Validate a policy file, compile it against its own agents and run its tests (exit 0: valid and all tests pass)',
  builder: (y: Argv<object>) =>
    y
      .option('file', fileOption)
      .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON' })
      .option('min-prefix-length', minPrefixOption)
      .option('expiry-warn-days', {
        type: 'number',
        default: DEFAULT_EXPIRY_WARN_DAYS,
        describe: 'Warn about rules whose not-after is within this many days',
      })
      .example('$0 policy check -f examples/leeds.yaml', 'check the Leeds example') as unknown as Argv<CheckArgs>,
  handler: (args: ArgumentsCamelCase<CheckArgs>) => {
    process.exitCode = runPolicyCheck({
      file: args.file,
      json: args.json,
      minPrefixLength: args.minPrefixLength,
      expiryWarnDays: args.expiryWarnDays,
    });
  },
};

export const whatifCommand: CommandModule<object, WhatifArgs> = {
  command: 'whatif',
  describe: 'Would the policy allow a new connection? Prints allow or deny and the rule',
  builder: (y: Argv<object>) =>
    y
      .option('file', fileOption)
      .option('from', { type: 'string', demandOption: true, describe: 'Source address or subnet name' })
      .option('to', { type: 'string', demandOption: true, describe: 'Destination address or subnet name' })
      .option('port', { type: 'number', describe: 'Destination port (tcp/udp)' })
      .option('proto', { choices: ['tcp', 'udp', 'icmp'] as const, default: 'tcp' as const, describe: 'Protocol' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON' })
      .option('min-prefix-length', minPrefixOption)
      .example(
        '$0 policy whatif -f examples/leeds.yaml --from 10.60.1.10 --to 10.20.1.10 --port 443',
        'social care -> care record, HTTPS',
      ) as unknown as Argv<WhatifArgs>,
  handler: (args: ArgumentsCamelCase<WhatifArgs>) => {
    process.exitCode = runPolicyWhatif({
      file: args.file,
      from: String(args.from),
      to: String(args.to),
      port: args.port,
      proto: args.proto,
      json: args.json,
      minPrefixLength: args.minPrefixLength,
    });
  },
};
