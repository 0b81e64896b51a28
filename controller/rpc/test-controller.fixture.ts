// Test and benchmark harness: a real HTTPS (HTTP/2 + HTTP/1.1) fastify server on 127.0.0.1 with the
// agent service, an in-memory store and the real distributor. Not used by production code.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import fastify from 'fastify';
import type { Interceptor } from '@connectrpc/connect';
import { connectPlugin } from './connect-plugin.js';
import type { Clock } from '../../lib/clock.js';
import { systemClock } from '../../lib/clock.js';
import { silentLogger, type Logger } from '../../lib/logger.js';
import { formatJoinToken } from '../../lib/join-token.js';
import { MemoryStore } from '../store/memory.js';
import type { Store } from '../store/store.js';
import { Distributor } from '../distribute/distributor.js';
import { loadOrCreateTlsIdentity } from '../tls.js';
import { agentContextValues, agentServiceRoutes } from './agent-service.js';
import { keepSessionsAlive } from './session-keepalive.js';

export interface TestController {
  url: string;
  caFingerprint: string;
  caCertPem: string;
  store: Store;
  distributor: Distributor;
  clock: Clock;
  /** How many requests each RPC method got so far, by method name ("Enroll", "WatchConfig", "Report"). */
  calls: Map<string, number>;
  /** Creates a join token and returns its full text ("xljoin1.…") and secret. */
  joinToken(
    name: string,
    opts?: { ttlMs?: number; isReusable?: boolean },
  ): Promise<{ text: string; secret: string; id: string }>;
  close(): Promise<void>;
}

export async function startTestController(
  opts: {
    store?: Store;
    clock?: Clock;
    log?: Logger;
    heartbeatIntervalMs?: number;
    overlayCidr?: string;
    dataDir?: string;
    port?: number;
    /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection Node's default is unlimited. */
    maxConcurrentStreams?: number;
    /** Protocol versions the agent service accepts (default: this build's). */
    supportedProtocolVersions?: readonly number[];
    /** Server-side Connect interceptors (e.g. to add fields a newer controller would send). */
    interceptors?: Interceptor[];
    /** HTTP/2 PINGs on every connection, as the controller sends them (session-keepalive.ts). Default: none. */
    sessionPing?: { intervalMs: number; timeoutMs: number };
  } = {},
): Promise<TestController> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? silentLogger();
  const store = opts.store ?? new MemoryStore({ clock });
  const ownDir = opts.dataDir ? null : await mkdtemp(join(tmpdir(), 'xl-ctl-'));
  const tls = await loadOrCreateTlsIdentity(opts.dataDir ?? ownDir!, { sans: ['localhost', '127.0.0.1'] });
  const distributor = new Distributor({ store, log, clock, heartbeatIntervalMs: opts.heartbeatIntervalMs });
  await distributor.start();
  const app = fastify({
    http2: true,
    https: {
      allowHTTP1: true,
      key: tls.keyPem,
      cert: tls.certChainPem,
      ...(opts.maxConcurrentStreams ? { settings: { maxConcurrentStreams: opts.maxConcurrentStreams } } : {}),
    },
    logger: false,
  });
  const calls = new Map<string, number>();
  const counting: Interceptor = (next) => async (req) => {
    calls.set(req.method.name, (calls.get(req.method.name) ?? 0) + 1);
    return next(req);
  };
  await app.register(connectPlugin, {
    routes: agentServiceRoutes({
      store,
      distributor,
      log,
      clock,
      overlayCidr: opts.overlayCidr ?? '100.64.0.0/10',
      heartbeatIntervalMs: opts.heartbeatIntervalMs,
      supportedProtocolVersions: opts.supportedProtocolVersions,
    }),
    contextValues: agentContextValues,
    interceptors: [counting, ...(opts.interceptors ?? [])],
  });
  // Node's graceful http2 close waits for clients to hang up idle sessions (fastify then waits up to
  // http2SessionTimeout, 72 s): end them ourselves once the streams are closed.
  if (opts.sessionPing) keepSessionsAlive(app.server, { ...opts.sessionPing, log });
  const sessions = new Set<{ destroy(): void; once(e: 'close', f: () => void): unknown }>();
  app.server.on('session', (s: { destroy(): void; once(e: 'close', f: () => void): unknown }) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  await app.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  const url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    url,
    caFingerprint: tls.caFingerprint,
    caCertPem: tls.caCertPem,
    store,
    distributor,
    clock,
    calls,
    async joinToken(name, o = {}) {
      const secret = randomBytes(24).toString('base64url');
      const id = randomUUID();
      const now = clock.nowMs();
      await store.createJoinToken(
        {
          id,
          name,
          secretHash: createHash('sha256').update(secret).digest('hex'),
          isReusable: o.isReusable ?? false,
          expiresAtMs: now + (o.ttlMs ?? 3_600_000),
          createdAtMs: now,
          createdBy: 'test',
          usedAtMs: null,
          revokedAtMs: null,
        },
        {
          actor: { name: 'test', role: 'admin', address: '' },
          action: 'join_token.create',
          target: `join_token/${id}`,
          before: null,
          after: { name },
        },
      );
      return { text: formatJoinToken({ controllerUrls: [url], caFingerprint: tls.caFingerprint, secret }), secret, id };
    },
    async close() {
      await distributor.stop();
      const closing = app.close();
      for (const s of sessions) s.destroy();
      await closing;
      if (ownDir) await rm(ownDir, { recursive: true, force: true });
    },
  };
}

/** A syntactically valid WireGuard public key derived from a name (tests only). */
export function fakePublicKey(name: string): string {
  return createHash('sha256').update(name).digest('base64');
}
