// The storage contract against a real PostgreSQL server. Uses CROSSLINK_TEST_POSTGRES_URL when set
// (CI may share one server), else starts a throwaway one with scripts/postgres-test.sh and stops it
// afterwards. Never skips: a server that cannot start fails the test with the script's message.
import t from 'tap';
import pg from 'pg';
import { storeContract } from './store.contract.js';
import { CHANGE_CHANNEL } from './changes.js';
import { openPostgresStore } from './postgres.js';
import { systemClock } from '../../lib/clock.js';
import { startPostgres } from '../../test/controller/postgres.fixture.js';

let baseUrl = '';
try {
  baseUrl = startPostgres(t);
} catch (e) {
  t.fail(`storage tests: ${(e as Error).message}`);
}

if (baseUrl) {
  let n = 0;
  const withDatabase = (url: string, db: string) => {
    const u = new URL(url);
    u.pathname = `/${db}`;
    return u.toString();
  };
  storeContract(t, async () => {
    const name = `xl_contract_${process.pid}_${++n}`;
    const admin = new pg.Client({ connectionString: baseUrl });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const store = openPostgresStore({ url: withDatabase(baseUrl, name), clock: systemClock });
    return {
      store,
      cleanup: async () => {
        const c = new pg.Client({ connectionString: baseUrl });
        await c.connect();
        await c.query(`drop database if exists ${name}`);
        await c.end();
      },
    };
  });
}

if (baseUrl) {
  t.test('change notices: sent on commit of a change the replicas compile from, never for a refused one', async (t) => {
    const name = `xl_notify_${process.pid}`;
    const admin = new pg.Client({ connectionString: baseUrl });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const u = new URL(baseUrl);
    u.pathname = `/${name}`;
    const store = openPostgresStore({ url: u.toString(), clock: systemClock, changeOrigin: 'replica-1' });
    const listener = new pg.Client({ connectionString: u.toString() });
    t.teardown(async () => {
      await listener.end().catch(() => undefined);
      await store.close();
      const c = new pg.Client({ connectionString: baseUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    });
    await store.migrate();
    await listener.connect();
    const notices: unknown[] = [];
    listener.on('notification', (m) => notices.push(JSON.parse(m.payload ?? 'null')));
    await listener.query(`LISTEN ${CHANGE_CHANNEL}`);
    const audit = {
      actor: { name: 't', role: 'admin' as const, address: '' },
      action: 'x',
      target: 'x',
      before: null,
      after: null,
    };
    const settle = async () => {
      // A round trip on the listening connection delivers every notice committed before it.
      await listener.query('select 1');
      await new Promise((r) => setTimeout(r, 50));
    };

    await store.appendPolicy({ document: 'a', expectedVersion: 0, createdBy: 't', comment: '', atMs: 1 }, audit);
    t.equal(
      await store.appendPolicy({ document: 'b', expectedVersion: 0, createdBy: 't', comment: '', atMs: 2 }, audit),
      'conflict',
    );
    await store.revokeAgent('nobody', 3, audit); // nothing revoked: no notice
    await settle();
    t.same(notices, [{ kind: 'policy', origin: 'replica-1' }], 'one notice: the appended version, not the refused one');

    notices.length = 0;
    await store.updateAgent('nobody', { lastReportAtMs: 5 }); // a report: nothing to recompile
    await store.updateAgent('nobody', { endpoint: '192.0.2.1:51820' });
    await settle();
    t.same(notices, [{ kind: 'agents', names: ['nobody'], origin: 'replica-1' }], 'an inventory change, not a report');
  });
}
