// The web view end to end (issue 18): the demo's Leeds network in namespaces (two WANs, no route
// between them, the shared building relaying), the real controller and seven agents, and Debian's
// chromium driven by playwright-core. Logs in with an operator and an auditor token, sees every box
// with its state, stops an agent and sees its node and links go down without a reload, compares two
// policy versions, and checks that an auditor can change nothing (and that the API refuses it when
// forged). Screenshots of the map and the diff go to .tap/ui-screenshots/ (not committed).
import t from 'tap';
import { Testbed } from '../testbed/testbed.js';
import { Fleet } from '../e2e/fleet.js';
import { LEEDS_AGENTS, leedsPolicyFile, leedsTopology } from '../e2e/leeds-topology.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openBrowser, proxyToSocket } from './browser.js';

// The callbacks given to page.waitForFunction run in the page; the test's own program has no DOM
// types, so the little they use is declared here.
interface PageElement {
  getAttribute(name: string): string | null;
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): Iterable<PageElement>;
};
declare const window: { marker?: number };

const CONTROLLER_ARGS = [
  '--report-interval-seconds',
  '1',
  '--silent-intervals',
  '3',
  '--health-interval-seconds',
  '0.5',
  '--probe-interval-seconds',
  '1',
];

const bed = await Testbed.create(leedsTopology(), { t });
const fleet = await Fleet.start(bed, {
  agents: LEEDS_AGENTS,
  policyFile: leedsPolicyFile(),
  timeoutMs: 120_000,
  controllerArgs: CONTROLLER_ARGS,
  agentArgs: ['--report-interval-seconds', '1'],
});
const tokenFor = async (name: string, role: string) =>
  (await fleet.api<{ token: string }>('POST', '/v1/tokens', { json: { name, role } })).body.token;
const operatorToken = await tokenFor('ui-operator', 'operator');
const auditorToken = await tokenFor('ui-auditor', 'auditor');
// The browser runs in this (root) namespace; the controller listens inside its own. A loopback
// port here, piped to the fleet's socket into the controller's namespace, reaches it.
const proxy = await proxyToSocket(fleet.apiSocket);
t.teardown(() => proxy.close());
const base = `https://127.0.0.1:${proxy.port}`;
const b = await openBrowser(t, { leafCertPem: readFileSync(join(fleet.dataDir, 'server.crt'), 'utf8') });

async function login(token: string) {
  const { context, page } = await b.newPerson();
  await page.goto(`${base}/ui/login`);
  await page.fill('input[name="token"]', token);
  await Promise.all([page.waitForLoadState('load'), page.press('input[name="token"]', 'Enter')]);
  return { context, page };
}

t.test('a wrong token gets a clear message and no session', async (t) => {
  const { context, page } = await login('not-a-token');
  t.teardown(() => context.close());
  await page.waitForSelector('text=unknown or revoked API token');
  t.notOk(
    (await context.cookies()).some((c) => c.name === 'crosslink_session'),
    'no session cookie',
  );
});

t.test('operator: the map shows every box with its state; a stopped agent goes down live', async (t) => {
  const { context, page } = await login(operatorToken);
  t.teardown(() => context.close());
  await page.waitForSelector('g.box');
  const names = await page.$$eval('g.box', (gs: PageElement[]) => gs.map((g) => g.getAttribute('data-box')).sort());
  t.same(names, [...fleet.agentNames].sort(), 'one node per box of the demo');
  // Every box and link ok once the overlay has settled (the agents' first probes).
  await page.waitForFunction(
    () => [...document.querySelectorAll('g.box, path.link')].every((e) => e.getAttribute('data-state') === 'ok'),
    undefined,
    { timeout: 30_000 },
  );
  const relayed = await page.$$eval('path.link.relayed', (ps: PageElement[]) =>
    ps.map((p) => p.getAttribute('data-link')).sort(),
  );
  t.same(
    relayed,
    ['lcc-adult-social-care:lth-sjuh', 'lcc-adult-social-care:lth-sjuh-standby'],
    'the pairs across the gap are drawn through the relay',
  );
  await b.screenshot(page, 'map');

  // A click on a box shows its state, subnets and links; so does the keyboard (Tab to it, Enter).
  await page.click('g.box[data-box="lth-sjuh"]');
  await page.waitForSelector('aside[aria-label="Box lth-sjuh"] >> text=care-records');
  await page.focus('g.box[data-box="lcc-civic-hall"]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('aside[aria-label="Box lcc-civic-hall"] >> text=lcc-civic-hall-lan');
  // A link's details: its path through the relay and the rule that permits it.
  await page.click('aside >> button:has-text("nhs-shared-hub")');
  await page.waitForSelector(
    'aside[aria-label="Link lcc-civic-hall:nhs-shared-hub"] >> text=hub-nhs-to-council-casework',
  );

  // Stop an agent; the page must follow on its own (no reload: the marker stays).
  await page.evaluate(() => (window.marker = 42));
  const stoppedAtMs = Date.now();
  await fleet.stopAgent('gp-armley', { signal: 'SIGKILL' });
  await page.waitForFunction(
    () => {
      const box = document.querySelector('g.box[data-box="gp-armley"]');
      const links = [...document.querySelectorAll('path.link')].filter((l) =>
        (l.getAttribute('data-link') ?? '').split(':').includes('gp-armley'),
      );
      return (
        box?.getAttribute('data-state') === 'down' &&
        links.length > 0 &&
        links.every((l) => l.getAttribute('data-state') === 'down')
      );
    },
    undefined,
    { timeout: 30_000 },
  );
  const tookMs = Date.now() - stoppedAtMs;
  t.equal(await page.evaluate(() => window.marker), 42, 'no reload');
  t.ok(tookMs < 30_000, `node and links down on the page ${tookMs} ms after the agent was killed`);
  await b.screenshot(page, 'map-agent-down');
  await fleet.startAgent('gp-armley');
});

t.test('policy: the diff of two versions shows the changed rule', async (t) => {
  const changed = readFileSync(leedsPolicyFile(), 'utf8').replace(
    /(name: hl7-results-to-gps[\s\S]*?ports: )\[?tcp\/2575\]?/,
    '$1[tcp/2575, tcp/2576]',
  );
  await fleet.applyPolicy(changed, 'ui test: one more HL7 port');
  const { context, page } = await login(operatorToken);
  t.teardown(() => context.close());
  await page.goto(`${base}/ui/#/policy`);
  await page.waitForSelector('table.rules >> text=hl7-results-to-gps');
  await page.selectOption('select >> nth=0', '1');
  await page.selectOption('select >> nth=1', '2');
  await page.click('button:has-text("Compare")');
  const change = await page.waitForSelector('ul.changes li:has-text("rule hl7-results-to-gps")');
  t.match(await change.textContent(), /tcp\/2576/, 'the change names the new port');
  t.ok(await page.$('table.side-by-side tr.changed'), 'the documents side by side mark the changed line');
  await b.screenshot(page, 'policy-diff');
});

t.test('auditor: sees everything, can change nothing, and the API refuses a forged change', async (t) => {
  const { context, page } = await login(auditorToken);
  t.teardown(() => context.close());
  await page.waitForSelector('g.box');
  t.equal(
    await page.$$eval('g.box', (gs: PageElement[]) => gs.length),
    fleet.agentNames.length,
    'the auditor sees the map',
  );
  await page.goto(`${base}/ui/#/audit`);
  await page.waitForSelector('text=Chain verified');
  await page.goto(`${base}/ui/#/policy`);
  await page.waitForSelector('text=may read the policy but not dry-run or apply');
  t.equal(await page.$('button:has-text("Apply")'), null, 'no apply button');
  const before = (await fleet.api<{ version: number }>('GET', '/v1/policy')).body.version;
  const forged = await page.evaluate(async () => {
    const res = await fetch('/v1/policy', {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'if-match': '"1"', 'x-crosslink-ui': '1' },
      body: JSON.stringify({ document: 'version: 1\n' }),
    });
    return { status: res.status, body: (await res.json()) as { code: string; message: string } };
  });
  t.equal(forged.status, 403);
  t.equal(forged.body.code, 'forbidden');
  t.match(forged.body.message, /auditor token may not change the policy/);
  t.equal((await fleet.api<{ version: number }>('GET', '/v1/policy')).body.version, before, 'nothing changed');
});
