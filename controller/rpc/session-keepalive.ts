// Dead-connection detection for the agents' HTTP/2 connections. A box that loses power, or whose
// uplink is cut, sends no FIN or RST: without this its config stream would stay "connected" until
// TCP gives up retransmitting (15 minutes and more), and failover, which needs the stream down,
// would wait as long. So every HTTP/2 session gets a PING every `intervalMs`; one not answered
// within `timeoutMs` closes the session, which ends its streams (the distributor then sees the
// agent's stream down, and health evaluates it).
//
// An agent answers PINGs from its HTTP/2 layer, whatever its own code is doing, so a busy agent is
// not mistaken for a dead one; a busy controller is guarded against by reading pending input before
// it decides that an answer is late (see below). HTTP/1.1 connections (allowed for old agents and
// the CLI) have no PING; those agents are judged by their reports alone.
import type { EventEmitter } from 'node:events';
import type { ServerHttp2Session } from 'node:http2';
import type { Logger } from '../../lib/logger.js';

export interface SessionKeepaliveOptions {
  /** Time between PINGs on one session. */
  intervalMs: number;
  /** A PING not answered within this closes the session. */
  timeoutMs: number;
  log: Logger;
  /** Called when a session was closed for an unanswered PING (e.g. to evaluate health at once). */
  onDead?: (remoteAddress: string) => void;
}

export const DEFAULT_SESSION_PING_INTERVAL_MS = 5_000;
export const DEFAULT_SESSION_PING_TIMEOUT_MS = 5_000;

/**
 * Watches every HTTP/2 session `server` (an Http2Server or Http2SecureServer) accepts from now on.
 * Returns a function that stops watching new sessions (sessions already watched keep their timer
 * until they close).
 */
export function keepSessionsAlive(server: EventEmitter, o: SessionKeepaliveOptions): () => void {
  const onSession = (session: ServerHttp2Session) => watchSession(session, o);
  server.on('session', onSession);
  return () => {
    server.off('session', onSession);
  };
}

/** Pings one session until it closes; destroys it when a PING goes unanswered. */
export function watchSession(session: ServerHttp2Session, o: SessionKeepaliveOptions): void {
  const remoteAddress = session.socket?.remoteAddress ?? '';
  let isAwaiting = false;
  const ping = () => {
    if (session.closed || session.destroyed || isAwaiting) return;
    let isAnswered = false;
    const startedMs = performance.now();
    const timer = setTimeout(() => {
      // Timers run before the event loop reads sockets: after a stall of the controller itself, an
      // answer may be waiting unread. setImmediate runs after that read, so it sees the answer.
      setImmediate(() => {
        if (isAnswered || session.destroyed) return;
        const waitedMs = Math.round(performance.now() - startedMs);
        o.log.warn(
          { remoteAddress, waitedMs },
          'HTTP/2 PING unanswered: closing the connection (peer dead or unreachable)',
        );
        session.destroy(new Error(`HTTP/2 PING unanswered for ${waitedMs} ms`));
        o.onDead?.(remoteAddress);
      });
    }, o.timeoutMs);
    timer.unref();
    isAwaiting = true;
    const done = () => {
      isAnswered = true;
      isAwaiting = false;
      clearTimeout(timer);
    };
    try {
      // The callback runs on the answer, or with an error when the session goes away first.
      const isSent = session.ping((err) => {
        done();
        if (err && !session.destroyed) o.log.debug({ remoteAddress, err: err.message }, 'HTTP/2 PING failed');
      });
      // Too many unanswered PINGs already (cannot happen with one at a time): let the timer decide.
      if (!isSent) o.log.debug({ remoteAddress }, 'HTTP/2 PING not sent');
    } catch (err) {
      // The session closed between the check and the PING.
      done();
      o.log.debug({ remoteAddress, err: (err as Error).message }, 'HTTP/2 PING not sent');
    }
  };
  const interval = setInterval(ping, o.intervalMs);
  interval.unref();
  session.once('close', () => clearInterval(interval));
}
