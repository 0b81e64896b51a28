// Controller replicas as real processes on one real PostgreSQL database, for cross-process tests.
import type { Test } from 'tap';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createControlClient } from '../../agent/control/connect.js';
import { ApiClient } from '../../cli/commands/api.js';
import { fakePublicKey } from '../../controller/rpc/test-controller.fixture.js';
import type { BackoffOptions } from '../../lib/backoff.js';
import { systemClock } from '../../lib/clock.js';
import { parseJoinToken } from '../../lib/join-token.js';
import { silentLogger } from '../../lib/logger.js';
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { startChildController, waitExit, type ChildController } from './child.js';
import { freshDatabase, startPostgres } from './postgres.fixture.js';

export type Api = Awaited<ReturnType<typeof ApiClient.connect>>;

/** Starts `count` replicas one after another on a new database; each later one gets the first's CA
 *  (and the admin token its first start made). The first started holds leadership. */
export async function startReplicas(
  t: Test,
  dbName: string,
  settings: Record<string, unknown> = {},
  count = 2,
): Promise<{ replicas: ChildController[]; apis: Api[]; dirs: string[]; database: string }> {
  const database = await freshDatabase(t, startPostgres(t), dbName);
  const dirs: string[] = [];
  const replicas: ChildController[] = [];
  for (let i = 0; i < count; i++) {
    const dir = mkdtempSync(join(tmpdir(), `crosslink-replica-${i}-`));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    if (i > 0) for (const f of ['ca.crt', 'ca.key', 'admin.token']) copyFileSync(join(dirs[0]!, f), join(dir, f));
    dirs.push(dir);
    const c = await startChildController(dir, '127.0.0.1:0', { database, ...settings });
    t.teardown(async () => {
      if (c.proc.exitCode === null && c.proc.signalCode === null) {
        c.proc.kill('SIGKILL');
        await waitExit(c.proc);
      }
    });
    replicas.push(c);
  }
  const apis: Api[] = [];
  for (const c of replicas) {
    const api = await ApiClient.connect({ controller: c.url, token: c.adminToken, caFingerprint: c.caFingerprint });
    t.teardown(() => api.close());
    apis.push(api);
  }
  return { replicas, apis, dirs, database };
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 10_000,
): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export type BoxClient = ReturnType<typeof createControlClient>;

/** Enrols `name` through `api` with the agent's real Connect client (a fake key, a TEST-NET
 *  endpoint), which then talks to `urls` in order; closed when the test ends. */
export async function enrolBox(
  t: Test,
  api: Api,
  opts: {
    name: string;
    urls: string[];
    caFingerprint: string;
    subnets?: string[];
    endpoint?: string;
    backoff?: BackoffOptions;
  },
): Promise<BoxClient> {
  const { token } = (await api.request<{ token: string }>('POST', '/v1/join-tokens', { json: { name: opts.name } }))
    .body;
  const client = createControlClient({
    controllerUrls: opts.urls,
    caFingerprint: opts.caFingerprint,
    log: silentLogger(),
    clock: systemClock,
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
  });
  t.teardown(() => client.close());
  await client.enroll(parseJoinToken(token).secret, {
    name: opts.name,
    publicKey: fakePublicKey(opts.name),
    endpoint: opts.endpoint ?? BOX_ENDPOINT,
    advertisedSubnets: opts.subnets ?? [],
    agentVersion: '0.1.0',
  });
  return client;
}

export const BOX_ENDPOINT = '192.0.2.1:51820';

/** Opens the box's config stream: every config it receives, in order, in `configs`. */
export function streamConfigs(
  client: BoxClient,
  subnets: string[],
  opts: { endpoint?: string; onState?: (s: { isConnected: boolean }) => void } = {},
): { configs: AgentConfig[]; watch: ReturnType<BoxClient['watch']> } {
  const configs: AgentConfig[] = [];
  const watch = client.watch(
    { onConfig: (c) => configs.push(c), onState: (s) => opts.onState?.(s) },
    {
      endpoint: opts.endpoint ?? BOX_ENDPOINT,
      advertisedSubnets: subnets,
      agentVersion: '0.1.0',
      knownContentHash: () => configs.at(-1)?.contentHash ?? '',
    },
  );
  return { configs, watch };
}
