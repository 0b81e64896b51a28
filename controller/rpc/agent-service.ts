// The controller's side of the agent protocol (proto/crosslink/v1/agent.proto), as Connect routes
// for @connectrpc/connect-fastify:
//
//   await app.register(connectPlugin, { routes: agentServiceRoutes(deps), contextValues: agentContextValues });
//
// Enroll trades a join token for an identity; every later call carries `authorization: Bearer
// <credential>`, checked against the stored sha256 of the credential. A revoked agent is refused at
// once and its open streams are ended by the distributor.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { create, toJsonString } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type ConnectRouter,
  type ContextValues,
  type HandlerContext,
} from '@connectrpc/connect';
import {
  AgentService,
  EnrollResponseSchema,
  ReportRequestSchema,
  ReportResponseSchema,
  TraceReportResponseSchema,
  type TraceRequest,
  WatchConfigResponseSchema,
  type AgentConfig,
  type WatchConfigResponse,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import { checkProtocolVersion, SUPPORTED_PROTOCOL_VERSIONS } from '../../proto/version.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { Actor, AgentRecord, Store } from '../store/store.js';
import { isValidName } from '../policy/names.js';
import { DEFAULT_UNDERLAY } from '../policy/types.js';
import { parsePrefixStrict } from '../policy/prefixes.js';
import { MAX_HEARTBEAT_INTERVAL_MS, type CloseReason, type Distributor } from '../distribute/distributor.js';
import { allocateOverlayAddress } from './overlay-pool.js';

export interface AgentServiceDeps {
  store: Store;
  distributor: Distributor;
  log: Logger;
  clock: Clock;
  /** Pool for overlay addresses, e.g. "100.64.0.0/10". */
  overlayCidr: string;
  /** Default: the distributor's (10 s); never above 30 s. */
  heartbeatIntervalMs?: number;
  /** Called after a report was stored (e.g. to re-evaluate health at once). Must not throw. */
  onReport?: (agent: string) => void;
  /** Called when a config stream ended, for whatever reason (e.g. to re-evaluate health at once). Must not throw. */
  onStreamClosed?: (agent: string) => void;
  /** Protocol versions this controller serves. Default SUPPORTED_PROTOCOL_VERSIONS (tests inject others). */
  supportedProtocolVersions?: readonly number[];
}

/** The caller's address, for audit entries; set by `agentContextValues` at the plugin. */
export const remoteAddressKey = createContextKey<string>('', { description: 'remote address of the request' });

/** `contextValues` for connectPlugin (connect-plugin.ts): carries the remote address into the handlers. */
export function agentContextValues(req: { ip?: string; socket?: { remoteAddress?: string } }): ContextValues {
  return createContextValues().set(remoteAddressKey, req.ip ?? req.socket?.remoteAddress ?? '');
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const WG_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const UNDERLAY = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const ENDPOINT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

export function agentServiceRoutes(deps: AgentServiceDeps): (router: ConnectRouter) => void {
  const { store, distributor, clock } = deps;
  const log = deps.log.child({ component: 'agent-rpc' });
  const supportedProtocolVersions = deps.supportedProtocolVersions ?? SUPPORTED_PROTOCOL_VERSIONS;
  const heartbeatIntervalMs = Math.min(
    MAX_HEARTBEAT_INTERVAL_MS,
    Math.max(1, deps.heartbeatIntervalMs ?? distributor.heartbeatIntervalMs),
  );
  // Enrolments run one at a time: address allocation and single-use tokens need a stable view.
  let enrolQueue: Promise<unknown> = Promise.resolve();

  const requireVersion = (v: number) => {
    const problem = checkProtocolVersion(v, supportedProtocolVersions);
    if (problem) throw new ConnectError(problem, Code.FailedPrecondition);
  };

  async function authenticate(ctx: HandlerContext): Promise<AgentRecord> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(ctx.requestHeader.get('authorization') ?? '');
    if (!m)
      throw new ConnectError('missing bearer credential (authorization: Bearer <credential>)', Code.Unauthenticated);
    const agent = await store.agentByCredentialHash(sha256(m[1]!));
    if (!agent) throw new ConnectError('unknown credential', Code.Unauthenticated);
    if (agent.revokedAtMs !== null) throw new ConnectError(`agent ${agent.name} is revoked`, Code.Unauthenticated);
    return agent;
  }

  function validatePrefixes(list: string[], field: string): string[] {
    const out: string[] = [];
    for (const [i, p] of list.entries()) {
      const r = parsePrefixStrict(p);
      if (!r.ok) throw new ConnectError(`${field}[${i}]: ${r.message}`, Code.InvalidArgument);
      out.push(r.prefix.text);
    }
    return [...new Set(out)].sort();
  }

  function validateEndpoint(e: string, field: string): void {
    if (e !== '' && (!ENDPOINT.test(e) || Number(e.slice(e.lastIndexOf(':') + 1)) > 65535)) {
      throw new ConnectError(`${field}: "${e}" is not host:port or [v6]:port`, Code.InvalidArgument);
    }
  }

  /**
   * The per-underlay endpoints an agent announces, sorted by underlay. Each underlay at most once;
   * with a policy that declares underlays, each must be one of them (a box cabled to a network the
   * policy does not know is a typo to fix on the box, not something to route around).
   */
  function validateEndpoints(
    list: { underlay: string; endpoint: string }[],
    field: string,
  ): { underlay: string; endpoint: string }[] {
    const declared = distributor.declaredUnderlays();
    const seen = new Set<string>();
    for (const [i, e] of list.entries()) {
      if (!UNDERLAY.test(e.underlay))
        throw new ConnectError(
          `${field}[${i}].underlay: "${e.underlay}" is not a name (lowercase letters, digits and "-", 1-63 characters)`,
          Code.InvalidArgument,
        );
      if (e.endpoint === '')
        throw new ConnectError(`${field}[${i}].endpoint: missing for underlay "${e.underlay}"`, Code.InvalidArgument);
      validateEndpoint(e.endpoint, `${field}[${i}].endpoint`);
      if (seen.has(e.underlay))
        throw new ConnectError(`${field}[${i}].underlay: "${e.underlay}" is announced twice`, Code.InvalidArgument);
      seen.add(e.underlay);
      if (declared && e.underlay !== DEFAULT_UNDERLAY && !declared.includes(e.underlay)) {
        throw new ConnectError(
          `${field}[${i}].underlay: the policy declares no underlay "${e.underlay}" (it declares ${declared.join(', ')})`,
          Code.InvalidArgument,
        );
      }
    }
    return list
      .map((e) => ({ underlay: e.underlay, endpoint: e.endpoint }))
      .sort((a, b) => (a.underlay < b.underlay ? -1 : a.underlay > b.underlay ? 1 : 0));
  }

  return (router: ConnectRouter) => {
    router.service(AgentService, {
      async enroll(req, ctx) {
        requireVersion(req.protocolVersion);
        if (!isValidName(req.name))
          throw new ConnectError(
            'name: lowercase letters, digits and "-", 1-63 characters, not starting or ending with "-"',
            Code.InvalidArgument,
          );
        if (!WG_KEY.test(req.publicKey))
          throw new ConnectError('public_key: a WireGuard public key is 44 characters of base64', Code.InvalidArgument);
        validateEndpoint(req.endpoint, 'endpoint');
        const endpoints = validateEndpoints(req.endpoints, 'endpoints');
        const advertised = validatePrefixes(req.advertisedSubnets, 'advertised_subnets');
        // Accept the whole token text too: the secret is what follows the last '.'.
        const secret = req.joinToken.slice(req.joinToken.lastIndexOf('.') + 1);
        const address = ctx.values.get(remoteAddressKey);

        const run = enrolQueue
          .catch(() => undefined)
          .then(async () => {
            const token = secret ? await store.joinTokenBySecretHash(sha256(secret)) : null;
            const now = clock.nowMs();
            const refuse = (why: string) => {
              log.warn({ name: req.name, address, why }, 'enrolment refused');
              return new ConnectError(`join token refused: ${why}`, Code.Unauthenticated);
            };
            if (!token) throw refuse('unknown token');
            if (token.revokedAtMs !== null) throw refuse('the token was revoked');
            if (token.expiresAtMs <= now) throw refuse('the token has expired');
            if (!token.isReusable && token.usedAtMs !== null)
              throw refuse('the token was already used (it is single-use)');
            if (token.name !== req.name) throw refuse(`the token was made for another agent name, not "${req.name}"`);

            const previous = await store.agentByName(req.name);
            const overlayAddress =
              previous?.overlayAddress ?? allocateOverlayAddress(deps.overlayCidr, await store.usedOverlayAddresses());
            const credential = randomBytes(32).toString('base64url');
            const record: AgentRecord = {
              id: previous?.id ?? randomUUID(),
              name: req.name,
              publicKey: req.publicKey,
              endpoint: req.endpoint || (endpoints[0]?.endpoint ?? ''),
              endpoints,
              isRelay: req.isRelay,
              overlayAddress,
              advertised,
              credentialHash: sha256(credential),
              agentVersion: req.agentVersion,
              protocolVersion: req.protocolVersion,
              enrolledAtMs: now,
              revokedAtMs: null,
              // Keep the generation floor across re-enrolment so generations stay monotonic.
              desiredGeneration: previous?.desiredGeneration ?? 0,
              desiredHash: previous?.desiredHash ?? '',
              appliedGeneration: 0,
              lastReportAtMs: null,
              lastReport: null,
            };
            const actor: Actor = { name: `agent:${req.name}`, role: 'agent', address };
            await store.enrollAgent(record, token.id, {
              actor,
              action: previous ? 'agent.reenroll' : 'agent.enroll',
              target: `agent/${req.name}`,
              before: previous ? publicView(previous) : null,
              after: { ...publicView(record), joinTokenId: token.id },
            });
            log.info({ agent: req.name, overlayAddress, isReenrol: previous !== null }, 'agent enrolled');
            return { record, credential };
          });
        enrolQueue = run;
        const { record, credential } = await run;
        await distributor.agentsChanged([record.name]);
        return create(EnrollResponseSchema, {
          agentId: record.id,
          credential,
          overlayAddress: record.overlayAddress,
          protocolVersion: record.protocolVersion,
        });
      },

      async *watchConfig(req, ctx) {
        let agent = await authenticate(ctx);
        requireVersion(req.protocolVersion);
        const name = agent.name;
        const patch: Parameters<Store['updateAgent']>[1] = {};
        validateEndpoint(req.endpoint, 'endpoint');
        if (req.endpoint !== '' && req.endpoint !== agent.endpoint) patch.endpoint = req.endpoint;
        // An agent that predates underlays sends neither: its stored endpoints and consent stay [] and false.
        const endpoints = validateEndpoints(req.endpoints, 'endpoints');
        if (JSON.stringify(endpoints) !== JSON.stringify(agent.endpoints)) patch.endpoints = endpoints;
        if (req.isRelay !== agent.isRelay) patch.isRelay = req.isRelay;
        if (req.advertisedSubnetsSet) {
          const adv = validatePrefixes(req.advertisedSubnets, 'advertised_subnets');
          if (adv.join() !== [...agent.advertised].sort().join()) patch.advertised = adv;
        }
        if (req.agentVersion !== '' && req.agentVersion !== agent.agentVersion) patch.agentVersion = req.agentVersion;
        if (req.protocolVersion !== agent.protocolVersion) patch.protocolVersion = req.protocolVersion;
        if (Object.keys(patch).length > 0) {
          await store.updateAgent(name, patch);
          if (
            patch.endpoint !== undefined ||
            patch.advertised !== undefined ||
            patch.endpoints !== undefined ||
            patch.isRelay !== undefined
          ) {
            log.info(
              {
                agent: name,
                endpoint: patch.endpoint,
                endpoints: patch.endpoints,
                isRelay: patch.isRelay,
                advertised: patch.advertised,
              },
              'agent inventory updated by its stream',
            );
            await distributor.agentsChanged([name]);
          }
          // Revoked meanwhile? agentsChanged would have closed nothing yet: check again.
          agent = (await store.agentByName(name)) ?? agent;
          if (agent.revokedAtMs !== null) throw new ConnectError(`agent ${name} is revoked`, Code.Unauthenticated);
        }

        const outbox = new Outbox();
        const sub = distributor.subscribe(name, {
          credentialHash: agent.credentialHash,
          push: (config) => outbox.config(config),
          close: (reason) => outbox.fail(closeError(name, reason)),
          trace: (request) => outbox.trace(request),
        });
        const heartbeat = (): WatchConfigResponse =>
          create(WatchConfigResponseSchema, {
            msg: {
              case: 'heartbeat',
              value: {
                serverTimeUnixMs: BigInt(clock.nowMs()),
                heartbeatIntervalSeconds: Math.ceil(heartbeatIntervalMs / 1000),
                desiredGeneration: BigInt(distributor.liveView(name).desiredGeneration),
              },
            },
          });
        const timer = setInterval(() => outbox.heartbeat(), heartbeatIntervalMs);
        const onAbort = () => outbox.end();
        ctx.signal.addEventListener('abort', onAbort);
        log.debug({ agent: name }, 'config stream opened');
        try {
          if (sub.current) yield configMessage(sub.current);
          // An immediate heartbeat tells the agent the interval before it has to wait for one.
          yield heartbeat();
          while (true) {
            const next = await outbox.next();
            if (next === null) return;
            yield next === 'heartbeat'
              ? heartbeat()
              : next.$typeName === 'crosslink.v1.TraceRequest'
                ? create(WatchConfigResponseSchema, { msg: { case: 'traceRequest', value: next } })
                : configMessage(next);
          }
        } finally {
          clearInterval(timer);
          ctx.signal.removeEventListener('abort', onAbort);
          sub.unsubscribe();
          log.debug({ agent: name }, 'config stream closed');
          deps.onStreamClosed?.(name);
        }
      },

      async reportTrace(req, ctx) {
        const agent = await authenticate(ctx);
        requireVersion(req.protocolVersion);
        if (!distributor.deliverTrace(agent.name, req))
          throw new ConnectError(`no live trace ${req.id} in flight asked ${agent.name}`, Code.NotFound);
        return create(TraceReportResponseSchema, {});
      },

      async report(req, ctx) {
        const agent = await authenticate(ctx);
        requireVersion(req.protocolVersion);
        await store.updateAgent(agent.name, {
          lastReport: toJsonString(ReportRequestSchema, req),
          appliedGeneration: Number(req.generationApplied),
          lastReportAtMs: clock.nowMs(),
          ...(req.agentVersion !== '' && req.agentVersion !== agent.agentVersion
            ? { agentVersion: req.agentVersion }
            : {}),
        });
        deps.onReport?.(agent.name);
        if (req.applyErrors.length > 0) {
          log.warn(
            {
              agent: agent.name,
              generationSeen: Number(req.generationSeen),
              errors: req.applyErrors.map((e) => ({ step: e.step, exitCode: e.exitCode, isTerminal: e.isTerminal })),
            },
            'agent reports apply errors',
          );
        }
        return create(ReportResponseSchema, {
          desiredGeneration: BigInt(distributor.liveView(agent.name).desiredGeneration),
        });
      },
    });
  };
}

function publicView(a: AgentRecord) {
  return {
    id: a.id,
    name: a.name,
    publicKey: a.publicKey,
    endpoint: a.endpoint,
    overlayAddress: a.overlayAddress,
    advertised: a.advertised,
    agentVersion: a.agentVersion,
    ...(a.endpoints.length > 0 ? { endpoints: a.endpoints } : {}),
    ...(a.isRelay ? { isRelay: true } : {}),
  };
}

function configMessage(config: AgentConfig): WatchConfigResponse {
  return create(WatchConfigResponseSchema, { msg: { case: 'config', value: config } });
}

function closeError(name: string, reason: CloseReason): ConnectError {
  switch (reason) {
    case 'revoked':
      return new ConnectError(`agent ${name} is revoked`, Code.Unauthenticated);
    case 'deleted':
      return new ConnectError(`agent ${name} was deleted`, Code.Unauthenticated);
    case 'reenrolled':
      return new ConnectError(`agent ${name} enrolled again with a new credential`, Code.Unauthenticated);
    case 'stopping':
      return new ConnectError('controller is shutting down', Code.Unavailable);
  }
}

/**
 * What one stream still has to send. Bounded whatever the client's pace: only the newest config
 * is kept (configs are complete, never deltas) and at most one heartbeat is pending.
 */
class Outbox {
  #config: AgentConfig | null = null;
  /** Live-trace requests not sent yet; bounded (the API runs at most a few traces at once). */
  #traces: TraceRequest[] = [];
  #isHeartbeatDue = false;
  #error: Error | null = null;
  #isEnded = false;
  #wake: (() => void) | null = null;

  config(c: AgentConfig): void {
    this.#config = c;
    this.#notify();
  }
  trace(r: TraceRequest): void {
    if (this.#traces.length < 16) this.#traces.push(r);
    this.#notify();
  }
  heartbeat(): void {
    this.#isHeartbeatDue = true;
    this.#notify();
  }
  fail(e: Error): void {
    this.#error = e;
    this.#notify();
  }
  end(): void {
    this.#isEnded = true;
    this.#notify();
  }
  async next(): Promise<AgentConfig | TraceRequest | 'heartbeat' | null> {
    while (true) {
      if (this.#error) throw this.#error;
      if (this.#isEnded) return null;
      if (this.#config) {
        const c = this.#config;
        this.#config = null;
        this.#isHeartbeatDue = false; // the config itself shows the stream is alive
        return c;
      }
      const t = this.#traces.shift();
      if (t) return t;
      if (this.#isHeartbeatDue) {
        this.#isHeartbeatDue = false;
        return 'heartbeat';
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }
}
