// The storage contract against a real PostgreSQL server. Uses CROSSLINK_TEST_POSTGRES_URL when set
// (CI may share one server), else starts a throwaway one with scripts/postgres-test.sh and stops it
// afterwards. Never skips: a server that cannot start fails the test with the script's message.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { storeContract } from './store.contract.js';
import { openPostgresStore } from './postgres.js';
import { systemClock } from '../../lib/clock.js';

const script = fileURLToPath(new URL('../../scripts/postgres-test.sh', import.meta.url));

let baseUrl = process.env.CROSSLINK_TEST_POSTGRES_URL ?? '';
if (!baseUrl) {
  try {
    baseUrl = execFileSync('bash', [script, 'start'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 240_000,
    }).trim();
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    t.fail(
      `could not start PostgreSQL for the storage tests (set CROSSLINK_TEST_POSTGRES_URL to use an existing server): ${err.stderr ?? err.message}`,
    );
  }
  if (baseUrl)
    t.teardown(() => {
      execFileSync('bash', [script, 'stop', baseUrl], { stdio: 'ignore' });
    });
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
