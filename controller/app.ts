// buildApp(): the controller's HTTP surface on one fastify instance — the REST API, the OpenAPI
// document, health, and (when given) the agents' Connect RPC routes. It never listens: main.ts
// does, and tests use inject().
import type { ConnectRouter, ContextValues } from '@connectrpc/connect';
import { connectPlugin } from './rpc/connect-plugin.js';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { PROTOCOL_VERSION } from '../proto/version.js';
import { agentRoutes } from './api/agents.js';
import { apiTokenRoutes } from './api/api-tokens.js';
import { auditRoutes } from './api/audit.js';
import { createAuth } from './api/auth.js';
import type { ApiDeps } from './api/deps.js';
import { installErrorHandling } from './api/error-handler.js';
import { healthRoutes } from './api/health.js';
import { healthStatusRoutes, type HealthReader } from './api/health-status.js';
import { diagramRoutes } from './api/diagram.js';
import { policyRuleWindows } from './policy/rule-windows.js';
import { hashesEqual, sha256Hex } from './api/secrets.js';
import { metricsRoute, type ControllerMetrics } from './metrics.js';
import { CrosslinkError } from '../lib/errors.js';
import { joinTokenRoutes } from './api/join-tokens.js';
import { policyRoutes } from './api/policy.js';
import { policyViewRoutes } from './api/policy-views.js';
import { traceRoutes } from './api/trace.js';
import { ruleRoutes } from './api/rules.js';
import { uiRoutes, type UiOptions } from './ui/routes.js';
import { ErrorBody } from './api/schemas.js';
import {
  DEFAULT_SESSION_PING_INTERVAL_MS,
  DEFAULT_SESSION_PING_TIMEOUT_MS,
  keepSessionsAlive,
} from './rpc/session-keepalive.js';

export type { ApiDeps } from './api/deps.js';

/** "GET", "/v1/agents/:name/revoke" -> "getAgentsByNameRevoke". */
export function operationIdOf(method: string, url: string): string {
  const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
  const words = url
    .split('/')
    .filter((s) => s !== '' && s !== 'v1')
    .map((s) =>
      s.startsWith(':') || s.startsWith('{')
        ? `By${cap(s.replace(/^[:{]|}$/g, ''))}`
        : s.split(/[-_.]/).map(cap).join(''),
    );
  return method.toLowerCase() + words.join('');
}

export interface AppOptions {
  /** Largest accepted request body; default 1 MiB. */
  bodyLimitBytes?: number;
  /** Serve HTTPS with this key and certificate chain (leaf first, then the CA). Absent: plain HTTP (tests). */
  tls?: { keyPem: string; certChainPem: string };
  /** The agents' Connect RPC service (controller/rpc/agent-service.ts), served on the same port. */
  connectRoutes?: (router: ConnectRouter) => void;
  /** Per-request context for the Connect handlers (e.g. the caller's address). */
  connectContextValues?: (req: FastifyRequest) => ContextValues;
  /**
   * With `tls` (HTTP/2): PING every connection this often and close one whose PING goes unanswered
   * this long, so the stream of a box that died without a FIN ends within seconds. Defaults 5 s / 5 s.
   */
  sessionPing?: { intervalMs?: number; timeoutMs?: number; onDead?: (remoteAddress: string) => void };
  /** Fleet health: /v1/health* (needs agents.read) and GET /metrics. Absent: neither is served. */
  health?: {
    monitor: HealthReader;
    metrics: ControllerMetrics;
    /** Bearer token /metrics requires; absent: /metrics is open, as Prometheus targets usually are. */
    metricsToken?: string;
  };
  /**
   * The web view under /ui (always served). Its live events (GET /ui/events, from `ui.events`) are
   * served only with `health`, as /v1/health is: they tell the browser when health changed.
   */
  ui?: UiOptions;
}

export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;

export function buildApp(deps: ApiDeps, opts: AppOptions = {}): FastifyInstance {
  const serverOptions: FastifyServerOptions = {
    loggerInstance: deps.log.child({ component: 'api' }),
    // Per-request lines would log every agent call; errors are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    // Unknown fields are refused (not silently dropped) and types are not coerced: "5" is not 5.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true, useDefaults: false } },
    // Config streams live long; the heartbeats keep them busy, so only idle keep-alives time out.
    requestTimeout: 0,
    connectionTimeout: 0,
    forceCloseConnections: true,
  };
  // HTTP/2 with HTTP/1.1 allowed: agents may stream over either; the CLI speaks HTTP/1.1.
  const app = (opts.tls
    ? Fastify({
        ...serverOptions,
        http2: true as const,
        https: { allowHTTP1: true, key: opts.tls.keyPem, cert: opts.tls.certChainPem },
      } as Parameters<typeof Fastify>[0])
    : Fastify(serverOptions)) as unknown as FastifyInstance;
  if (opts.tls) {
    keepSessionsAlive(app.server, {
      intervalMs: opts.sessionPing?.intervalMs ?? DEFAULT_SESSION_PING_INTERVAL_MS,
      timeoutMs: opts.sessionPing?.timeoutMs ?? DEFAULT_SESSION_PING_TIMEOUT_MS,
      log: deps.log.child({ component: 'keepalive' }),
      ...(opts.sessionPing?.onDead ? { onDead: opts.sessionPing.onDead } : {}),
    });
  }

  // The API takes JSON (and YAML for a policy). Fastify also parses text/plain by default, which made
  // a text/plain body a 400 "body must be object" where any other wrong type is a 415.
  app.removeContentTypeParser('text/plain');
  // Every documented operation gets an operationId (OpenAPI clients name their functions after it):
  // GET /v1/agents/{name} -> getAgentsByName, POST /v1/policy/dry-run -> postPolicyDryRun.
  app.addHook('onRoute', (route) => {
    const schema = (route.schema ?? {}) as { hide?: boolean; operationId?: string };
    if (schema.hide === true || schema.operationId !== undefined) return;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (methods.length !== 1 || methods[0] === 'HEAD') return;
    route.schema = { ...schema, operationId: operationIdOf(methods[0]!, route.url) };
  });
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  installErrorHandling(app, deps.log);
  api.addSchema(ErrorBody);

  void api.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Crosslink controller API',
        version: String(PROTOCOL_VERSION),
        description:
          'Policy, agents, tokens and audit. Errors are {code, message, details}; codes are listed in docs/errors.md.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  const auth = createAuth(deps);
  void api.register(healthRoutes(deps));
  void api.register(policyRoutes(deps, auth));
  void api.register(policyViewRoutes(deps, auth));
  void api.register(agentRoutes(deps, auth));
  void api.register(traceRoutes(deps, auth));
  void api.register(ruleRoutes(deps, auth));
  void api.register(joinTokenRoutes(deps, auth));
  void api.register(apiTokenRoutes(deps, auth));
  void api.register(auditRoutes(deps, auth));
  const { events, ...uiOptions } = opts.ui ?? {};
  void app.register(uiRoutes(deps, auth, { ...uiOptions, ...(opts.health && events ? { events } : {}) }));
  if (opts.health) {
    const { monitor, metrics, metricsToken } = opts.health;
    void api.register(
      healthStatusRoutes({
        monitor,
        authorize: auth.requires('agents.read'),
        unserved: () => deps.distribution.unservedSubnets(),
        unconfirmed: () => deps.distribution.unconfirmedSubnets(),
        ruleWindows: () => policyRuleWindows(deps.distribution.currentPolicy()?.policy, Date.now()),
      }),
    );
    void api.register(
      diagramRoutes({
        monitor,
        store: deps.store,
        distribution: deps.distribution,
        clock: deps.clock,
        authorize: auth.requires('agents.read'),
      }),
    );
    void app.register(async (scope) => {
      if (metricsToken !== undefined) {
        const want = sha256Hex(metricsToken);
        // eslint-disable-next-line @typescript-eslint/require-await -- a hook without done() must return a promise
        scope.addHook('onRequest', async (req) => {
          const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
          if (!m || !hashesEqual(sha256Hex(m[1]!), want))
            throw new CrosslinkError(
              'unauthenticated',
              'GET /metrics needs the metrics token (authorization: Bearer <metrics-token>)',
            );
        });
      }
      await scope.register(metricsRoute(metrics));
    });
  }

  api.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());

  if (opts.connectRoutes)
    void app.register(connectPlugin, {
      routes: opts.connectRoutes,
      contextValues: opts.connectContextValues,
      log: deps.log.child({ component: 'rpc' }),
    });
  return app;
}
