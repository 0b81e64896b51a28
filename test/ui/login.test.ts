// The web view's login in a real browser (Debian's chromium, headless) against a real controller
// process over TLS: a wrong token gets the clear message; an operator logs in and gets the app with
// an HttpOnly cookie the page cannot read; live events arrive over the controller's HTTP/2; an
// auditor logs in, sees its role, and a write it forges is refused; the controller shuts down
// promptly with a browser's event stream open. Writes .tap/ui-screenshots/login*.png.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../../cli/commands/api.js';
import { startChildController, waitExit } from '../controller/child.js';
import { POLICY_YAML } from '../controller/harness.fixture.js';
import { openBrowser, skipWithoutChromium } from './browser.js';

const APP_BUILT = existsSync(new URL('../../dist/ui/app.js', import.meta.url));

/** fetch() from inside the page: the browser's own cookie, the headers we choose. */
function pageFetch(
  page: import('playwright-core').Page,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string }> {
  return page.evaluate(
    async ([p, i]) => {
      const r = await fetch(p, i);
      return { status: r.status, body: await r.text() };
    },
    [path, init] as const,
  );
}

/**
 * Polls `expression` in the page until it is truthy. (page.waitForFunction with a string evals it
 * in the page, which the web view's CSP rightly forbids.)
 */
async function until<T>(page: import('playwright-core').Page, expression: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await page.evaluate<T>(expression);
    if (v) return v;
    if (Date.now() > end) throw new Error(`not true within ${ms} ms: ${expression}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('log in to the web view in chromium', { skip: skipWithoutChromium() }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-ui-login-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'data');
  const c = await startChildController(dataDir);
  t.teardown(async () => {
    if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGTERM');
    await waitExit(c.proc);
  });
  const admin = await ApiClient.connect({ controller: c.url, token: c.adminToken, caFingerprint: c.caFingerprint });
  t.teardown(() => admin.close());
  const token = async (name: string, role: string) =>
    (await admin.request<{ token: string }>('POST', '/v1/tokens', { json: { name, role } })).body.token;
  const operatorToken = await token('ops-leeds', 'operator');
  const auditorToken = await token('audit-leeds', 'auditor');

  const b = await openBrowser(t, { leafCertPem: readFileSync(join(dataDir, 'server.crt'), 'utf8') });
  t.comment(`chromium ${b.browser.version()}, certificate trusted by ${b.trust}`);
  const { page } = b;
  // Whatever the page does must pass its own Content-Security-Policy.
  const violations: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
  });
  page.on('pageerror', (e) => violations.push(`uncaught: ${e.message}`));

  // Without a session: the login page, its field focused.
  await page.goto(`${c.url}/ui/`);
  t.match(page.url(), /\/ui\/login$/, 'the app sends you to the login page');
  t.equal(await page.evaluate('document.activeElement?.id'), 'token', 'the token field has focus');
  t.equal(await page.getAttribute('#token', 'autocomplete'), 'off');
  t.equal(await page.getByLabel('API token').count(), 1, 'the field is labelled');
  await b.screenshot(page, 'login');

  // A wrong token: the same page, 401, saying why.
  await page.fill('#token', 'xlapi_not-a-real-token');
  const [wrong] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  t.equal(wrong?.status(), 401);
  t.equal((await page.textContent('#login-error'))?.trim(), 'unknown or revoked API token', 'a clear message');
  t.equal(await page.getAttribute('#token', 'aria-describedby'), 'login-error', 'the message belongs to the field');
  await b.screenshot(page, 'login-wrong-token');

  // The operator: the app shell, with a cookie the page's script cannot read.
  await page.fill('#token', operatorToken);
  await Promise.all([page.waitForURL(/\/ui\/$/), page.click('button[type=submit]')]);
  t.equal(await page.locator('#app').count(), 1, 'the shell has the app element');
  if (APP_BUILT) {
    await page.locator('#app > *').first().waitFor({ timeout: 10_000 });
    t.pass('the app rendered into it');
    await b.screenshot(page, 'login-operator-app');
  } else t.match(await page.textContent('body'), 'the web view was not built: run make build');
  t.notMatch(await page.evaluate<string>('document.cookie'), /crosslink_session/, 'document.cookie does not show it');
  const [cookie] = await b.context.cookies();
  t.match(cookie, { name: 'crosslink_session', httpOnly: true, secure: true, sameSite: 'Strict', expires: -1 });
  const session = await pageFetch(page, '/ui/session');
  t.match(JSON.parse(session.body), { name: 'ops-leeds', role: 'operator' });
  t.equal((await pageFetch(page, '/v1/agents')).status, 200, 'the cookie reads the API');
  const forgedJoin = await pageFetch(page, '/v1/join-tokens', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'box-x' }),
  });
  t.equal(forgedJoin.status, 403, 'a write without x-crosslink-ui is refused even for an operator');

  // Live: an EventSource from the page hears a policy applied by someone else.
  // (Browser-side code as text: this program's TypeScript has no DOM types.)
  await page.evaluate(`window.policyEvents = [];
    window.events = new EventSource('/ui/events');
    window.events.addEventListener('policy', (e) => window.policyEvents.push(e.data));`);
  await until(page, 'window.events.readyState === EventSource.OPEN');
  await admin.request('PUT', '/v1/policy', { text: POLICY_YAML, headers: { 'if-match': '"0"' } });
  const policyEvent = await until<string>(page, 'window.policyEvents[0]');
  t.same(JSON.parse(policyEvent), { version: 1 }, 'event: policy {"version":1}');

  // The auditor, at another browser: sees its role; a forged write is refused by the API.
  const auditor = await b.newPerson();
  await auditor.page.goto(`${c.url}/ui/login`);
  await auditor.page.fill('#token', auditorToken);
  await Promise.all([auditor.page.waitForURL(/\/ui\/$/), auditor.page.click('button[type=submit]')]);
  const who = JSON.parse((await pageFetch(auditor.page, '/ui/session')).body) as {
    role: string;
    permissions: string[];
  };
  t.equal(who.role, 'auditor', 'GET /ui/session says auditor');
  t.notOk(who.permissions.includes('policy.write'), 'and no policy.write');
  const forged = await pageFetch(auditor.page, '/v1/policy', {
    method: 'PUT',
    headers: { 'content-type': 'application/yaml', 'x-crosslink-ui': '1', 'if-match': '"1"' },
    body: POLICY_YAML.replace('tcp/443', 'tcp/22'),
  });
  t.equal(forged.status, 403, "the auditor's forged policy apply is 403");
  t.match(JSON.parse(forged.body), { code: 'forbidden' });
  const rollback = await pageFetch(auditor.page, '/v1/policy/rollback', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-crosslink-ui': '1' },
    body: JSON.stringify({ version: 1 }),
  });
  t.equal(rollback.status, 403, 'and so is a forged rollback');
  t.equal(
    (await admin.request<{ version: number }>('GET', '/v1/policy')).headers.etag,
    '"1"',
    'the policy is unchanged',
  );

  // Logout (the page's button: a form POST) ends the auditor's session only.
  await Promise.all([
    auditor.page.waitForURL(/\/ui\/login$/),
    auditor.page.getByRole('button', { name: 'Log out' }).click(),
  ]);
  t.equal(await auditor.context.cookies().then((cs) => cs.length), 0, 'logout clears the cookie');
  await auditor.page.goto(`${c.url}/ui/`);
  t.match(auditor.page.url(), /\/ui\/login$/, 'and the app asks for a token again');
  t.equal((await pageFetch(page, '/ui/session')).status, 200, "the operator's session goes on");

  t.same(violations, [], 'no CSP violation or uncaught error on the page');

  // Shutdown with the operator's event stream open: prompt and clean.
  const started = Date.now();
  c.proc.kill('SIGTERM');
  await waitExit(c.proc);
  t.equal(c.proc.exitCode, 0, 'SIGTERM with a browser event stream open: exit 0');
  t.ok(Date.now() - started < 10_000, `shut down in ${Date.now() - started} ms`);
});
