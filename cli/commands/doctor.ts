// `crosslink doctor`: checks this box for what the agent needs and prints each finding with its fix.
// Exit 0 when nothing failed (warnings allowed), 1 when a check failed, 2 on a usage error.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { systemClock } from '../../lib/clock.js';
import { isCrosslinkError } from '../../lib/errors.js';
import { parseJoinToken } from '../../lib/join-token.js';
import { silentLogger } from '../../lib/logger.js';
import {
  DEFAULT_CONFIG_FILE,
  loadAgentConfigFile,
  resolveAgentOptions,
  settingsFromFlags,
  type AgentSettingsInput,
} from '../../agent/config.js';
import type { DoctorDeps, DoctorInput } from '../../agent/doctor/types.js';
import { enrollmentUrls, StateDir } from '../../agent/state.js';
import { VERSION } from '../../lib/version.js';

// The checks are imported when `crosslink doctor` runs, not by every command (cli/main.ts loads
// this file for all of them, the long-running `agent run` included).
const doctorChecks = () => import('../../agent/doctor.js');

export interface DoctorArgs {
  config?: string;
  'state-dir'?: string;
  interface?: string;
  join?: string;
  json?: boolean;
}

const message = (e: unknown) => (isCrosslinkError(e) || e instanceof Error ? e.message : String(e));

/** What the checks need, from the config file, the flags and the state dir. Never throws: a
 *  problem reading them becomes a setup error the report shows as FAIL. */
export async function gatherDoctorInput(args: DoctorArgs): Promise<DoctorInput & { stateDir: string }> {
  const setupErrors: string[] = [];
  let file: AgentSettingsInput = {};
  const path = args.config ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  if (path) {
    try {
      file = await loadAgentConfigFile(path);
    } catch (e) {
      setupErrors.push(`${message(e)}`);
    }
  }
  let flags: AgentSettingsInput = {};
  try {
    flags = settingsFromFlags({ 'state-dir': args['state-dir'], interface: args.interface, join: args.join });
  } catch (e) {
    setupErrors.push(message(e));
  }
  const o = resolveAgentOptions(flags, file, VERSION);
  const state = new StateDir(resolve(o.stateDir), silentLogger());
  let controller: DoctorInput['controller'] = null;
  let overlayRoutes: string[] = [];
  try {
    const e = await state.loadEnrollment();
    if (e)
      controller = {
        url: enrollmentUrls(e).join(' '),
        urls: enrollmentUrls(e),
        caFingerprint: e.caFingerprint,
        source: `enrollment in ${state.dir}`,
      };
    overlayRoutes = (await state.loadConfig())?.routes ?? [];
  } catch (e) {
    setupErrors.push(message(e));
  }
  // A token given on the command line wins: it is what the operator is about to use.
  if (args.join || (!controller && o.join)) {
    try {
      const t = parseJoinToken((args.join ?? o.join)!);
      controller = {
        url: t.controllerUrls.join(' '),
        urls: t.controllerUrls,
        caFingerprint: t.caFingerprint,
        source: 'join token',
      };
    } catch (e) {
      setupErrors.push(message(e));
    }
  }
  return {
    stateDir: state.dir,
    interfaceName: o.interfaceName,
    mtu: o.mtu,
    wireguard: o.wireguard,
    controller,
    overlayRoutes,
    advertised: o.advertise,
    setupErrors,
  };
}

export async function runDoctorCommand(
  args: DoctorArgs,
  io: { out(text: string): void },
  deps: DoctorDeps,
): Promise<number> {
  const { doctorExitCode, formatResults, runDoctor } = await doctorChecks();
  const input = await gatherDoctorInput(args);
  const results = await runDoctor(input, deps);
  const code = doctorExitCode(results);
  io.out(args.json ? `${JSON.stringify({ isOk: code === 0, checks: results }, null, 2)}\n` : formatResults(results));
  return code;
}

export const doctorCommand: CommandModule<object, DoctorArgs> = {
  command: 'doctor',
  describe:
    'Check this box for the agent: capabilities, forwarding, WireGuard, nft, controller and pin, clock, MTU, conflicts. Exit 0 ok/warnings, 1 a failure',
  builder: (y) =>
    y
      .option('config', { type: 'string', describe: `Agent config file (default ${DEFAULT_CONFIG_FILE} if it exists)` })
      .option('state-dir', {
        type: 'string',
        describe: 'Agent state dir (enrollment, saved config; default /var/lib/crosslink/agent)',
      })
      .option('interface', { type: 'string', describe: 'WireGuard interface the agent wants (default crosslink0)' })
      .option('join', {
        type: 'string',
        describe: 'Join token: check the controller it names (before the first enrollment)',
      })
      .option('json', { type: 'boolean', default: false, describe: 'Print the results as JSON' }),
  handler: async (argv) => {
    const [{ realDoctorDeps }, { ProcessRunner }] = await Promise.all([
      import('../../agent/doctor/real-deps.js'),
      import('../../agent/host/linux/run.js'),
    ]);
    const runner = new ProcessRunner();
    process.exitCode = await runDoctorCommand(
      argv,
      { out: (t) => process.stdout.write(t) },
      realDoctorDeps(runner, systemClock),
    );
  },
};
