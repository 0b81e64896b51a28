// LISTEN on a dedicated PostgreSQL connection (a pooled one would drop the LISTEN when returned).
// The connection is re-made with backoff when it fails (PostgreSQL restarted, network cut); after
// every (re)connect `onListening` runs, because notices sent while nobody listened are lost for good
// and the caller must re-read what it holds.
import pg from 'pg';
import { Backoff } from '../../lib/backoff.js';
import type { Logger } from '../../lib/logger.js';

export interface PgListener {
  /** Resolves once the first LISTEN is in place (or rejects if the first connect fails). */
  readonly ready: Promise<void>;
  /** NOTIFY on the channel through this connection; false when it is down (the notice is lost). */
  send(payload: string): Promise<boolean>;
  stop(): Promise<void>;
}

export function listenPostgres(opts: {
  url: string;
  channel: string;
  log: Logger;
  onNotice: (payload: string | undefined) => void;
  onListening: () => void;
}): PgListener {
  const backoff = new Backoff({ initialMs: 250, maxMs: 5000 });
  let client: pg.Client | null = null;
  let timer: NodeJS.Timeout | null = null;
  let isStopped = false;
  let isFirst = true;
  let isUp = false;

  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: opts.url });
    client = c;
    let isLost = false;
    const lost = (err?: unknown) => {
      if (isLost) return;
      isLost = true;
      isUp = false;
      c.removeAllListeners('notification');
      void c.end().catch(() => undefined);
      if (isStopped) return;
      const ms = backoff.next();
      opts.log.warn({ err, retryInMs: ms }, 'change feed: lost the PostgreSQL connection; reconnecting');
      timer = setTimeout(() => {
        timer = null;
        connect().catch(() => undefined);
      }, ms);
    };
    c.on('error', lost);
    c.on('end', () => lost());
    c.on('notification', (m) => {
      if (m.channel === opts.channel) opts.onNotice(m.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${opts.channel}`);
    } catch (err) {
      lost(err);
      throw err;
    }
    backoff.reset();
    isUp = true;
    if (!isFirst) opts.log.info('change feed: listening again');
    isFirst = false;
    opts.onListening();
  };

  const ready = connect();
  return {
    ready,
    async send(payload) {
      const c = client;
      if (!c || !isUp) return false;
      try {
        await c.query('select pg_notify($1, $2)', [opts.channel, payload]);
        return true;
      } catch {
        return false;
      }
    },
    async stop() {
      isStopped = true;
      if (timer) clearTimeout(timer);
      await client?.end().catch(() => undefined);
    },
  };
}
