// Enrollment: the agent's name before it has one, and the join token exchanged for a credential,
// retried with backoff until the controller answers or refuses for good.
import { hostname } from 'node:os';
import { Backoff } from '../lib/backoff.js';
import { CrosslinkError, isCrosslinkError } from '../lib/errors.js';
import { parseJoinToken } from '../lib/join-token.js';
import type { AgentDeps, AgentRunOptions } from './main.js';
import type { Enrollment, StateDir } from './state.js';

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The name before enrolment: --name, else the name the join token was made for, else the host's. */
export function configuredName(opts: Pick<AgentRunOptions, 'name' | 'join'>): string {
  if (opts.name) return opts.name;
  try {
    if (opts.join) return parseJoinToken(opts.join).agentName ?? defaultAgentName();
  } catch {
    // A malformed token is reported by enroll() with its reason.
  }
  return defaultAgentName();
}

/** The host name as an agent name ("Leeds_GW.example" -> "leeds-gw"), or "" if nothing is left. */
export function defaultAgentName(host = hostname()): string {
  return (host.split('.')[0] ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
}

// Failures of enrollment that another attempt cannot fix.
const PERMANENT = new Set([
  'join_token_invalid',
  'protocol_mismatch',
  'config_invalid',
  'invalid_request',
  'unauthenticated',
  'forbidden',
]);

export function errorCode(e: unknown): string | undefined {
  if (isCrosslinkError(e)) return e.code;
  const c = (e as { code?: unknown })?.code;
  return typeof c === 'string' ? c : undefined;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((res) => {
    const h = setTimeout(res, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(h);
        res();
      },
      { once: true },
    );
  });

/** Enrolls with the join token and saves the enrollment; null when aborted first. */
export async function enroll(
  opts: AgentRunOptions,
  deps: Pick<AgentDeps, 'createControlClient' | 'clock' | 'log'>,
  state: StateDir,
  publicKey: string,
  signal: AbortSignal,
): Promise<Enrollment | null> {
  if (!opts.join) {
    throw new CrosslinkError(
      'config_invalid',
      `not enrolled yet: give a join token (--join or "join:" in the config file); ${state.dir} holds no credential`,
      [{ path: 'join', message: 'required for the first run' }],
    );
  }
  const token = parseJoinToken(opts.join);
  // The name the token was made for wins over the host name; an explicit --name must agree with it.
  const name = opts.name || token.agentName || defaultAgentName();
  if (token.agentName && name !== token.agentName) {
    throw new CrosslinkError(
      'config_invalid',
      `the join token was made for agent "${token.agentName}", not "${name}": drop --name or ask for a token for "${name}"`,
      [{ path: 'name', message: 'does not match the join token' }],
    );
  }
  if (!NAME_RE.test(name))
    throw new CrosslinkError('config_invalid', `agent name "${name}" is not lowercase [a-z0-9-], 1-63 chars`, [
      { path: 'name', message: 'invalid name' },
    ]);
  const log = deps.log.child({ controller: token.controllerUrls.join(' ') });
  const client = deps.createControlClient({
    controllerUrls: token.controllerUrls,
    caFingerprint: token.caFingerprint,
    log,
    clock: deps.clock,
  });
  const backoff = new Backoff({ initialMs: 1_000, maxMs: 60_000, jitter: 0.5 });
  while (!signal.aborted) {
    try {
      const res = await client.enroll(token.secret, {
        name,
        publicKey,
        endpoint: opts.endpoint,
        endpoints: opts.endpoints,
        isRelay: opts.isRelay,
        advertisedSubnets: opts.advertise,
        agentVersion: opts.agentVersion,
      });
      const e: Enrollment = {
        // parseJoinToken never returns an empty URL list.
        controllerUrl: token.controllerUrls[0]!,
        controllerUrls: token.controllerUrls,
        caFingerprint: token.caFingerprint,
        credential: res.credential,
        agentId: res.agentId,
        name,
        overlayAddress: res.overlayAddress,
        protocolVersion: res.protocolVersion,
        enrolledAtMs: deps.clock.nowMs(),
      };
      await state.saveEnrollment(e);
      log.info({ agent: name, agentId: res.agentId, overlay: res.overlayAddress }, 'enrolled');
      return e;
    } catch (err) {
      const code = errorCode(err);
      if (code && PERMANENT.has(code)) throw err;
      const delayMs = backoff.next();
      log.warn({ err: (err as Error).message, retryInMs: delayMs }, 'enrollment failed; retrying');
      await sleep(delayMs, signal);
    }
  }
  return null;
}
