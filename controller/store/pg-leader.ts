// Leadership among the controllers sharing one PostgreSQL database: a session advisory lock held on
// a connection of its own. PostgreSQL releases it when that session ends, so when the leader dies
// (kill -9, host lost) the others, trying every `retryMs`, take over within seconds. The leader
// checks its session at the same pace and steps down when the check fails: it cannot know it still
// holds the lock once its connection is gone.
import pg from 'pg';
import type { Logger } from '../../lib/logger.js';

/** The lock's two keys: "crosslink", "leader". Advisory locks are per database. */
export const LEADER_LOCK = [0x63726f73, 1] as const;

export interface Leadership {
  isLeader(): boolean;
  stop(): Promise<void>;
}

export function holdLeadership(opts: {
  url: string;
  log: Logger;
  /** Retry (and self-check) period; default 1500 ms. */
  retryMs?: number;
  onChange: (isLeader: boolean) => void;
}): Leadership {
  const retryMs = opts.retryMs ?? 1500;
  const log = opts.log.child({ component: 'leadership' });
  let client: pg.Client | null = null;
  let isLeader = false;
  let isStopped = false;
  let timer: NodeJS.Timeout | null = null;

  const setLeader = (v: boolean, why: string) => {
    if (v === isLeader) return;
    isLeader = v;
    if (v) log.info('leader: this controller runs the work that runs once (health evaluation)');
    else log.warn({ why }, 'no longer leader');
    try {
      opts.onChange(v);
    } catch (err) {
      log.error({ err }, 'leadership listener failed');
    }
  };
  const drop = (why: string) => {
    const c = client;
    client = null;
    if (c) void c.end().catch(() => undefined);
    setLeader(false, why);
  };

  const tick = async () => {
    timer = null;
    if (isStopped) return;
    try {
      if (!client) {
        // A check that hangs (network cut) must fail, not wait for TCP to give up.
        const c = new pg.Client({ connectionString: opts.url, query_timeout: retryMs * 2, keepAlive: true });
        c.on('error', (err) => {
          if (client === c) drop(`connection failed: ${err.message}`);
        });
        c.on('end', () => {
          if (client === c) drop('connection ended');
        });
        client = c;
        await c.connect();
        if (isStopped) {
          await c.end();
          return;
        }
      }
      const c = client;
      if (isLeader) {
        await c.query('select 1');
      } else {
        const r = await c.query<{ ok: boolean }>('select pg_try_advisory_lock($1, $2) as ok', [...LEADER_LOCK]);
        if (r.rows[0]?.ok) setLeader(true, '');
      }
    } catch (err) {
      drop(`check failed: ${(err as Error).message}`);
    }
    if (!isStopped) timer = setTimeout(() => void tick(), retryMs);
  };
  void tick();

  return {
    isLeader: () => isLeader,
    async stop() {
      isStopped = true;
      if (timer) clearTimeout(timer);
      const c = client;
      client = null;
      // Ending the session releases the lock at once: a clean stop hands over without waiting.
      await c?.end().catch(() => undefined);
      isLeader = false;
    },
  };
}
