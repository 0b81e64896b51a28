// Bounded fuzz of every endpoint of a real controller process (SQLite, TLS, the agent RPCs beside
// the REST API): malformed bodies, wrong types, huge fields, wrong content types, bad headers and
// methods, with and without a valid token. Every answer must be a client error or a success that
// changes nothing: no 5xx, no stack trace in the body, and the stored state (policy versions,
// audit log, agents, join tokens, API tokens) exactly as before. Seeded: a failure prints the
// seed and the request, and FUZZ_SEED=<n> replays it. FUZZ_REQUESTS sets the count (default 2500).
import t from 'tap';
import { request } from 'node:https';
import { connect as connectHttp2, type IncomingHttpHeaders } from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  EnrollRequestSchema,
  ReportRequestSchema,
  WatchConfigRequestSchema,
} from '../../proto/gen/crosslink/v1/agent_pb.js';
import { startChildController, waitExit } from './child.js';
import { POLICY_YAML } from './harness.fixture.js';

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const COUNT = Number(process.env.FUZZ_REQUESTS ?? 2500);

/** mulberry32: small, seedable, good enough to pick cases. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const int = (n: number): number => Math.floor(random() * n);
const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}
interface Req {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  kind: string;
}

function send(base: URL, r: Req): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const q = request(
      {
        host: base.hostname,
        port: base.port,
        method: r.method,
        path: r.path,
        headers: { ...r.headers, ...(r.body ? { 'content-length': String(r.body.length) } : {}) },
        rejectUnauthorized: false,
        timeout: 10_000,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('latin1'),
          }),
        );
        res.on('error', reject);
      },
    );
    q.on('timeout', () => q.destroy(new Error('no answer within 10 s')));
    q.on('error', reject);
    q.end(r.body);
  });
}

// Bodies that are wrong by construction: none of them is a valid request for any endpoint.
const WRONG_JSON: Array<[string, () => string]> = [
  ['truncated JSON', () => '{"document": "version: 1'],
  ['JSON array', () => '[1,2,3]'],
  ['JSON string', () => '"policy"'],
  ['JSON null', () => 'null'],
  ['JSON number', () => '1e999'],
  [
    'wrong types',
    () =>
      JSON.stringify({ name: 5, version: 'one', ttlSeconds: 'soon', document: 7, role: ['admin'], comment: { a: 1 } }),
  ],
  ['unknown fields only', () => JSON.stringify({ force: true, colour: 'blue', isAdmin: true })],
  ['__proto__ pollution', () => '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"x": 1}}}'],
  ['deep nesting', () => `${'['.repeat(5000)}${']'.repeat(5000)}`],
  ['huge string field', () => JSON.stringify({ name: 'x'.repeat(300_000), document: 5 })],
  ['negative and fractional numbers', () => JSON.stringify({ version: -1.5, ttlSeconds: -3, limit: 0.5 })],
  ['invalid UTF-8', () => Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]).toString('latin1')],
  ['empty', () => ''],
];

function protoBody(path: string): Array<[string, Buffer]> {
  const valid = Buffer.from(
    path.endsWith('/Enroll')
      ? toBinary(
          EnrollRequestSchema,
          create(EnrollRequestSchema, { name: 'fuzz-box', joinToken: 'xljoin1.nope', publicKey: 'k'.repeat(44) }),
        )
      : path.endsWith('/Report')
        ? toBinary(ReportRequestSchema, create(ReportRequestSchema, { generationApplied: 3n }))
        : toBinary(WatchConfigRequestSchema, create(WatchConfigRequestSchema, {})),
  );
  const huge = Buffer.concat([Buffer.from([0x0a, 0xff, 0xff, 0x7f]), Buffer.alloc(100)]); // field 1, length 2 MB, 100 bytes given
  return [
    ['truncated protobuf', valid.subarray(0, Math.max(0, valid.length - 1 - int(Math.max(1, valid.length))))],
    ['protobuf with a length past the end', huge],
    ['random bytes', bytes(1 + int(400))],
    ['bad varint', Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
    ['bad wire type', Buffer.from([0x0f, 0x01])],
    // A Connect streaming envelope that says 1 MB follows and gives 3 bytes.
    ['truncated envelope', Buffer.from([0x00, 0x00, 0x10, 0x00, 0x00, 0x01, 0x02, 0x03])],
  ];
}

const CONTENT_TYPES = [
  'application/json',
  'application/yaml',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/proto',
  'application/connect+proto',
  'application/connect+json',
  'application/grpc',
  'application/grpc+proto',
  'a/b;;;=',
  'text/html',
  '',
];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
const PARAMS = [
  'no-such-box',
  'x'.repeat(2000),
  '..%2F..%2Fetc%2Fpasswd',
  '%00',
  '%E2%9C%93',
  '-1',
  '99999999999999999999',
  '%ZZ',
  'NaN',
];
const QUERIES = [
  '',
  '?limit=0',
  '?limit=-1',
  '?limit=abc',
  '?limit=1e999',
  '?limit=100000000',
  '?agent=%00&limit=2',
  '?x=' + 'y'.repeat(5000),
  '?since=yesterday',
];

function makeRequest(paths: Array<{ path: string; methods: string[] }>, adminToken: string): Req {
  const ep = pick(paths);
  const path =
    ep.path.replace(/\{[^}]+\}/g, () => pick(PARAMS)) + (ep.path.startsWith('/crosslink.') ? '' : pick(QUERIES));
  const method = random() < 0.7 ? pick(ep.methods) : pick(METHODS);
  const headers: Record<string, string> = {};
  const auth = random();
  if (auth < 0.55) headers.authorization = `Bearer ${adminToken}`;
  else if (auth < 0.7) headers.authorization = 'Bearer xlapi1.nope.nope';
  else if (auth < 0.8)
    headers.authorization = pick(['Basic YWRtaW46YWRtaW4=', 'Bearer', 'Bearer ' + 'z'.repeat(10_000), 'Negotiate x']);
  const ct = pick(CONTENT_TYPES);
  if (ct !== '') headers['content-type'] = ct;
  if (random() < 0.3)
    headers['if-match'] = pick(['"1"', '*', 'W/"1"', '"-5"', '"abc"', '1,2', '"99999999999999999999"']);
  if (random() < 0.2) headers['connect-protocol-version'] = pick(['1', '2', 'x']);
  if (random() < 0.1) headers['connect-timeout-ms'] = pick(['-1', 'abc', '99999999999999999999']);
  if (random() < 0.1) headers.accept = pick(['application/xml', '*/*;q=abc', '']);
  if (method === 'GET' || method === 'HEAD' || method === 'DELETE' || method === 'OPTIONS') {
    if (random() < 0.2) return { method, path, headers, body: bytes(int(200)), kind: 'bytes on a bodiless method' };
    return { method, path, headers, kind: 'no body' };
  }
  if (ep.path.startsWith('/crosslink.') && random() < 0.7) {
    const [kind, body] = pick(protoBody(ep.path));
    return { method, path, headers, body, kind };
  }
  const [kind, make] = pick(WRONG_JSON);
  return { method, path, headers, body: Buffer.from(make(), 'latin1'), kind };
}

const STACK = /\n\s+at\s|node_modules|\.ts:\d+|\.js:\d+:\d+|TypeError|ReferenceError|RangeError: (?!.*limit)/;

t.test(`no 5xx, no stack trace, nothing stored: ${COUNT} malformed requests (seed ${SEED})`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-fuzz-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await startChildController(join(dir, 'data'));
  t.teardown(async () => {
    c.proc.kill('SIGTERM');
    await waitExit(c.proc);
  });
  const base = new URL(c.url);
  const admin = { authorization: `Bearer ${c.adminToken}` };
  const json = async (
    method: string,
    path: string,
    body?: unknown,
    extra: Record<string, string> = {},
  ): Promise<Answer> =>
    send(base, {
      method,
      path,
      headers: { ...admin, ...extra, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: Buffer.from(JSON.stringify(body)) } : {}),
      kind: 'setup',
    });

  t.equal(
    (await json('PUT', '/v1/policy', { document: POLICY_YAML }, { 'if-match': '"0"' })).status,
    200,
    'a policy to keep',
  );
  t.equal((await json('POST', '/v1/join-tokens', { name: 'box-a' })).status, 201, 'a join token to keep');
  const state = async (): Promise<string> => {
    const parts = await Promise.all(
      ['/v1/policy', '/v1/policy/versions', '/v1/agents', '/v1/join-tokens', '/v1/tokens', '/v1/audit?limit=1000'].map(
        (p) => json('GET', p),
      ),
    );
    for (const p of parts)
      if (p.status !== 200) throw new Error(`state read answered ${p.status}: ${p.body.slice(0, 200)}`);
    return parts.map((p) => p.body).join('\n');
  };
  const before = await state();

  const doc = JSON.parse((await json('GET', '/openapi.json')).body) as {
    paths: Record<string, Record<string, unknown>>;
  };
  const paths = Object.entries(doc.paths).map(([path, ops]) => ({
    path,
    methods: Object.keys(ops)
      .map((m) => m.toUpperCase())
      .filter((m) => METHODS.includes(m)),
  }));
  for (const rpc of ['Enroll', 'Report', 'WatchConfig', 'NoSuchMethod'])
    paths.push({ path: `/crosslink.v1.AgentService/${rpc}`, methods: ['POST'] });
  t.ok(paths.length >= 15, `${paths.length} endpoints to try`);

  const failures: string[] = [];
  const statuses = new Map<number, number>();
  for (let i = 0; i < COUNT; i++) {
    const r = makeRequest(paths, c.adminToken);
    let a: Answer;
    try {
      a = await send(base, r);
    } catch (e) {
      failures.push(
        `#${i} ${r.method} ${r.path.slice(0, 120)} [${r.kind}, ${r.headers['content-type'] ?? 'no content-type'}]: ${(e as Error).message}`,
      );
      continue;
    }
    statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
    const isServerError = a.status >= 500;
    const hasStack = STACK.test(a.body);
    // A Connect error can also come with 200 (a stream's end message) or in gRPC trailers.
    const isInternal = /"code"\s*:\s*"internal"/.test(a.body) || a.headers['grpc-status'] === '13';
    if (isServerError || hasStack || isInternal) {
      failures.push(
        `#${i} ${r.method} ${r.path.slice(0, 120)} [${r.kind}, ${r.headers['content-type'] ?? 'no content-type'}] -> ${a.status} ${a.body.slice(0, 300)}`,
      );
    }
  }
  t.comment(
    `statuses: ${[...statuses]
      .sort((x, y) => x[0] - y[0])
      .map(([s, n]) => `${s} x${n}`)
      .join(', ')}`,
  );
  t.same(
    failures.slice(0, 20),
    [],
    `no 5xx, internal error or stack trace (${failures.length} found; replay with FUZZ_SEED=${SEED})`,
  );
  t.equal(await state(), before, 'stored state unchanged');
  t.equal((await json('GET', '/healthz')).status, 200, 'the controller still answers');
});

t.test("a request body that does not decode is the client's error, in every protocol", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-fuzz-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await startChildController(join(dir, 'data'));
  t.teardown(async () => {
    c.proc.kill('SIGTERM');
    await waitExit(c.proc);
  });
  const base = new URL(c.url);
  const bad = Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]); // a varint that never ends
  const envelope = (flags: number, data: Buffer): Buffer => {
    const h = Buffer.alloc(5);
    h[0] = flags;
    h.writeUInt32BE(data.length, 1);
    return Buffer.concat([h, data]);
  };

  for (const rpc of ['Enroll', 'Report']) {
    const a = await send(base, {
      method: 'POST',
      path: `/crosslink.v1.AgentService/${rpc}`,
      headers: { 'content-type': 'application/proto', 'connect-protocol-version': '1' },
      body: bad,
      kind: 'bad varint',
    });
    t.equal(a.status, 400, `Connect unary ${rpc}: 400`);
    t.match(JSON.parse(a.body), {
      code: 'invalid_argument',
      message: new RegExp(`^the request body does not decode as crosslink\\.v1\\.${rpc}Request: invalid varint`),
    });
  }
  // Connect server streaming: the error is in the end-of-stream message.
  const s = await send(base, {
    method: 'POST',
    path: '/crosslink.v1.AgentService/WatchConfig',
    headers: { 'content-type': 'application/connect+proto', 'connect-protocol-version': '1' },
    body: envelope(0, bad),
    kind: 'bad varint',
  });
  t.equal(s.status, 200, 'Connect stream: 200 with an end-of-stream error');
  const raw = Buffer.from(s.body, 'latin1');
  t.equal(raw[0]! & 0x02, 2, 'one end-of-stream envelope');
  t.match(JSON.parse(raw.subarray(5).toString('utf8')), {
    error: { code: 'invalid_argument', message: /does not decode as crosslink\.v1\.WatchConfigRequest/ },
  });

  // gRPC (HTTP/2): the status is in the trailers.
  const session = connectHttp2(c.url, { rejectUnauthorized: false });
  t.teardown(() => session.close());
  for (const rpc of ['Report', 'WatchConfig']) {
    const trailers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const r = session.request({
        ':method': 'POST',
        ':path': `/crosslink.v1.AgentService/${rpc}`,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      let got: Record<string, unknown> = {};
      r.on('response', (h) => {
        if (h['grpc-status'] !== undefined) got = { ...h };
      });
      r.on('trailers', (h: IncomingHttpHeaders) => {
        got = { ...h };
      });
      r.on('data', () => undefined);
      r.on('end', () => resolve(got));
      r.on('error', reject);
      r.end(envelope(0, bad));
    });
    t.equal(trailers['grpc-status'], '3', `gRPC ${rpc}: INVALID_ARGUMENT (3), not INTERNAL (13)`);
    t.match(decodeURIComponent(String(trailers['grpc-message'])), /does not decode as crosslink\.v1\./);
  }
});
