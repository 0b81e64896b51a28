// A real PostgreSQL server for the tests that need one (the store contract, the replicas):
// CROSSLINK_TEST_POSTGRES_URL when set, else a throwaway cluster from scripts/postgres-test.sh
// (stopped at teardown). Never skips: a server that cannot start fails the test.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const script = fileURLToPath(new URL('../../scripts/postgres-test.sh', import.meta.url));

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** The server's URL (database crosslink_test), or throws with the script's message. */
export function startPostgres(t: Teardown): string {
  const given = process.env.CROSSLINK_TEST_POSTGRES_URL;
  if (given) return given;
  let url: string;
  try {
    url = execFileSync('bash', [script, 'start'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 240_000,
    }).trim();
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`could not start PostgreSQL (set CROSSLINK_TEST_POSTGRES_URL): ${err.stderr ?? err.message}`, {
      cause: e,
    });
  }
  t.teardown(() => {
    execFileSync('bash', [script, 'stop', url], { stdio: 'ignore' });
  });
  return url;
}

/** A new empty database on that server, dropped at teardown; returns its URL. */
export async function freshDatabase(t: Teardown, baseUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: baseUrl });
    await c.connect();
    await c.query(`drop database if exists ${name} with (force)`);
    await c.end();
  });
  const u = new URL(baseUrl);
  u.pathname = `/${name}`;
  return u.toString();
}
