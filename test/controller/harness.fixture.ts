// Test harness for the REST API: a real SQLite store in a temp dir, the real policy engine, and a
// small in-memory distribution port that records what the API asked of it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp, type AppOptions } from '../../controller/app.js';
import { newApiToken } from '../../controller/api/api-tokens.js';
import type { ApiDeps } from '../../controller/api/deps.js';
import type {
  AgentDiff,
  AgentLiveView,
  DistributionPort,
  DryRun,
  PairPathView,
  UnconfirmedView,
  UnservedView,
} from '../../controller/distribute/port.js';
import type { Policy } from '../../controller/policy/types.js';
import { liveBoxes, type LiveBox, type LiveRequest } from '../../controller/trace/live-plan.js';
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { openSqliteStore } from '../../controller/store/sqlite.js';
import type { Role, Store } from '../../controller/store/store.js';
import { silentLogger } from '../../lib/logger.js';

export class FakeDistribution implements DistributionPort {
  policies: Array<{ policy: Policy; version: number }> = [];
  changed: string[][] = [];
  isReadyNow = true;
  dryRunResult: AgentDiff[] = [
    { agent: 'box-b', changes: ['+ rule care-records tcp/443'], isConnected: true },
    { agent: 'box-a', changes: [], isConnected: true },
  ];
  setPolicy(policy: Policy, version: number): Promise<void> {
    this.policies.push({ policy, version });
    return Promise.resolve();
  }
  agentsChanged(names: string[]): Promise<void> {
    this.changed.push(names);
    return Promise.resolve();
  }
  dryRunPaths: PairPathView[] = [];
  dryRunUnserved: UnservedView[] = [];
  dryRun(_candidate: Policy): Promise<DryRun> {
    return Promise.resolve({ agents: this.dryRunResult, paths: this.dryRunPaths, unserved: this.dryRunUnserved });
  }
  indirectPaths(): PairPathView[] {
    return this.dryRunPaths;
  }
  unservedSubnets(): UnservedView[] {
    return this.dryRunUnserved;
  }
  /** What runLiveTrace was asked, and the boxes' answers it gives (absent: no answer). */
  liveRequests: LiveRequest[][] = [];
  liveAnswers = new Map<string, Omit<LiveBox, 'agent' | 'role'>>();
  liveInFlight = 0;
  runLiveTrace(requests: readonly LiveRequest[], windowMs: number): Promise<LiveBox[]> {
    this.liveRequests.push([...requests]);
    return Promise.resolve(liveBoxes(requests, this.liveAnswers, new Map(), windowMs));
  }
  liveTracesInFlight(): number {
    return this.liveInFlight;
  }
  unconfirmed: UnconfirmedView[] = [];
  unconfirmedSubnets(): UnconfirmedView[] {
    return this.unconfirmed;
  }
  liveView(name: string): AgentLiveView {
    return {
      isConnected: name === 'box-a',
      connectedSinceMs: name === 'box-a' ? 5 : null,
      servedSubnets: name === 'box-a' ? ['hospital'] : [],
      desiredGeneration: 0,
      desiredHash: '',
    };
  }
  /** subnet -> box, and box -> config, as a test sets them (trace reads both). */
  served: Record<string, string> = {};
  configs = new Map<string, AgentConfig>();
  currentConfig(name: string) {
    return this.configs.get(name);
  }
  currentPolicy() {
    return this.policies.at(-1) ?? null;
  }
  servingAgent(subnet: string): string | null {
    return this.served[subnet] ?? null;
  }
  isReady(): boolean {
    return this.isReadyNow;
  }
  connectedCount(): number {
    return 1;
  }
}

export const POLICY_YAML = `version: 1
zones:
  n3: { description: NHS N3 }
  psn: { description: council PSN }
agents:
  box-a: { zones: [n3] }
  box-b: { zones: [psn] }
subnets:
  hospital: { cidr: 10.20.0.0/16, zone: n3, via: [box-a] }
  council: { cidr: 10.60.0.0/16, zone: psn, via: [box-b] }
rules:
  - name: care-records
    from: [council]
    to: [hospital]
    ports: [tcp/443]
tests:
  - { from: 10.60.1.1, to: 10.20.1.1, port: 443, expect: allow }
  - { from: 10.20.1.1, to: 10.60.1.1, port: 443, expect: deny }
`;

export interface Harness {
  app: FastifyInstance;
  store: Store;
  dist: FakeDistribution;
  dbPath: string;
  dir: string;
  tokens: Record<Role, string>;
  deps: ApiDeps;
  /** inject() with a role's bearer token (or none / a literal header). */
  call(opts: InjectOptions & { as?: Role | null; bearer?: string }): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export async function makeHarness(appOpts: AppOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-api-'));
  const dbPath = join(dir, 'controller.db');
  let now = 1_700_000_000_000;
  const clock = { nowMs: () => (now += 1000) };
  const store = openSqliteStore({ path: dbPath, clock });
  await store.migrate();
  const tokens = {} as Record<Role, string>;
  for (const role of ['admin', 'operator', 'auditor'] as const) {
    const t = newApiToken({ name: `${role}-1`, role, createdBy: 'test', atMs: clock.nowMs() });
    await store.createApiToken(t.record, null);
    tokens[role] = t.text;
  }
  const dist = new FakeDistribution();
  const deps: ApiDeps = {
    store,
    distribution: dist,
    log: silentLogger(),
    clock,
    controllerUrls: ['https://controller.test:8443'],
    caFingerprint: 'ab'.repeat(32),
    caCertPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
  };
  const app = buildApp(deps, appOpts);
  await app.ready();
  return {
    app,
    store,
    dist,
    dbPath,
    dir,
    tokens,
    deps,
    call(opts) {
      const { as = 'admin', bearer, ...rest } = opts;
      const headers = { ...(rest.headers ?? {}) } as Record<string, string>;
      if (bearer !== undefined) headers.authorization = bearer;
      else if (as) headers.authorization = `Bearer ${tokens[as]}`;
      return app.inject({ ...rest, headers });
    },
    async close() {
      await app.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
