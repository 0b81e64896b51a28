// The commands that talk to a controller's REST API: policy apply/get/history/rollback, agents,
// join-token, token, audit. Connection: --controller/--token/--ca-fingerprint or CROSSLINK_CONTROLLER,
// CROSSLINK_TOKEN, CROSSLINK_CA_FINGERPRINT. Readable tables by default, --json on read commands.
//
// Exit codes: 0 done; 1 the controller refused or the check failed (invalid policy, failing tests,
// stale version, broken audit chain, no permission); 2 usage (missing or bad options); 3 cannot
// reach the controller, or it could not prove it holds the pinned CA.
// Handlers set process.exitCode; they never exit.
import { inputName, readInput } from '../read-input.js';
import { givenText, timeoutProblem, wholeNumberProblem } from '../flags.js';
import type { Argv, CommandModule } from 'yargs';
import { CrosslinkError, type ErrorDetail } from '../../lib/errors.js';
import { ApiClient, ApiError, UnreachableError } from './api.js';
import { describePathView } from '../../controller/policy/paths.js';
import type { PairPathView } from '../../controller/distribute/port.js';

export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const;

export interface RemoteIo {
  out(text: string): void;
  err(text: string): void;
  readFile(path: string): string;
  env: Record<string, string | undefined>;
  /** Asks a yes/no question when a person is at a terminal; null: nobody to ask (a script). */
  ask?(question: string): Promise<boolean | null>;
}

export const processIo: RemoteIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  readFile: readInput,
  env: process.env,
  async ask(question) {
    if (!process.stdin.isTTY || !process.stderr.isTTY) return null;
    const { createInterface } = await import('node:readline/promises');
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      return /^\s*y(es)?\s*$/i.test(await rl.question(`${question} [y/N] `));
    } finally {
      rl.close();
    }
  },
};

/** A destructive command goes ahead with --yes, or when the person at the terminal says yes; a
 *  script (no terminal) is not asked. Prints why when it does not go ahead. */
async function isConfirmed(args: { yes?: boolean }, io: RemoteIo, question: string): Promise<boolean> {
  if (args.yes === true || io.ask === undefined) return true;
  const answer = await io.ask(question);
  if (answer === false) io.err('crosslink: not done (answer y, or pass --yes)\n');
  return answer !== false;
}

const yesOption = { yes: { alias: 'y', type: 'boolean' as const, default: false, describe: 'Do not ask for confirmation at a terminal' } };

export interface ConnArgs { controller?: string | string[]; token?: string; caFingerprint?: string; json?: boolean; timeout?: number; yes?: boolean }

export function connectionOptions<T>(y: Argv<T>) {
  return y
    .option('controller', { type: 'string', describe: 'Controller URL, https://HOST:PORT; repeat for a controller on several networks (tried in turn) [env CROSSLINK_CONTROLLER, space-separated]' })
    .option('token', { type: 'string', describe: 'API token [env CROSSLINK_TOKEN]' })
    .option('ca-fingerprint', { type: 'string', describe: "SHA-256 fingerprint of the controller's CA [env CROSSLINK_CA_FINGERPRINT]" })
    .option('timeout', { type: 'number', default: 30, describe: 'Seconds to wait for the controller' });
}

/** yargs infers kebab-case keys from options; handlers read the camelCase aliases it also sets. */
export const asArgs = <U>(y: unknown): Argv<U> => y as Argv<U>;

export const jsonOption = { json: { type: 'boolean' as const, default: false, describe: 'Print JSON instead of a table' } };

// ---- output helpers ------------------------------------------------------------------------

export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

export function time(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function detailLine(d: ErrorDetail, file?: string): string {
  const where = [file && d.line !== undefined ? `${file}:${d.line}` : d.line !== undefined ? `line ${d.line}` : '', d.path ?? ''].filter(Boolean).join(': ');
  return `  ${where ? `${where}: ` : ''}${d.message}\n`;
}

/** "90s", "15m", "1h", "7d" or plain seconds -> seconds. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(text.trim());
  if (!m) return null;
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd']);
}

// ---- running a command --------------------------------------------------------------------

/** Connects, runs `fn`, and turns every failure into a message and an exit code. */
export async function withClient(args: ConnArgs, io: RemoteIo, fn: (api: ApiClient) => Promise<number>, file?: string): Promise<number> {
  const controller = args.controller ?? io.env.CROSSLINK_CONTROLLER;
  const token = args.token ?? io.env.CROSSLINK_TOKEN;
  const caFingerprint = args.caFingerprint ?? io.env.CROSSLINK_CA_FINGERPRINT;
  const missing = [!controller && '--controller (or CROSSLINK_CONTROLLER)', !token && '--token (or CROSSLINK_TOKEN)', !caFingerprint && '--ca-fingerprint (or CROSSLINK_CA_FINGERPRINT)'].filter(Boolean);
  if (missing.length) {
    io.err(`crosslink: missing ${missing.join(', ')}\n`);
    return EXIT.usage;
  }
  const timeout = args.timeout ?? 30;
  const badTimeout = timeoutProblem(timeout);
  if (badTimeout !== null) {
    io.err(`crosslink: ${badTimeout}\n`);
    return EXIT.usage;
  }
  let api: ApiClient | undefined;
  try {
    api = await ApiClient.connect({ controller: controller!, token: token!, caFingerprint: caFingerprint!, timeoutMs: timeout * 1000 });
    return await fn(api);
  } catch (e) {
    if (e instanceof UnreachableError) {
      io.err(`crosslink: ${e.message}\n`);
      return EXIT.unreachable;
    }
    if (e instanceof ApiError) {
      io.err(`crosslink: ${e.code}: ${e.message}\n`);
      for (const d of e.details) io.err(detailLine(d, file));
      return EXIT.failed;
    }
    if (e instanceof CrosslinkError && e.code === 'config_invalid') {
      io.err(`crosslink: ${e.message}\n`);
      return EXIT.usage;
    }
    io.err(`crosslink: ${(e as Error).message}\n`);
    return EXIT.failed;
  } finally {
    api?.close();
  }
}

// ---- policy --------------------------------------------------------------------------------

interface AgentDiff { agent: string; changes: string[]; isConnected?: boolean }

/** What the controller's dry run answers (older controllers leave the newer fields out). */
interface DryRunView {
  /** The version the diffs are against (absent from controllers before it was added). */
  baseVersion?: number;
  testsRun: number;
  policy?: string[];
  agents: AgentDiff[];
  notEnrolled?: string[];
  unserved?: Array<{ subnet: string; reason: string }>;
  paths?: PairPathView[];
}

/** The policy-level changes, then what each box gets (naming boxes that are offline or not yet
 *  enrolled), the subnets nobody would serve, and the pairs without a shared underlay. */
function printDiff(io: RemoteIo, dry: DryRunView): void {
  const { agents, paths = [] } = dry;
  if (dry.policy !== undefined) {
    if (dry.policy.length === 0) io.out('policy: no change\n');
    else {
      io.out('policy:\n');
      for (const line of dry.policy) io.out(`  ${line}\n`);
    }
  }
  if (agents.length === 0) io.out('boxes: no config changes\n');
  else io.out('boxes:\n');
  for (const a of agents) {
    io.out(`  ${a.agent}${a.isConnected === false ? ' (offline: gets it when it reconnects)' : ''}:\n`);
    for (const c of a.changes) io.out(`    ${c}\n`);
  }
  if (dry.notEnrolled !== undefined && dry.notEnrolled.length > 0) io.out(`not enrolled yet (get their config when they enrol): ${dry.notEnrolled.join(', ')}\n`);
  for (const u of dry.unserved ?? []) io.out(`unserved: ${u.subnet}: ${u.reason}\n`);
  if (paths.length > 0) {
    io.out(`pairs that do not share an underlay: ${paths.length}\n`);
    for (const p of paths) io.out(`  ${p.a} <-> ${p.b}: ${describePathView(p)}\n`);
  }
}

async function currentVersion(api: ApiClient): Promise<number> {
  try {
    return (await api.request<{ version: number }>('GET', '/v1/policy')).body.version;
  } catch (e) {
    if (e instanceof ApiError && e.code === 'not_found') return 0;
    throw e;
  }
}

export function policyRemoteCommands(io: RemoteIo = processIo): CommandModule[] {
  const apply: CommandModule<object, ConnArgs & { file: string; dryRun: boolean; comment?: string }> = {
    command: 'apply',
    describe: 'Validate, test and apply a policy file (prints the per-agent diff first)',
    builder: (y) => asArgs(connectionOptions(y)
      .option('file', { alias: 'f', type: 'string', demandOption: true, describe: 'Policy file (YAML or JSON; - for standard input)' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Only show what would change' })
      .option('comment', { alias: 'm', type: 'string', describe: 'Why (recorded with the version)' })
      .option(jsonOption)),
    handler: async (cliArgs) => {
      let text: string;
      try {
        text = io.readFile(cliArgs.file);
      } catch (e) {
        io.err(`crosslink: ${inputName(cliArgs.file)}: cannot read: ${(e as Error).message}\n`);
        process.exitCode = EXIT.failed;
        return;
      }
      const args = { ...cliArgs, file: inputName(cliArgs.file) };
      process.exitCode = await withClient(args, io, async (api) => {
        const dry = (await api.request<DryRunView>('POST', '/v1/policy/dry-run', { json: { document: text } })).body;
        // Apply only on the version the shown diff is against (one round trip less than asking).
        const expected = dry.baseVersion ?? await currentVersion(api);
        if (args.dryRun) {
          if (args.json) io.out(`${JSON.stringify(dry, null, 2)}\n`);
          else {
            printDiff(io, dry);
            io.out(`dry run: ${args.file} is valid, ${dry.testsRun} test${dry.testsRun === 1 ? '' : 's'} passed; nothing applied\n`);
          }
          return EXIT.ok;
        }
        const put = (await api.request<{ version: number; isDistributed: boolean; isUnchanged?: boolean }>('PUT', '/v1/policy', {
          json: { document: text, ...(args.comment ? { comment: args.comment } : {}) }, headers: { 'if-match': `"${expected}"` },
        })).body;
        if (args.json) io.out(`${JSON.stringify({ ...put, agents: dry.agents }, null, 2)}\n`);
        else if (put.isUnchanged === true) io.out(`unchanged: ${args.file} is policy version ${put.version} already; nothing written\n`);
        else {
          printDiff(io, dry);
          io.out(`applied ${args.file} as policy version ${put.version}${put.isDistributed ? '' : ' (not yet pushed to agents: see the controller log)'}\n`);
        }
        return EXIT.ok;
      }, args.file);
    },
  };

  // The program's version is only `crosslink --version` (cli/run.ts), so here --version is the policy's.
  const get: CommandModule<object, ConnArgs & { policyVersion?: number }> = {
    command: 'get',
    describe: 'Print the current policy document (or --policy-version N)',
    builder: (y) => asArgs(connectionOptions(y).option('policy-version', { alias: 'version', type: 'number', describe: 'An earlier version' }).option(jsonOption)),
    handler: async (args) => {
      if (args.policyVersion !== undefined && (!Number.isInteger(args.policyVersion) || args.policyVersion < 1)) {
        io.err(`crosslink: --policy-version must be a version number (1, 2, ...); got ${givenText(args.policyVersion)}\n`);
        process.exitCode = EXIT.usage;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        const path = args.policyVersion !== undefined ? `/v1/policy/versions/${args.policyVersion}` : '/v1/policy';
        const p = (await api.request<{ version: number; document: string }>('GET', path)).body;
        io.out(args.json ? `${JSON.stringify(p, null, 2)}\n` : p.document.endsWith('\n') ? p.document : `${p.document}\n`);
        return EXIT.ok;
      });
    },
  };

  const history: CommandModule<object, ConnArgs> = {
    command: 'history',
    describe: 'List policy versions',
    builder: (y) => connectionOptions(y).option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const { versions } = (await api.request<{ versions: Array<{ version: number; createdAtMs: number; createdBy: string; comment: string }> }>('GET', '/v1/policy/versions')).body;
        io.out(args.json ? `${JSON.stringify(versions, null, 2)}\n` : table(['VERSION', 'CREATED', 'BY', 'COMMENT'], versions.map((v) => [v.version, time(v.createdAtMs), v.createdBy, v.comment])));
        return EXIT.ok;
      });
    },
  };

  const rollback: CommandModule<object, ConnArgs & { policyVersion: number; comment?: string }> = {
    command: 'rollback <policy-version>',
    describe: 'Make an earlier version current again (recorded as a new version)',
    builder: (y) => asArgs(connectionOptions(y)
      .positional('policy-version', { type: 'number', demandOption: true, describe: 'Version to return to' })
      .option('comment', { alias: 'm', type: 'string', describe: 'Why' })
      .options(yesOption)),
    handler: async (args) => {
      const version = args.policyVersion;
      if (!Number.isInteger(version) || version < 1) {
        io.err('crosslink: VERSION must be a positive whole number\n');
        process.exitCode = EXIT.usage;
        return;
      }
      if (!(await isConfirmed(args, io, `Make policy version ${version} current again?`))) {
        process.exitCode = EXIT.failed;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        const r = (await api.request<{ version: number; isUnchanged?: boolean }>('POST', '/v1/policy/rollback', { json: { version, ...(args.comment ? { comment: args.comment } : {}) } })).body;
        io.out(r.isUnchanged === true
          ? `unchanged: version ${version} is the current document already (policy version ${r.version}); nothing written\n`
          : `rolled back to version ${version}: now policy version ${r.version}\n`);
        return EXIT.ok;
      });
    },
  };
  const diff: CommandModule<object, ConnArgs & { a: string; b: string }> = {
    command: 'diff <a> <b>',
    describe: 'What changes from policy A to policy B, at the policy level; each a file (- for standard input) or a version number of the controller\'s history. Exit 0 same, 1 different (as diff), 2 trouble',
    builder: (y) => asArgs(connectionOptions(y)
      .positional('a', { type: 'string', describe: 'FILE or VERSION' })
      .positional('b', { type: 'string', describe: 'FILE or VERSION' })
      .option(jsonOption)
      .example('$0 policy diff 3 policy.yaml', 'what applying policy.yaml would change against version 3')),
    handler: async (args) => {
      const sides = [String(args.a), String(args.b)];
      const isVersion = (s: string) => /^[1-9][0-9]*$/.test(s);
      const texts = new Map<string, string>();
      for (const s of sides.filter((x) => !isVersion(x))) {
        try {
          texts.set(s, io.readFile(s));
        } catch (e) {
          io.err(`crosslink: ${inputName(s)}: cannot read: ${(e as Error).message}\n`);
          process.exitCode = EXIT.usage;
          return;
        }
      }
      // The policy reader and validator, only for this command: every other remote command starts
      // without them (they were ~100 ms of each `policy apply`).
      const [{ parsePolicy }, { diffPolicies }] = await Promise.all([import('../../controller/policy/validate.js'), import('../../controller/policy/policy-diff.js')]);
      // `via` may name enrolled agents the document does not list: the controller's list, when asked.
      const compare = (knownAgents: string[] = []): number => {
        const parsed = sides.map((s) => {
          const r = parsePolicy(texts.get(s)!, { knownAgents });
          if (r.errors) for (const e of r.errors) io.err(detailLine(e, isVersion(s) ? `version ${s}` : inputName(s)));
          return r.policy;
        });
        if (!parsed[0] || !parsed[1]) {
          io.err('crosslink: cannot compare an invalid policy (errors above)\n');
          return EXIT.usage;
        }
        const lines = diffPolicies(parsed[0], parsed[1]);
        if (args.json) io.out(`${JSON.stringify({ a: sides[0], b: sides[1], changes: lines }, null, 2)}\n`);
        else io.out(lines.length === 0 ? 'no change\n' : lines.map((l) => `${l}\n`).join(''));
        return lines.length === 0 ? EXIT.ok : EXIT.failed;
      };
      if (!sides.some(isVersion)) {
        process.exitCode = compare();
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        for (const s of sides.filter(isVersion)) texts.set(s, (await api.request<{ document: string }>('GET', `/v1/policy/versions/${s}`)).body.document);
        const { agents } = (await api.request<{ agents: Array<{ name: string }> }>('GET', '/v1/agents')).body;
        return compare(agents.map((a) => a.name));
      });
    },
  };

  return [apply, get, history, rollback, diff] as unknown as CommandModule[];
}

// ---- agents, join tokens, API tokens, audit ------------------------------------------------

interface AgentView {
  name: string; overlayAddress: string; endpoint: string; isConnected: boolean; isRevoked: boolean; served: string[]; advertised: string[];
  desiredGeneration: number; appliedGeneration: number; lastReportAtMs: number | null; agentVersion: string; publicKey: string;
  enrolledAtMs: number; revokedAtMs: number | null; connectedSinceMs: number | null; lastReport: unknown;
  /** Absent from controllers that predate underlays. */
  endpoints?: Array<{ underlay: string; endpoint: string }>; isRelay?: boolean; relayedPairs?: string[];
  /** Subnets of its via nobody serves because of it (absent from older controllers). */
  unserved?: Array<{ subnet: string; reason: string }>;
}

function agentsCommand(io: RemoteIo): CommandModule {
  const list: CommandModule<object, ConnArgs> = {
    command: 'list', describe: 'List agents',
    builder: (y) => connectionOptions(y).option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const { agents } = (await api.request<{ agents: AgentView[] }>('GET', '/v1/agents')).body;
        io.out(args.json ? `${JSON.stringify(agents, null, 2)}\n` : table(
          ['NAME', 'STATE', 'OVERLAY', 'ENDPOINT', 'GENERATION', 'SERVES', 'LAST REPORT'],
          agents.map((a) => [a.name, a.isRevoked ? 'revoked' : a.isConnected ? 'connected' : 'offline', a.overlayAddress, a.endpoints?.length ? a.endpoints.map((e) => `${e.underlay}=${e.endpoint}`).join(',') : a.endpoint, `${a.appliedGeneration}/${a.desiredGeneration}`, a.served.join(','), time(a.lastReportAtMs)]),
        ));
        if (!args.json) {
          // A subnet of a box's via that nobody serves because of that box: say so under the table.
          const seen = new Set<string>();
          for (const a of agents) for (const u of a.unserved ?? []) if (!seen.has(u.subnet)) { seen.add(u.subnet); io.out(`unserved: ${u.subnet}: ${u.reason}\n`); }
        }
        return EXIT.ok;
      });
    },
  };
  const show: CommandModule<object, ConnArgs & { name: string }> = {
    command: 'show <name>', describe: 'Show one agent with its last report',
    builder: (y) => connectionOptions(y).positional('name', { type: 'string', demandOption: true }).option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const a = (await api.request<AgentView>('GET', `/v1/agents/${encodeURIComponent(args.name)}`)).body;
        if (args.json) io.out(`${JSON.stringify(a, null, 2)}\n`);
        else {
          const rows: Array<[string, string]> = [
            ['name', a.name], ['state', a.isRevoked ? `revoked ${time(a.revokedAtMs)}` : a.isConnected ? `connected since ${time(a.connectedSinceMs)}` : 'offline'],
            ['overlay address', a.overlayAddress],
            ['endpoint', a.endpoints?.length ? a.endpoints.map((e) => `${e.underlay}=${e.endpoint}`).join(', ') : a.endpoint || '-'],
            ['relay', a.isRelay ? `yes${a.relayedPairs?.length ? `: relays ${a.relayedPairs.join(', ')}` : ', relays nothing now'}` : 'no'],
            ['public key', a.publicKey], ['version', a.agentVersion],
            ['enrolled', time(a.enrolledAtMs)], ['generation applied/desired', `${a.appliedGeneration}/${a.desiredGeneration}`],
            ['advertised', a.advertised.join(', ') || '-'], ['serves', a.served.join(', ') || '-'],
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
  const revoke: CommandModule<object, ConnArgs & { name: string }> = {
    command: 'revoke <name>', describe: 'Revoke an agent: refused at once and dropped by every peer',
    builder: (y) => connectionOptions(y).positional('name', { type: 'string', demandOption: true }).options(yesOption),
    handler: async (args) => {
      if (!(await isConfirmed(args, io, `Revoke agent ${args.name}? Its box is cut off at once.`))) {
        process.exitCode = EXIT.failed;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        await api.request('POST', `/v1/agents/${encodeURIComponent(args.name)}/revoke`);
        io.out(`revoked agent ${args.name}\n`);
        return EXIT.ok;
      });
    },
  };
  const del: CommandModule<object, ConnArgs & { name: string }> = {
    command: 'delete <name>', describe: 'Forget an agent (it must enroll again)',
    builder: (y) => connectionOptions(y).positional('name', { type: 'string', demandOption: true }).options(yesOption),
    handler: async (args) => {
      if (!(await isConfirmed(args, io, `Delete agent ${args.name}? It must enrol again with a new join token.`))) {
        process.exitCode = EXIT.failed;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        await api.request('DELETE', `/v1/agents/${encodeURIComponent(args.name)}`);
        io.out(`deleted agent ${args.name}\n`);
        return EXIT.ok;
      });
    },
  };
  return {
    command: 'agents', describe: 'List, show, revoke and delete agents',
    builder: (y) => y.command(list).command(show).command(revoke).command(del).demandCommand(1, 'Name an agents subcommand (see --help).'),
    handler: () => {},
  };
}

interface JoinTokenView { id: string; name: string; isReusable: boolean; state: string; expiresAtMs: number; createdAtMs: number; createdBy: string; usedAtMs: number | null; token?: string }

function joinTokenCommand(io: RemoteIo): CommandModule {
  const create: CommandModule<object, ConnArgs & { name: string; ttl: string; reusable: boolean }> = {
    command: 'create', describe: 'Make a join token for an agent (shown once)',
    builder: (y) => connectionOptions(y)
      .option('name', { type: 'string', demandOption: true, describe: 'Agent name the token enrolls' })
      .option('ttl', { type: 'string', default: '1h', describe: 'Lifetime: 90s, 15m, 1h, 7d' })
      .option('reusable', { type: 'boolean', default: false, describe: 'Allow more than one enrolment' })
      .option(jsonOption),
    handler: async (args) => {
      const ttlSeconds = parseDuration(args.ttl);
      if (ttlSeconds === null || ttlSeconds < 60 || ttlSeconds > 30 * 86_400) {
        io.err(ttlSeconds === null
          ? `crosslink: --ttl "${args.ttl}" is not a duration such as 15m, 1h or 7d\n`
          : `crosslink: --ttl ${args.ttl} is out of range: a join token lives from 1m to 30d\n`);
        process.exitCode = EXIT.usage;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        const t = (await api.request<JoinTokenView>('POST', '/v1/join-tokens', { json: { name: args.name, ttlSeconds, isReusable: args.reusable } })).body;
        if (args.json) io.out(`${JSON.stringify(t, null, 2)}\n`);
        else {
          io.out(`${t.token}\n`);
          io.err(`join token ${t.id} for agent ${t.name}, ${t.isReusable ? 'reusable' : 'single use'}, expires ${time(t.expiresAtMs)}. It is shown only now.\n`);
        }
        return EXIT.ok;
      });
    },
  };
  const list: CommandModule<object, ConnArgs> = {
    command: 'list', describe: 'List join tokens',
    builder: (y) => connectionOptions(y).option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const { joinTokens } = (await api.request<{ joinTokens: JoinTokenView[] }>('GET', '/v1/join-tokens')).body;
        io.out(args.json ? `${JSON.stringify(joinTokens, null, 2)}\n` : table(['ID', 'AGENT', 'STATE', 'REUSABLE', 'EXPIRES', 'CREATED BY'],
          joinTokens.map((t) => [t.id, t.name, t.state, t.isReusable ? 'yes' : 'no', time(t.expiresAtMs), t.createdBy])));
        return EXIT.ok;
      });
    },
  };
  const revoke: CommandModule<object, ConnArgs & { id: string }> = {
    command: 'revoke <id>', describe: 'Revoke a join token',
    builder: (y) => connectionOptions(y).positional('id', { type: 'string', demandOption: true }).options(yesOption),
    handler: async (args) => {
      if (!(await isConfirmed(args, io, `Revoke join token ${args.id}?`))) {
        process.exitCode = EXIT.failed;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        await api.request('POST', `/v1/join-tokens/${encodeURIComponent(args.id)}/revoke`);
        io.out(`revoked join token ${args.id}\n`);
        return EXIT.ok;
      });
    },
  };
  return {
    command: 'join-token', describe: 'Make, list and revoke agent join tokens',
    builder: (y) => y.command(create).command(list).command(revoke).demandCommand(1, 'Name a join-token subcommand (see --help).'),
    handler: () => {},
  };
}

interface TokenView { id: string; name: string; role: string; createdAtMs: number; createdBy: string; isRevoked: boolean; lastUsedAtMs: number | null; token?: string }

function tokenCommand(io: RemoteIo): CommandModule {
  const create: CommandModule<object, ConnArgs & { name: string; role: string }> = {
    command: 'create', describe: 'Make an API token (shown once)',
    builder: (y) => connectionOptions(y)
      .option('name', { type: 'string', demandOption: true, describe: 'Who or what uses it' })
      .option('role', { type: 'string', choices: ['admin', 'operator', 'auditor'], demandOption: true, describe: 'admin: everything; operator: agents and join tokens; auditor: read-only' })
      .option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const t = (await api.request<TokenView>('POST', '/v1/tokens', { json: { name: args.name, role: args.role } })).body;
        if (args.json) io.out(`${JSON.stringify(t, null, 2)}\n`);
        else {
          io.out(`${t.token}\n`);
          io.err(`API token ${t.id} "${t.name}" with role ${t.role}. It is shown only now.\n`);
        }
        return EXIT.ok;
      });
    },
  };
  const list: CommandModule<object, ConnArgs> = {
    command: 'list', describe: 'List API tokens',
    builder: (y) => connectionOptions(y).option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const { tokens } = (await api.request<{ tokens: TokenView[] }>('GET', '/v1/tokens')).body;
        io.out(args.json ? `${JSON.stringify(tokens, null, 2)}\n` : table(['ID', 'NAME', 'ROLE', 'STATE', 'CREATED', 'LAST USED'],
          tokens.map((t) => [t.id, t.name, t.role, t.isRevoked ? 'revoked' : 'active', time(t.createdAtMs), time(t.lastUsedAtMs)])));
        return EXIT.ok;
      });
    },
  };
  const revoke: CommandModule<object, ConnArgs & { id: string }> = {
    command: 'revoke <id>', describe: 'Revoke an API token',
    builder: (y) => connectionOptions(y).positional('id', { type: 'string', demandOption: true }).options(yesOption),
    handler: async (args) => {
      if (!(await isConfirmed(args, io, `Revoke API token ${args.id}? Whoever uses it is locked out at once.`))) {
        process.exitCode = EXIT.failed;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        await api.request('POST', `/v1/tokens/${encodeURIComponent(args.id)}/revoke`);
        io.out(`revoked API token ${args.id}\n`);
        return EXIT.ok;
      });
    },
  };
  return {
    command: 'token', describe: 'Make, list and revoke API tokens',
    builder: (y) => y.command(create).command(list).command(revoke).demandCommand(1, 'Name a token subcommand (see --help).'),
    handler: () => {},
  };
}

interface AuditEntryView { id: number; atMs: number; actor: { name: string; role: string; address: string }; action: string; target: string; before: unknown; after: unknown }

function auditCommand(io: RemoteIo): CommandModule {
  const list: CommandModule<object, ConnArgs & { afterId: number; limit: number }> = {
    command: 'list', describe: 'List audit entries, oldest first',
    builder: (y) => asArgs(connectionOptions(y)
      .option('after-id', { type: 'number', default: 0, describe: 'Start after this entry' })
      .option('limit', { type: 'number', default: 100, describe: 'At most this many (1-1000)' })
      .option(jsonOption)),
    handler: async (args) => {
      const bad = !Number.isInteger(args.afterId) || args.afterId < 0 ? `--after-id must be an entry id (0 or more); got ${givenText(args.afterId)}`
        : wholeNumberProblem('--limit', args.limit, 1, 1000);
      if (bad !== null) {
        io.err(`crosslink: ${bad}\n`);
        process.exitCode = EXIT.usage;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        const r = (await api.request<{ entries: AuditEntryView[]; nextAfterId: number | null }>('GET', `/v1/audit?afterId=${args.afterId}&limit=${args.limit}`)).body;
        if (args.json) io.out(`${JSON.stringify(r, null, 2)}\n`);
        else {
          io.out(table(['ID', 'WHEN', 'WHO', 'ROLE', 'FROM', 'ACTION', 'TARGET'], r.entries.map((e) => [e.id, time(e.atMs), e.actor.name, e.actor.role, e.actor.address, e.action, e.target])));
          if (r.nextAfterId !== null) io.err(`more: --after-id ${r.nextAfterId}\n`);
        }
        return EXIT.ok;
      });
    },
  };
  const verify: CommandModule<object, ConnArgs> = {
    command: 'verify', describe: "Check the audit log's hash chain; says where it breaks",
    builder: (y) => connectionOptions(y).option(jsonOption),
    handler: async (args) => {
      process.exitCode = await withClient(args, io, async (api) => {
        const v = (await api.request<{ isValid: boolean; count: number; brokenAtId?: number; reason?: string }>('GET', '/v1/audit/verify')).body;
        if (args.json) io.out(`${JSON.stringify(v, null, 2)}\n`);
        else if (v.isValid) io.out(`audit log intact: ${v.count} entries, chain verified\n`);
        else io.out(`audit log BROKEN at entry ${v.brokenAtId}: ${v.reason}\n`);
        return v.isValid ? EXIT.ok : EXIT.failed;
      });
    },
  };
  return {
    command: 'audit', describe: 'Read and verify the audit log',
    builder: (y) => y.command(list).command(verify).demandCommand(1, 'Name an audit subcommand (see --help).'),
    handler: () => {},
  };
}

/** Top-level remote command groups: agents, join-token, token, audit. */
export function remoteCommands(io: RemoteIo = processIo): CommandModule[] {
  return [agentsCommand(io), joinTokenCommand(io), tokenCommand(io), auditCommand(io)];
}

/**
 * Registers every remote command on a yargs instance: agents, join-token, token, audit at the top,
 * and `policy apply|get|history|rollback` (pass `policyLocal` to keep the local policy commands in
 * the same `policy` group).
 */
export function registerRemoteCommands<T>(y: Argv<T>, opts: { io?: RemoteIo; policyLocal?: CommandModule[] } = {}): Argv<T> {
  const io = opts.io ?? processIo;
  let out = y.command('policy', 'Check, evaluate and manage the policy', (p) => {
    let g = p;
    for (const c of [...(opts.policyLocal ?? []), ...policyRemoteCommands(io)]) g = g.command(c);
    return g.demandCommand(1, 'Name a policy subcommand (see --help).');
  });
  for (const c of remoteCommands(io)) out = out.command(c);
  return out;
}
