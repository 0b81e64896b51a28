// The web view's server side through app.inject: login (right, wrong, empty, malformed), the
// cookie's exact attributes, the cookie as a credential for the REST API with the header unsafe
// methods need, roles, logout, the shell, the assets directory and its traversal attempts.
import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeHarness, POLICY_YAML, type Harness } from '../../test/controller/harness.fixture.js';
import type { Role } from '../store/store.js';
import { CONTENT_SECURITY_POLICY } from './pages.js';
import { MESSAGES } from './routes.js';
import { SESSION_COOKIE, sessionTokenOf } from './session.js';
import { defaultAssetsDir } from './static.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

async function setup(t: Test, files: Record<string, string> = {}): Promise<Harness & { assets: string }> {
  const assets = mkdtempSync(join(tmpdir(), 'crosslink-ui-assets-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(assets, name), text);
  const h = await makeHarness({ ui: { assetsDir: assets } });
  t.teardown(async () => {
    await h.close();
    rmSync(assets, { recursive: true, force: true });
  });
  return { ...h, assets };
}

function login(h: Harness, token: string) {
  return h.app.inject({
    method: 'POST',
    url: '/ui/login',
    headers: FORM,
    payload: new URLSearchParams({ token }).toString(),
  });
}

/** A request with only the session cookie of `role`. */
function asCookie(
  h: Harness,
  role: Role,
  opts: { method?: string; url: string; headers?: Record<string, string>; payload?: string },
) {
  return h.app.inject({
    method: (opts.method ?? 'GET') as 'GET',
    url: opts.url,
    headers: { cookie: `other=1; ${SESSION_COOKIE}=${h.tokens[role]}`, ...opts.headers },
    ...(opts.payload !== undefined ? { payload: opts.payload } : {}),
  });
}

t.test('login: a right token sets the session cookie, exactly, and goes to the app', async (t) => {
  const h = await setup(t);
  const r = await login(h, `  ${h.tokens.operator}\n`);
  t.equal(r.statusCode, 303);
  t.equal(r.headers.location, '/ui/');
  t.equal(
    r.headers['set-cookie'],
    `crosslink_session=${h.tokens.operator}; Path=/; HttpOnly; Secure; SameSite=Strict`,
    'a session cookie (no Expires), HttpOnly, Secure, SameSite=Strict',
  );
  t.equal(r.headers['content-security-policy'], CONTENT_SECURITY_POLICY);
  t.equal(r.headers['x-content-type-options'], 'nosniff');
  t.equal(r.headers['referrer-policy'], 'no-referrer');
  t.equal(r.headers['x-frame-options'], 'DENY');
});

t.test('login: wrong, revoked, empty, missing or malformed tokens get the login page again, 401', async (t) => {
  const h = await setup(t);
  const cases: Array<[string, Record<string, string>, string, string]> = [
    ['wrong token', FORM, 'token=xlapi_nottherightone', MESSAGES.unknown],
    ['not token text', FORM, 'token=a%3Bb%0D%0Ac', MESSAGES.unknown],
    ['empty', FORM, 'token=', MESSAGES.empty],
    ['blank', FORM, 'token=%20%20', MESSAGES.empty],
    ['missing field', FORM, 'other=1', MESSAGES.empty],
    ['no body', FORM, '', MESSAGES.empty],
    ['JSON number', { 'content-type': 'application/json' }, '{"token":5}', MESSAGES.empty],
    ['JSON array', { 'content-type': 'application/json' }, '["x"]', MESSAGES.empty],
    ['broken JSON', { 'content-type': 'application/json' }, '{"token":', MESSAGES.empty],
    ['text/plain', { 'content-type': 'text/plain' }, 'token=x', MESSAGES.empty],
    ['multipart', { 'content-type': 'multipart/form-data; boundary=x' }, '--x--', MESSAGES.empty],
  ];
  for (const [what, headers, payload, message] of cases) {
    const r = await h.app.inject({ method: 'POST', url: '/ui/login', headers, payload });
    t.equal(r.statusCode, 401, `${what}: 401`);
    t.match(r.headers['content-type'], /^text\/html/, `${what}: a page, not JSON`);
    t.match(r.body, `<p id="login-error" class="error" role="alert">${message}</p>`, `${what}: "${message}"`);
    t.match(r.body, 'name="token"', `${what}: the form again`);
    t.notOk(r.headers['set-cookie'], `${what}: no cookie`);
  }
  const huge = await h.app.inject({
    method: 'POST',
    url: '/ui/login',
    headers: FORM,
    payload: 'token=' + 'x'.repeat(20_000),
  });
  t.equal(huge.statusCode, 413);
  t.match(huge.headers['content-type'], /^text\/html/, 'too large: still a page');
  t.match(huge.body, 'larger than any API token');

  const auditor = (await h.store.listApiTokens()).find((x) => x.role === 'auditor')!;
  await h.store.revokeApiToken(auditor.id, Date.now(), {
    actor: { name: 'test', role: 'system', address: '' },
    action: 'api_token.revoke',
    target: `api_token/${auditor.id}`,
    before: null,
    after: null,
  });
  const revoked = await login(h, h.tokens.auditor);
  t.equal(revoked.statusCode, 401, 'a revoked token');
  t.match(revoked.body, MESSAGES.unknown);
});

t.test('the login page: a labelled field, no autocomplete, no inline script or style', async (t) => {
  const h = await setup(t);
  const r = await h.app.inject({ method: 'GET', url: '/ui/login' });
  t.equal(r.statusCode, 200);
  t.match(r.body, '<label for="token">API token</label>');
  t.match(r.body, /<input id="token" name="token" type="password" autocomplete="off"/);
  t.match(r.body, '<form method="post" action="/ui/login">');
  t.notMatch(r.body, /<script|<style|\sstyle=|\son[a-z]+=/i, 'nothing the CSP would block');
  const css = await h.app.inject({ method: 'GET', url: '/ui/login.css' });
  t.equal(css.statusCode, 200);
  t.match(css.headers['content-type'], /^text\/css/);
  // Already logged in: straight to the app.
  const again = await asCookie(h, 'auditor', { url: '/ui/login' });
  t.equal(again.statusCode, 303);
  t.equal(again.headers.location, '/ui/');
});

t.test('the cookie authenticates the REST API; unsafe methods need x-crosslink-ui: 1; roles hold', async (t) => {
  const h = await setup(t);
  const agents = await asCookie(h, 'operator', { url: '/v1/agents' });
  t.equal(agents.statusCode, 200, 'GET /v1/agents with the cookie');

  const body = { name: 'box-z' };
  const noHeader = await asCookie(h, 'operator', {
    method: 'POST',
    url: '/v1/join-tokens',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(body),
  });
  t.equal(noHeader.statusCode, 403, 'a cookie POST without the header: 403');
  t.equal(noHeader.json<{ code: string }>().code, 'forbidden');
  t.match(noHeader.json<{ message: string }>().message, /x-crosslink-ui: 1/, 'the message says why');
  const withHeader = await asCookie(h, 'operator', {
    method: 'POST',
    url: '/v1/join-tokens',
    headers: { 'content-type': 'application/json', 'x-crosslink-ui': '1' },
    payload: JSON.stringify(body),
  });
  t.equal(withHeader.statusCode, 201, 'with the header the operator makes a join token');

  const auditorApply = await asCookie(h, 'auditor', {
    method: 'PUT',
    url: '/v1/policy',
    headers: { 'content-type': 'application/yaml', 'x-crosslink-ui': '1', 'if-match': '"0"' },
    payload: POLICY_YAML,
  });
  t.equal(auditorApply.statusCode, 403, "an auditor's cookie may not change the policy");
  t.match(auditorApply.json<{ message: string }>().message, /auditor token may not change the policy/);
  const auditorRollback = await asCookie(h, 'auditor', {
    method: 'POST',
    url: '/v1/policy/rollback',
    headers: { 'content-type': 'application/json', 'x-crosslink-ui': '1' },
    payload: JSON.stringify({ version: 1 }),
  });
  t.equal(auditorRollback.statusCode, 403, 'nor roll it back');
  t.equal(h.dist.policies.length, 0, 'nothing applied');

  // The bearer header wins over a cookie, and needs no extra header.
  const bearer = await h.app.inject({
    method: 'POST',
    url: '/v1/join-tokens',
    headers: {
      authorization: `Bearer ${h.tokens.operator}`,
      cookie: `${SESSION_COOKIE}=${h.tokens.auditor}`,
      'content-type': 'application/json',
    },
    payload: JSON.stringify({ name: 'box-y' }),
  });
  t.equal(bearer.statusCode, 201);
  const bad = await h.app.inject({
    method: 'GET',
    url: '/v1/agents',
    headers: { cookie: `${SESSION_COOKIE}=xlapi_nope` },
  });
  t.equal(bad.statusCode, 401, 'an unknown cookie token is 401');
  t.equal(bad.json<{ message: string }>().message, 'unknown or revoked API token');
});

t.test('GET /ui/session says who is logged in', async (t) => {
  const h = await setup(t);
  const r = await asCookie(h, 'auditor', { url: '/ui/session' });
  t.equal(r.statusCode, 200);
  t.same(r.json(), {
    name: 'auditor-1',
    role: 'auditor',
    permissions: ['policy.read', 'agents.read', 'joinTokens.read', 'apiTokens.read', 'audit.read'],
  });
  t.equal(r.headers['cache-control'], 'no-store');
  const none = await h.app.inject({ method: 'GET', url: '/ui/session' });
  t.equal(none.statusCode, 401);
  t.equal(none.json<{ code: string }>().code, 'unauthenticated');
});

t.test('logout clears the cookie; pages without a session go to the login', async (t) => {
  const h = await setup(t);
  const out = await asCookie(h, 'operator', { method: 'POST', url: '/ui/logout' });
  t.equal(out.statusCode, 303);
  t.equal(out.headers.location, '/ui/login');
  t.equal(out.headers['set-cookie'], 'crosslink_session=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0');
  t.equal(sessionTokenOf('crosslink_session=; a=b'), null, 'an emptied cookie is no session');
  const form = await h.app.inject({ method: 'POST', url: '/ui/logout', headers: FORM, payload: '' });
  t.equal(form.statusCode, 303, 'a logout form (an empty urlencoded body) works too');
  for (const url of ['/ui/', '/ui/map', '/ui/policy/diff?a=1&b=2']) {
    const r = await h.app.inject({ method: 'GET', url });
    t.equal(r.statusCode, 303, `${url} without a session`);
    t.equal(r.headers.location, '/ui/login');
  }
  const bare = await h.app.inject({ method: 'GET', url: '/ui' });
  t.equal(bare.headers.location, '/ui/');
});

t.test('the shell: with a session, mounts the app; before a build, says how to build it', async (t) => {
  const h = await setup(t);
  const unbuilt = await asCookie(h, 'operator', { url: '/ui/' });
  t.equal(unbuilt.statusCode, 200);
  t.match(unbuilt.body, '<div id="app"></div>');
  t.match(unbuilt.body, 'the web view was not built: run make build');
  t.notMatch(unbuilt.body, 'app.js', 'no script that is not there');
  writeFileSync(join(h.assets, 'app.js'), 'export {};\n');
  const built = await asCookie(h, 'operator', { url: '/ui/map' });
  t.match(built.body, '<div id="app"></div>');
  t.match(built.body, '<link rel="stylesheet" href="/ui/assets/app.css">');
  t.match(built.body, '<script type="module" src="/ui/assets/app.js"></script>');
  t.notMatch(built.body, 'not built');
  t.equal(built.headers['content-security-policy'], CONTENT_SECURITY_POLICY);
  t.equal(built.headers['x-frame-options'], 'DENY');
});

t.test('assets: the built files with their types; traversal and odd names are 404', async (t) => {
  const h = await setup(t, {
    'app.js': 'console.log(1);\n',
    'app.css': 'body{}\n',
    'app.js.map': '{}',
    'x.svg': '<svg/>',
  });
  const outside = join(h.assets, '..', `secret-${process.pid}.js`);
  writeFileSync(outside, 'secret');
  t.teardown(() => rmSync(outside, { force: true }));
  symlinkSync(outside, join(h.assets, 'link.js'));
  mkdirSync(join(h.assets, 'sub.js'));
  const types: Record<string, RegExp> = {
    'app.js': /^text\/javascript/,
    'app.css': /^text\/css/,
    'app.js.map': /^application\/json/,
    'x.svg': /^image\/svg\+xml/,
  };
  for (const [name, type] of Object.entries(types)) {
    const r = await h.app.inject({ method: 'GET', url: `/ui/assets/${name}` });
    t.equal(r.statusCode, 200, name);
    t.match(r.headers['content-type'], type, `${name}: content type`);
    t.equal(r.headers['x-content-type-options'], 'nosniff');
  }
  for (const url of [
    '/ui/assets/../../package.json',
    '/ui/assets/..%2f..%2fpackage.json',
    '/ui/assets/%2e%2e/%2e%2e/package.json',
    `/ui/assets/..%2fsecret-${process.pid}.js`,
    '/ui/assets/link.js',
    '/ui/assets/sub.js',
    '/ui/assets/missing.js',
    '/ui/assets/app',
    '/ui/assets/.hidden.js',
    '/ui/assets/app.js%00.css',
    '/ui/assets/',
    '/ui/assets/a/app.js',
  ]) {
    const r = await h.app.inject({ method: 'GET', url });
    t.equal(r.statusCode, 404, url);
    t.notMatch(r.body, /secret|"name": "crosslink"/, `${url}: nothing leaks`);
  }
});

t.test('dist/ui is found from the module, built or not', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'crosslink-ui-root-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(root, 'package.json'), '{}');
  mkdirSync(join(root, 'dist', 'controller', 'ui'), { recursive: true });
  t.equal(defaultAssetsDir(join(root, 'dist', 'controller', 'ui', 'static.js')), join(root, 'dist', 'ui'));
  t.equal(defaultAssetsDir(join(root, 'controller', 'ui', 'static.ts')), join(root, 'dist', 'ui'));
});
