// The agent's control client over Connect RPC (HTTP/2 by default), with the controller's CA pinned
// by the fingerprint from the join token: no trust on first use.
//
// State it keeps in `stateDir` (when given), both 0600 and written atomically:
//   credential         the bearer credential from Enroll (returned once by the controller)
//   controller-ca.pem  the pinned CA, checked against the fingerprint again whenever it is read
//
// watch() keeps one WatchConfig stream open: a stream silent for 3x the heartbeat interval the
// controller announces is dead (so is one that never says anything within 30 s); it is torn down
// (the HTTP/2 connection too, in case the path is black-holed) and reopened with exponential
// backoff, full jitter and a cap.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Code, ConnectError, createClient, type Client, type Transport } from '@connectrpc/connect';
import { createConnectTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { AgentService, type EnrollResponse } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { PROTOCOL_VERSION } from '../../proto/version.js';
import { Backoff, type BackoffOptions } from '../../lib/backoff.js';
import type { Clock } from '../../lib/clock.js';
import { CrosslinkError, type ErrorCode } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { fetchPinnedCa, normaliseFingerprint, pinnedTlsOptions } from '../../lib/pin.js';
import type { ConfigStreamEvents, ControlClient, EnrollInput } from './client.js';

export interface ControlClientOptions {
  /**
   * The controller's URLs, first choice first (from the join token): one per network the controller
   * host sits on. The client uses one at a time, moves to the next when it cannot connect, and
   * stays with one that works.
   */
  controllerUrls: readonly string[];
  /** sha256 of the controller CA's DER, hex (from the join token). */
  caFingerprint: string;
  stateDir?: string;
  /** A credential from an earlier enrolment; otherwise read from stateDir, or set by enroll(). */
  credential?: string;
  log: Logger;
  clock: Clock;
  /** Default "2": one connection carries every call. */
  httpVersion?: '1.1' | '2';
  /**
   * Reconnect backoff; default 500 ms doubling to 15 s, full jitter. The cap bounds how long a box
   * stays stale after the controller comes back from an outage of any length: every agent must
   * reconnect and report within 30 s, and a 30 s cap alone (plus the attempt) could not promise that.
   */
  backoff?: BackoffOptions;
  /** Overrides "3x the announced heartbeat interval" (tests). */
  heartbeatTimeoutMs?: number;
  /** Deadline for Enroll and Report. Default 15 s. */
  callTimeoutMs?: number;
  /** Use this transport instead of making one (benchmarks sharing connections; no pinning then). */
  transport?: Transport;
  /** Like `transport`, per controller URL: benchmarks share connections yet move between URLs. */
  transportFor?: (url: string) => Transport;
  random?: () => number;
  /** The protocol version this agent speaks. Default PROTOCOL_VERSION (tests simulate other builds). */
  protocolVersion?: number;
}

export interface ConnectControlClient extends ControlClient {
  /** The credential in use, if enrolled. Never log it. */
  readonly hasCredential: boolean;
  /** Closes connections; watch() streams must be stopped first. */
  close(): Promise<void>;
}

const FILE_CREDENTIAL = 'credential';
const FILE_CA = 'controller-ca.pem';
/** Until the first heartbeat announces the interval: the protocol's maximum (30 s). */
const FIRST_MESSAGE_TIMEOUT_MS = 30_000;
/** Longest wait between reconnect attempts (full jitter: uniform 0..cap). */
const RECONNECT_MAX_MS = 15_000;
/** Retry pace after the controller refused the credential or protocol (an operator must act). */
const REFUSED_RETRY_MS = 30_000;

export function createControlClient(opts: ControlClientOptions): ConnectControlClient {
  const log = opts.log.child({ component: 'control' });
  const pin = normaliseFingerprint(opts.caFingerprint);
  const callTimeoutMs = opts.callTimeoutMs ?? 15_000;
  const protocolVersion = opts.protocolVersion ?? PROTOCOL_VERSION;
  let credential: string | undefined = opts.credential;
  let isCredentialLoaded = credential !== undefined;
  const urls =
    opts.controllerUrls.length > 0
      ? [...opts.controllerUrls]
      : (() => {
          throw new Error('createControlClient: no controller URL');
        })();
  let urlIndex = 0;
  const currentUrl = (): string => urls[urlIndex]!;
  let connection: { client: Client<typeof AgentService>; session?: Http2SessionManager } | null = null;
  let connecting: Promise<{ client: Client<typeof AgentService>; session?: Http2SessionManager }> | null = null;

  async function loadCa(): Promise<string> {
    if (opts.stateDir) {
      const pem = await readFile(join(opts.stateDir, FILE_CA), 'utf8').catch(() => null);
      if (pem) {
        try {
          pinnedTlsOptions(pem, pin);
          return pem;
        } catch {
          log.warn('stored controller CA does not match the pinned fingerprint; fetching it again');
        }
      }
    }
    // Any URL will do for the CA (the pin decides whether to trust it); start with the current one.
    let lastError: unknown;
    for (let i = 0; i < urls.length; i++) {
      const index = (urlIndex + i) % urls.length;
      try {
        const pem = await fetchPinnedCa(urls[index]!, pin);
        urlIndex = index;
        if (opts.stateDir) await writeSecret(opts.stateDir, FILE_CA, pem);
        return pem;
      } catch (e) {
        lastError = e;
        if (e instanceof CrosslinkError && e.code !== 'unavailable') throw e; // a pin mismatch is not a network problem
      }
    }
    throw lastError;
  }

  async function connectionOf() {
    if (connection) return connection;
    connecting ??= (async () => {
      if (opts.transport) return { client: createClient(AgentService, opts.transport) };
      if (opts.transportFor) return { client: createClient(AgentService, opts.transportFor(currentUrl())) };
      const tlsOptions = pinnedTlsOptions(await loadCa(), pin);
      if (opts.httpVersion === '1.1') {
        return {
          client: createClient(
            AgentService,
            createConnectTransport({ httpVersion: '1.1', baseUrl: currentUrl(), nodeOptions: tlsOptions }),
          ),
        };
      }
      const session = new Http2SessionManager(
        currentUrl(),
        { pingIntervalMs: 15_000, pingTimeoutMs: 10_000, idleConnectionTimeoutMs: 60_000 },
        tlsOptions,
      );
      return {
        session,
        client: createClient(
          AgentService,
          createConnectTransport({ httpVersion: '2', baseUrl: currentUrl(), sessionManager: session }),
        ),
      };
    })();
    try {
      connection = await connecting;
      return connection;
    } finally {
      connecting = null;
    }
  }

  /** Drops the connection so the next call dials afresh (after a dead stream). */
  function resetConnection(): void {
    connection?.session?.abort();
    connection = null;
  }

  /** The current URL did not answer: the next call dials the next one (with one URL, the same). */
  function nextUrl(reason: string): void {
    resetConnection();
    if (urls.length < 2) return;
    const from = currentUrl();
    urlIndex = (urlIndex + 1) % urls.length;
    log.info({ from, to: currentUrl(), reason }, 'trying the next controller URL');
  }

  async function authHeaders(): Promise<Record<string, string>> {
    if (!isCredentialLoaded && opts.stateDir) {
      credential = (await readFile(join(opts.stateDir, FILE_CREDENTIAL), 'utf8').catch(() => '')).trim() || undefined;
      isCredentialLoaded = true;
    }
    if (!credential)
      throw new CrosslinkError('unauthenticated', 'this agent is not enrolled yet: run it once with --join TOKEN');
    return { authorization: `Bearer ${credential}` };
  }

  const client: ConnectControlClient = {
    get hasCredential() {
      return credential !== undefined;
    },

    async enroll(joinSecret: string, input: EnrollInput): Promise<EnrollResponse> {
      // Every URL once before giving up: the box may sit on only one of the controller's networks.
      for (let attempt = 1; ; attempt++) {
        try {
          return await enrollOnce(joinSecret, input);
        } catch (e) {
          if (!(e instanceof CrosslinkError) || e.code !== 'unavailable' || attempt >= urls.length) throw e;
          nextUrl(e.message);
        }
      }
    },

    async report(report) {
      const headers = await authHeaders();
      const { client: rpc } = await connectionOf();
      try {
        await rpc.report({ ...report, protocolVersion }, { headers, timeoutMs: callTimeoutMs });
      } catch (e) {
        throw toCrosslinkError(e, 'report');
      }
    },

    async reportTrace(report) {
      const headers = await authHeaders();
      const { client: rpc } = await connectionOf();
      try {
        await rpc.reportTrace({ ...report, protocolVersion }, { headers, timeoutMs: callTimeoutMs });
      } catch (e) {
        throw toCrosslinkError(e, 'report trace');
      }
    },

    watch(events: ConfigStreamEvents, hello) {
      return watchStream(events, hello);
    },

    // eslint-disable-next-line @typescript-eslint/require-await -- the port's close() returns a promise
    async close() {
      resetConnection();
    },
  };

  async function enrollOnce(joinSecret: string, input: EnrollInput): Promise<EnrollResponse> {
    let rpc: Client<typeof AgentService>;
    try {
      rpc = (await connectionOf()).client;
    } catch (e) {
      throw toCrosslinkError(e, 'enroll');
    }
    try {
      const res = await rpc.enroll(
        {
          protocolVersion,
          joinToken: joinSecret,
          name: input.name,
          publicKey: input.publicKey,
          endpoint: input.endpoint,
          advertisedSubnets: input.advertisedSubnets,
          agentVersion: input.agentVersion,
          endpoints: input.endpoints ?? [],
          isRelay: input.isRelay ?? false,
        },
        { timeoutMs: callTimeoutMs },
      );
      credential = res.credential;
      isCredentialLoaded = true;
      // Store before returning: the controller shows the credential once.
      if (opts.stateDir) await writeSecret(opts.stateDir, FILE_CREDENTIAL, res.credential + '\n');
      log.info({ agentId: res.agentId, overlayAddress: res.overlayAddress, controller: currentUrl() }, 'enrolled');
      return res;
    } catch (e) {
      throw toCrosslinkError(e, 'enroll');
    }
  }

  function watchStream(
    events: ConfigStreamEvents,
    hello: Parameters<ControlClient['watch']>[1],
  ): { stop(): Promise<void> } {
    const backoff = new Backoff(opts.backoff ?? { initialMs: 500, maxMs: RECONNECT_MAX_MS, jitter: 1 }, opts.random);
    const stopController = new AbortController();
    let current: AbortController | null = null;
    let lastReason: string | null = null;

    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        stopController.signal.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            resolve();
          },
          { once: true },
        );
      });

    // isRefused: the controller refused the credential or our protocol version; another attempt
    // soon cannot fix that (an operator must act), so those retry at the slowest pace.
    const once = async (): Promise<{
      wasConnected: boolean;
      reason: string;
      isDead: boolean;
      isRefused: boolean;
      isUnreachable?: boolean;
    }> => {
      const ac = new AbortController();
      current = ac;
      let wasConnected = false;
      let timer: NodeJS.Timeout | undefined;
      let deadReason: string | null = null;
      let timeoutMs = opts.heartbeatTimeoutMs ?? FIRST_MESSAGE_TIMEOUT_MS;
      const arm = (ms: number) => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          deadReason = `no message from the controller for ${ms} ms (heartbeats missed): stream presumed dead`;
          ac.abort();
        }, ms);
      };
      try {
        const headers = await authHeaders();
        const { client: rpc } = await connectionOf();
        arm(timeoutMs);
        const stream = rpc.watchConfig(
          {
            protocolVersion,
            knownContentHash: hello.knownContentHash(),
            endpoint: hello.endpoint,
            endpoints: hello.endpoints ?? [],
            isRelay: hello.isRelay ?? false,
            advertisedSubnets: hello.advertisedSubnets,
            advertisedSubnetsSet: true,
            agentVersion: hello.agentVersion,
          },
          { headers, signal: ac.signal },
        );
        for await (const m of stream) {
          if (!wasConnected) {
            wasConnected = true;
            backoff.reset();
            lastReason = null;
            if (urls.length > 1) log.info({ controller: currentUrl() }, 'config stream open');
            events.onState({ isConnected: true, atMs: opts.clock.nowMs() });
          }
          // Any message proves the stream alive; a heartbeat also announces the interval.
          if (m.msg.case === 'heartbeat' && opts.heartbeatTimeoutMs === undefined) {
            timeoutMs = 3 * Math.max(1, m.msg.value.heartbeatIntervalSeconds) * 1000;
          }
          arm(timeoutMs);
          if (m.msg.case === 'config') events.onConfig(m.msg.value);
          else if (m.msg.case === 'heartbeat')
            events.onHeartbeat?.({
              serverTimeMs: Number(m.msg.value.serverTimeUnixMs),
              receivedAtMs: opts.clock.nowMs(),
            });
          else if (m.msg.case === 'traceRequest') events.onTraceRequest?.(m.msg.value);
        }
        return { wasConnected, reason: 'the controller ended the stream', isDead: false, isRefused: false };
      } catch (e) {
        if (deadReason) return { wasConnected, reason: deadReason, isDead: true, isRefused: false };
        if (stopController.signal.aborted) return { wasConnected, reason: 'stopped', isDead: false, isRefused: false };
        const err = e instanceof CrosslinkError ? e : toCrosslinkError(e, 'watch');
        return {
          wasConnected,
          reason: err.message,
          isDead: false,
          isRefused: err.code === 'unauthenticated' || err.code === 'protocol_mismatch',
          isUnreachable: err.code === 'unavailable',
        };
      } finally {
        clearTimeout(timer);
        current = null;
      }
    };

    const loop = (async () => {
      while (!stopController.signal.aborted) {
        const r = await once();
        if (stopController.signal.aborted) break;
        // A dead stream, or a controller that cannot be reached: try its next URL (another network).
        if (r.isDead || r.isUnreachable) nextUrl(r.reason);
        // Tell the caller about each disconnect, and about a failing reconnect once per new reason.
        if (r.wasConnected || r.reason !== lastReason) {
          events.onState({ isConnected: false, reason: r.reason, atMs: opts.clock.nowMs() });
          log.warn({ reason: r.reason }, r.wasConnected ? 'config stream lost' : 'cannot open config stream');
        }
        lastReason = r.reason;
        // A refused credential or protocol version will not start working by itself (the
        // controller or this agent must be upgraded, or the box re-enrolled): slowest pace.
        let delayMs = backoff.next();
        if (r.isRefused) delayMs = Math.max(delayMs, opts.backoff?.maxMs ?? REFUSED_RETRY_MS);
        await sleep(delayMs);
      }
    })();

    return {
      async stop() {
        stopController.abort();
        current?.abort();
        await loop;
      },
    };
  }
  return client;
}

function toCrosslinkError(e: unknown, call: string): CrosslinkError {
  if (e instanceof CrosslinkError) return e;
  const ce = ConnectError.from(e);
  const code: ErrorCode =
    ce.code === Code.Unauthenticated
      ? call === 'enroll'
        ? 'join_token_invalid'
        : 'unauthenticated'
      : ce.code === Code.FailedPrecondition
        ? 'protocol_mismatch'
        : ce.code === Code.InvalidArgument
          ? 'invalid_request'
          : ce.code === Code.PermissionDenied
            ? 'forbidden'
            : 'unavailable';
  return new CrosslinkError(code, `controller ${call}: ${ce.rawMessage}`, [], { cause: e });
}

async function writeSecret(dir: string, file: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${file}.tmp-${process.pid}`);
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, join(dir, file));
}
