// Failover benchmark (issue 14): `npm run bench:failover` (root; build dist/ first). Prints figures;
// it is not a test and never fails on a time.
//
// The edge-failover testbed (test/e2e/edge-failover-topology.ts): gp on N3 only with a client, civic-a
// (primary) and civic-b (standby) on the PSN only with a server behind their shared virtual gateway,
// the hub on both networks relaying. A client sends a UDP request every 20 ms; the loss window runs
// from the first unanswered request to the first answered one after it. Crosslink: `--runs` power
// cuts of the primary with the controller up, as many with the controller killed just before the
// cut; median and p95 of each, the agents' CPU at rest. Then the Crosslink fleet is stopped and its
// data plane removed, and Debian's Nebula runs on the same namespaces (bench/failover-nebula.ts):
// its loss window the same way, and the ratio.
//
//   npm run bench:failover -- [--runs 10] [--nebula-runs 3] [--nebula-cap-seconds 15] [--cpu-seconds 10]
//                             [--no-nebula] [--no-crosslink]
import { cpus } from 'node:os';
import {
  ECHO_PORT,
  EDGE_FAILOVER_AGENTS,
  EDGE_FAILOVER_POLICY,
  HOLD_DOWN_S,
  LIVENESS_INTERVAL_MS,
  LIVENESS_MULTIPLIER,
  SERVER_ADDRESS,
  edgeFailoverControllerArgs,
  edgeFailoverTopology,
  hasLivenessSettings,
} from '../test/e2e/edge-failover-topology.js';
import { Fleet } from '../test/e2e/fleet.js';
import { median, quantile } from '../test/e2e/loss-window.js';
import { startQuietUdpEcho } from '../test/e2e/loss-monitor.js';
import { Testbed } from '../test/testbed/testbed.js';
import { hasFlag, numberArg } from './args.js';
import { agentCpu, clearCrosslink, crosslinkRun, crosslinkWatchers, type RunResult } from './failover-crosslink.js';
import { nebulaRuns, nebulaVersion } from './failover-nebula.js';

const RUNS = numberArg('runs', 10);
const NEBULA_RUNS = numberArg('nebula-runs', 3);
const NEBULA_CAP_MS = numberArg('nebula-cap-seconds', 15) * 1000;
const CPU_SECONDS = numberArg('cpu-seconds', 10);
const out = (s: string) => process.stdout.write(`${s}\n`);
const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function summary(label: string, runs: RunResult[], isControllerUp: boolean): string {
  const ms = runs.map((r) => r.ms);
  const capped = runs.filter((r) => r.isCapped).length;
  const moved = runs.map((r) => r.pathMovedMs).filter((x): x is number => x !== null);
  const gw = runs.map((r) => r.gatewayMovedMs).filter((x): x is number => x !== null);
  const confirmed = runs.map((r) => r.confirmedMs).filter((x): x is number => x !== null);
  const later = runs.filter((r) => r.laterLossMs > 0);
  return (
    `  ${label.padEnd(16)} loss window median ${sec(median(ms))}  p95 ${sec(quantile(ms, 0.95))}  ` +
    `(min ${sec(Math.min(...ms))}, max ${sec(Math.max(...ms))}${capped ? `, ${capped} not back within the cap` : ''}); ` +
    `gp moved the subnet after ${moved.length ? sec(median(moved)) : '-'}, the standby took the gateway after ${gw.length ? sec(median(gw)) : '-'} (medians)` +
    (isControllerUp
      ? `\n  ${''.padEnd(16)} the controller confirmed the move in ${confirmed.length}/${runs.length} runs (median ${confirmed.length ? sec(median(confirmed)) : '-'} after the cut); ` +
        `traffic lost again after the failover, before a second after that: ${later.length}/${runs.length} runs` +
        (later.length ? ` (${later.map((r) => sec(r.laterLossMs)).join(', ')})` : '')
      : '')
  );
}

const bed = await Testbed.create(edgeFailoverTopology());
try {
  const isEdge = hasLivenessSettings();
  out(
    `bench:failover (${cpus().length} cores, Node ${process.version}, wireguard-go userspace; ` +
      `${isEdge ? `edge failover, liveness ${LIVENESS_INTERVAL_MS} ms x ${LIVENESS_MULTIPLIER}` : 'controller-driven failover (no liveness settings in this build)'}, hold-down ${HOLD_DOWN_S} s; ` +
      `a UDP request every 20 ms, reply timeout 1 s)`,
  );
  await startQuietUdpEcho(bed, 'server', ECHO_PORT);
  let crosslinkMedianMs: number | null = null;
  if (!hasFlag('no-crosslink')) {
    const fleet = await Fleet.start(bed, {
      agents: EDGE_FAILOVER_AGENTS,
      policyText: EDGE_FAILOVER_POLICY,
      timeoutMs: 120_000,
      controllerArgs: edgeFailoverControllerArgs(isEdge),
    });
    const { path, holders } = await crosslinkWatchers(bed, fleet);
    const cpu = await agentCpu(bed, fleet, CPU_SECONDS);
    const results: Record<'up' | 'down', RunResult[]> = { up: [], down: [] };
    for (const mode of ['up', 'down'] as const) {
      for (let i = 0; i < RUNS; i++) {
        const r = await crosslinkRun(bed, fleet, path, holders, { isControllerDown: mode === 'down' });
        results[mode].push(r);
        process.stderr.write(
          `  controller ${mode}, run ${i + 1}/${RUNS}: ${sec(r.ms)}${r.isCapped ? ' (capped)' : ''}\n`,
        );
      }
    }
    out('Crosslink: primary power loss (agent + wireguard-go SIGKILL, every cable down), ' + `${RUNS} runs per mode`);
    out(summary('controller up', results.up, true));
    out(summary('controller down', results.down, false));
    out(
      `  agent CPU at rest over ${CPU_SECONDS} s (echo to its peers running), % of one core: ` +
        cpu
          .map((c) => `${c.box} ${c.agentPercent.toFixed(2)} (wireguard-go ${c.wireguardPercent.toFixed(2)})`)
          .join(', '),
    );
    crosslinkMedianMs = median(results.up.map((r) => r.ms));
    await path.stop();
    await holders.stop();
    await fleet.stop();
    await clearCrosslink(bed);
  }
  if (!hasFlag('no-nebula')) {
    const control = await bed.udpProbe('client', SERVER_ADDRESS, ECHO_PORT, { timeoutMs: 1000 });
    if (control === 'reply')
      throw new Error('client still reaches the server with no overlay running: clean-up failed');
    const nebula = await nebulaRuns(bed, NEBULA_RUNS, NEBULA_CAP_MS);
    const ms = nebula.runs.map((r) => r.ms);
    const failovers = nebula.runs.filter((r) => r.isFailover).length;
    const back = nebula.runs.map((r) => r.backAfterReturnMs).filter((x): x is number => x !== null);
    out(
      `Nebula ${nebula.version} (Debian): hub = lighthouse + relay; unsafe_routes ${'10.50.1.0/24'} via civic-a only ` +
        `(one gateway per route in this version); ${NEBULA_RUNS} runs`,
    );
    out(
      `  primary power loss       loss window median ${sec(median(ms))}  p95 ${sec(quantile(ms, 0.95))}; ` +
        `${failovers}/${nebula.runs.length} runs failed over; otherwise lost until civic-a returned ` +
        `(brought back after ${sec(NEBULA_CAP_MS)}: the window is that cap plus ${back.length ? sec(median(back)) : '-'} (median) to serve again)`,
    );
    if (crosslinkMedianMs !== null && crosslinkMedianMs > 0)
      out(
        `  ratio Nebula / Crosslink (controller up), medians: ${(median(ms) / crosslinkMedianMs).toFixed(1)}x` +
          (failovers < nebula.runs.length
            ? " (a lower bound: Nebula's window is set by when the primary returns)"
            : ''),
      );
  } else {
    out(`Nebula: skipped (installed: ${nebulaVersion()})`);
  }
} finally {
  await bed.destroy();
}
