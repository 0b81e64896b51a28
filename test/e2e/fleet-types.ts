// What a Fleet is described by (agent specs, options) and what its controller API answers.
import type { Box } from '../testbed/testbed.js';
import type { SpawnedProcess } from '../testbed/exec.js';

export interface FleetAgentSpec {
  /** Box (by name) the agent runs on. */
  box: string;
  /** Agent name as in the policy; default the box name. */
  name?: string;
  /** Prefixes to advertise; default every LAN subnet of the box (IPv4 and IPv6). */
  advertise?: string[];
  /** Extra `agent run` flags. */
  extraArgs?: string[];
  /** The box consents to relay (`--relay`). */
  relay?: boolean;
}

export interface FleetOptions {
  /** Policy to apply once the agents are enrolled (one of the two, or neither). */
  policyFile?: string;
  policyText?: string;
  agents: FleetAgentSpec[];
  /** Wait until every agent runs the policy (default true when a policy is given). */
  isConvergedWaited?: boolean;
  /** Start processes in their own session so they outlive this process (the demo). Default false. */
  isDetached?: boolean;
  /** Controller heartbeat (1..30 s). Default: the controller's default. */
  heartbeatIntervalSeconds?: number;
  /** Timeout for start-up steps. Default 60 000. */
  timeoutMs?: number;
  /** Environment for the agents and the controller (e.g. LOG_LEVEL). */
  env?: Record<string, string>;
  /** Extra `controller serve` flags (e.g. health thresholds). */
  controllerArgs?: string[];
  /** Extra `agent run` flags for every agent (before each agent's own extraArgs). */
  agentArgs?: string[];
}

export interface AgentView {
  id: string;
  name: string;
  publicKey: string;
  endpoint: string;
  overlayAddress: string;
  advertised: string[];
  served: string[];
  isRevoked: boolean;
  isConnected: boolean;
  desiredGeneration: number;
  desiredHash: string;
  appliedGeneration: number;
  lastReportAtMs: number | null;
  lastReport?: unknown;
  endpoints?: Array<{ underlay: string; endpoint: string }>;
  isRelay?: boolean;
  /** Pairs this box relays now, "a <-> b". */
  relayedPairs?: string[];
}

export interface ApiResult<T> {
  status: number;
  body: T;
  /** Date.now() when the answer had fully arrived. */
  atMs: number;
}

/** The controller answered with an error status. */
export class FleetApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    method: string,
    path: string,
  ) {
    super(`${method} ${path}: HTTP ${status}: ${JSON.stringify(body)}`);
    this.name = 'FleetApiError';
  }
}

/** The Fleet's record of one agent (not exported from fleet.ts). */
export interface FleetAgent {
  spec: Required<Pick<FleetAgentSpec, 'box' | 'name'>> & FleetAgentSpec;
  box: Box;
  stateDir: string;
  logFile: string;
  joinToken: string;
  proc: SpawnedProcess | null;
}
