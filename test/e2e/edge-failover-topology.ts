// The edge-failover testbed (issue 14), shared by test/e2e/edge-failover.test.ts and bench:failover:
// two underlays with no route between them; `gp` on N3 only with a client on its LAN; `civic-a`
// (primary) and `civic-b` (standby) on the PSN only, both on one LAN bridge with a server whose
// default route is the subnet's virtual gateway; `hub` on both underlays, relaying. The controller
// host is on both.
import { spawnSync } from 'node:child_process';
import { detectionMs } from '../../agent/liveness/echo.js';
import { DEFAULT_ECHO_INTERVAL_MS, DEFAULT_ECHO_MULTIPLIER } from '../../agent/liveness/settings.js';
import type { TestbedDescription } from '../testbed/topology.js';
import { cliPath, pollUntil, type Fleet, type FleetAgentSpec } from './fleet.js';

export const CLIENT_ADDRESS = '10.30.1.10';
export const SERVER_ADDRESS = '10.50.1.20';
export const GATEWAY = '10.50.1.1';
export const GATEWAY_CIDR = `${GATEWAY}/24`;
export const SERVER_SUBNET = '10.50.1.0/24';
export const CLIENT_SUBNET = '10.30.1.0/24';
/** UDP port of the echo server the loss monitor sends to. */
export const ECHO_PORT = 7007;
export const PRIMARY = 'civic-a';
export const STANDBY = 'civic-b';

/** Faster than the defaults (150 ms x 5) by a shorter interval, not a smaller multiplier, as
 *  docs/health.md advises for lossy links: 120 ms x 5 detects in 660 ms and must stay quiet at 5 %
 *  loss (case d). 200 ms x 3 moved the subnet in 2 of 4 CI runs of that case. Hold-down 5 s. */
export const LIVENESS_INTERVAL_MS = 120;
export const LIVENESS_MULTIPLIER = 5;
export const DETECTION_MS = detectionMs({ intervalMs: LIVENESS_INTERVAL_MS, multiplier: LIVENESS_MULTIPLIER });
export const HOLD_DOWN_S = 5;

export function edgeFailoverTopology(prefix?: string): TestbedDescription {
  return {
    ...(prefix ? { prefix } : {}),
    controller: true,
    underlays: ['n3-wan', 'psn-wan'],
    lans: [{ name: 'srv-lan', gateway: GATEWAY }],
    boxes: [
      { name: 'gp', underlays: ['n3-wan'], lans: [{ lan: 'gp-lan', address: '10.30.1.1/24' }] },
      { name: PRIMARY, underlays: ['psn-wan'], lans: [{ lan: 'srv-lan', address: '10.50.1.2/24' }] },
      { name: STANDBY, underlays: ['psn-wan'], lans: [{ lan: 'srv-lan', address: '10.50.1.3/24' }] },
      { name: 'hub', underlays: ['n3-wan', 'psn-wan'], lans: [{ lan: 'hub-lan', address: '10.40.1.1/24' }] },
    ],
    hosts: [
      { name: 'client', lan: 'gp-lan', address: `${CLIENT_ADDRESS}/24` },
      { name: 'server', lan: 'srv-lan', address: `${SERVER_ADDRESS}/24` },
    ],
  };
}

export const EDGE_FAILOVER_POLICY = `
version: 1
underlays:
  n3-wan: { description: NHS N3/HSCN }
  psn-wan: { description: council PSN }
zones:
  n3: { description: N3 }
  psn: { description: PSN }
agents:
  gp: { zones: [n3], underlays: [n3-wan] }
  ${PRIMARY}: { zones: [psn], underlays: [psn-wan] }
  ${STANDBY}: { zones: [psn], underlays: [psn-wan] }
  hub: { zones: [n3, psn], underlays: [n3-wan, psn-wan], relay: true }
subnets:
  gp-lan: { cidr: ${CLIENT_SUBNET}, zone: n3, via: [gp] }
  srv-lan: { cidr: ${SERVER_SUBNET}, zone: psn, via: [${PRIMARY}, ${STANDBY}], gateway: ${GATEWAY} }
  hub-lan: { cidr: 10.40.1.0/24, zone: n3, via: [hub] }
rules:
  - { name: client-to-server, from: gp-lan, to: srv-lan, ports: [udp/${ECHO_PORT}, tcp/443] }
`;

export const EDGE_FAILOVER_AGENTS: FleetAgentSpec[] = [
  { box: 'gp' },
  { box: PRIMARY },
  { box: STANDBY },
  { box: 'hub', relay: true },
];

/** True when the built controller has the edge-failover liveness settings (main after issue 14). */
export function hasLivenessSettings(): boolean {
  const r = spawnSync(process.execPath, [cliPath(), 'controller', 'serve', '--help'], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.includes('--liveness-interval-ms');
}

/** The detection time the agents run with: ours where the controller passes it, else the agents' default. */
export function effectiveDetectionMs(isLivenessSupported = hasLivenessSettings()): number {
  return isLivenessSupported
    ? DETECTION_MS
    : detectionMs({ intervalMs: DEFAULT_ECHO_INTERVAL_MS, multiplier: DEFAULT_ECHO_MULTIPLIER });
}

/**
 * Controller flags: the hold-down, and the liveness settings where the controller has them. Report
 * and health settings stay at their defaults: the edges must not need a fast controller.
 */
export function edgeFailoverControllerArgs(isLivenessSupported = hasLivenessSettings()): string[] {
  return [
    '--failover-hold-down-seconds',
    String(HOLD_DOWN_S),
    ...(isLivenessSupported
      ? ['--liveness-interval-ms', String(LIVENESS_INTERVAL_MS), '--liveness-multiplier', String(LIVENESS_MULTIPLIER)]
      : []),
  ];
}

/**
 * When the controller recorded the server subnet (srv-lan) as served by `agent` in its history
 * (it confirms an edge failover seconds after the edges made it), or null by `untilMs`.
 */
export async function serverSubnetHandover(
  fleet: Fleet,
  agent: string,
  sinceMs: number,
  untilMs: number,
): Promise<number | null> {
  let atMs: number | null = null;
  await pollUntil(
    `the controller's handover of srv-lan to ${agent}`,
    async () => {
      const events = await fleet.history('subnet:srv-lan', sinceMs);
      atMs = events.find((e) => e.reason.includes(`now served by ${agent} `))?.atMs ?? null;
      return atMs !== null;
    },
    { timeoutMs: Math.max(1, untilMs - Date.now()), intervalMs: 200 },
  ).catch(() => undefined);
  return atMs;
}
