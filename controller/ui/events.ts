// Live updates for the web view: a small publish/subscribe hub (built in controller/main.ts, fed by
// the health monitor and the distributor) and the Server-Sent Events route that fans it out, one
// stream per browser tab. An event only says "something changed"; the browser refetches what it
// shows, so a lost event costs a moment's staleness, never a wrong picture.
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../../lib/logger.js';

export type UiEvent =
  /** The health monitor's evaluation changed some state (controller/health/monitor.ts onChange). */
  | { type: 'health'; atMs: number }
  /** A new policy version became current (applied here or by another replica). */
  | { type: 'policy'; version: number };

export type UiEventListener = (e: UiEvent) => void;

export class UiEventHub {
  readonly #listeners = new Set<UiEventListener>();
  readonly #log: Logger | undefined;

  constructor(opts: { log?: Logger } = {}) {
    this.#log = opts.log;
  }

  /** Returns the unsubscribe function. */
  subscribe(fn: UiEventListener): () => void {
    this.#listeners.add(fn);
    return () => {
      this.#listeners.delete(fn);
    };
  }

  /** Tells every subscriber; one that throws is logged and does not stop the others. */
  publish(e: UiEvent): void {
    for (const fn of [...this.#listeners]) {
      try {
        fn(e);
      } catch (err) {
        this.#log?.warn({ err, event: e.type }, 'web view event listener failed');
      }
    }
  }

  get subscriberCount(): number {
    return this.#listeners.size;
  }
}

/** The text of one event on the stream: `event: health` and a one-line JSON `data:`. */
export function sseFrame(e: UiEvent): string {
  const { type, ...data } = e;
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

export const DEFAULT_PING_INTERVAL_MS = 15_000;
const MAX_BUFFERED_BYTES = 64 * 1024;
/** How long the browser waits before reconnecting a dropped stream (the SSE `retry:` field). */
const RETRY_MS = 3000;

export interface EventsRouteOptions {
  hub: UiEventHub;
  /** onRequest hook that authenticates and checks agents.read. */
  authorize: (req: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /** A `: ping` comment this often, so proxies and the browser see a live connection. Default 15 s. */
  pingIntervalMs?: number;
}

/**
 * GET /ui/events. Each stream ends when the browser goes away (the request's close) or when the
 * app closes (preClose), so `app.close()` never waits on an open tab.
 */
export function eventsRoute(opts: EventsRouteOptions) {
  const pingMs = opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
  return async (app: FastifyInstance) => {
    const open = new Set<PassThrough>();
    // eslint-disable-next-line @typescript-eslint/require-await -- a hook without done() must return a promise
    app.addHook('preClose', async () => {
      for (const s of open) s.end();
    });
    app.get('/ui/events', { onRequest: opts.authorize, schema: { hide: true } }, (_req, reply) => {
      const stream = new PassThrough();
      open.add(stream);
      // A tab that stops reading (a frozen laptop) is dropped rather than buffered for without end;
      // its EventSource reconnects and the page refetches.
      const send = (text: string) => {
        if (stream.writableLength > MAX_BUFFERED_BYTES) end();
        else stream.write(text);
      };
      const unsubscribe = opts.hub.subscribe((e) => send(sseFrame(e)));
      const ping = setInterval(() => send(': ping\n\n'), pingMs);
      ping.unref();
      const end = () => {
        clearInterval(ping);
        unsubscribe();
        open.delete(stream);
        if (!stream.writableEnded) stream.end();
      };
      // The browser closing the tab or the connection dropping (the response's close; the request's
      // fires as soon as its empty body is read), or our own end on close.
      reply.raw.once('close', end);
      stream.once('close', end);
      // A first line at once, so the answer's headers reach the browser now, not at the first event.
      stream.write(`retry: ${RETRY_MS}\n\n`);
      return reply
        .headers({
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          // nginx and its kind: pass each event through at once.
          'x-accel-buffering': 'no',
        })
        .send(stream);
    });
  };
}
