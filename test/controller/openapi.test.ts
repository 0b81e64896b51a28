// The served OpenAPI document is valid OpenAPI 3 by an independent validator
// (@seriousme/openapi-schema-validator, the official JSON schemas), describes the REST API only (no
// agent RPC internals), names every operation, and leaves /healthz open.
import t from 'tap';
import { Validator } from '@seriousme/openapi-schema-validator';
import { startChildController, waitExit } from './child.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';

function get(url: string, path: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    request(
      {
        host: u.hostname,
        port: u.port,
        path,
        headers: { authorization: `Bearer ${token}` },
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    )
      .on('error', reject)
      .end();
  });
}

t.test('GET /openapi.json of a real controller', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-openapi-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await startChildController(join(dir, 'data'));
  t.teardown(async () => {
    c.proc.kill('SIGTERM');
    await waitExit(c.proc);
  });
  const r = await get(c.url, '/openapi.json', c.adminToken);
  t.equal(r.status, 200);
  const doc = JSON.parse(r.body) as {
    paths: Record<string, Record<string, { operationId?: string; security?: unknown[] }>>;
  };
  const result = await new Validator().validate(doc);
  t.same(result.errors ?? [], [], 'valid OpenAPI by an independent validator');
  t.equal(result.valid, true);
  t.same(
    Object.keys(doc.paths).filter((p) => p.startsWith('/crosslink.')),
    [],
    'no agent RPC routes',
  );
  const ops = Object.entries(doc.paths).flatMap(([p, methods]) =>
    Object.entries(methods).map(([m, op]) => ({ at: `${m.toUpperCase()} ${p}`, op })),
  );
  t.same(
    ops.filter((o) => !o.op.operationId).map((o) => o.at),
    [],
    'every operation has an operationId',
  );
  const ids = ops.map((o) => o.op.operationId);
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  t.same(doc.paths['/healthz']?.get?.security, [], '/healthz needs no token');
  // What monitoring reads is described field by field, not left as "any object".
  type Op = {
    responses?: Record<string, { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> }>;
  };
  const fields = (path: string) =>
    Object.keys(
      (doc.paths[path]?.get as Op | undefined)?.responses?.['200']?.content?.['application/json']?.schema?.properties ??
        {},
    );
  t.match(
    fields('/v1/health'),
    ['state', 'sinceMs', 'reason', 'atMs', 'counts', 'agents', 'links', 'probes', 'serving', 'unserved', 'unconfirmed'],
    'GET /v1/health has a response schema',
  );
  t.match(
    fields('/v1/health/agents/{name}'),
    ['atMs', 'agent', 'links', 'probes', 'serving'],
    'GET /v1/health/agents/{name} too',
  );
  t.match(fields('/v1/health/history'), ['events'], 'and GET /v1/health/history');
});
