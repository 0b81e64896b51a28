// The web view's first render at scale: the real bundle (dist/ui) and app shell (controller/ui/pages.ts)
// in Debian's chromium, drawing a real diagram model (controller/diagram: model + layout of a
// generated policy of N boxes over three zones). The server here serves only what the map page asks
// for (/ui/, the assets, /ui/session, /v1/diagram, an idle /ui/events), so the figure is the
// browser's: page, bundle, the diagram's JSON, and the map on screen, from navigation start.
// Also prints the bundle's size. Needs `make build` first (npm run bench:ui does it).
//
//   npm run bench:ui -- [--boxes 100,1000,3000] [--runs 5]
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { compiledInput, generatedPolicy } from '../controller/diagram/diagram.fixture.js';
import { buildDiagramModel } from '../controller/diagram/model.js';
import { shellPage } from '../controller/ui/pages.js';
import { chromiumPath } from '../test/ui/browser.js';
import { numberArg, textArg } from './args.js';

// The page-side callbacks below run in chromium; this program has no DOM types.
declare const document: { body: { dataset: Record<string, string | undefined> } };

const SIZES = textArg('boxes', '100,1000,3000').split(',').map(Number);
const RUNS = numberArg('runs', 5);
const dist = join(import.meta.dirname, '..', 'dist', 'ui');
const js = readFileSync(join(dist, 'app.js'));
const css = readFileSync(join(dist, 'app.css'));

let diagramJson = '';
function serve(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  const send = (type: string, body: string | Buffer): void => {
    res.writeHead(200, { 'content-type': type }).end(body);
  };
  if (url === '/ui/') return send('text/html; charset=utf-8', shellPage({ isBuilt: true }));
  if (url === '/ui/assets/app.js') return send('text/javascript', js);
  if (url === '/ui/assets/app.css') return send('text/css', css);
  if (url === '/ui/session')
    return send('application/json', JSON.stringify({ name: 'bench', role: 'auditor', permissions: ['agents.read'] }));
  if (url.startsWith('/v1/diagram')) return send('application/json', diagramJson);
  if (url === '/ui/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(': open\n\n');
    return;
  }
  res.writeHead(404).end();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const executablePath = chromiumPath();
if (!executablePath) throw new Error('chromium is not installed (scripts/setup.sh)');
const server = createServer(serve);
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
});
try {
  console.log(`bundle: app.js ${js.length} B (${gzipSync(js).length} B gzipped), app.css ${css.length} B`);
  console.log(`chromium ${browser.version()}, ${RUNS} runs per size, fresh page each (cold cache)`);
  console.log('boxes  links  diagram JSON  first render (median, min-max)');
  for (const n of SIZES) {
    const model = buildDiagramModel(compiledInput(generatedPolicy(n, [1, 7, 31, 97])));
    diagramJson = JSON.stringify(model);
    const times: number[] = [];
    for (let r = 0; r < RUNS + 1; r++) {
      const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
      const page = await context.newPage();
      await page.goto(`${base}/ui/`);
      const h = await page.waitForFunction(() => document.body.dataset.firstRenderMs, undefined, { timeout: 60_000 });
      const ms = Number(await h.jsonValue());
      const drawn = await page.$$eval('g.box', (gs: unknown[]) => gs.length);
      if (drawn !== model.boxes.length) throw new Error(`drew ${drawn} boxes of ${model.boxes.length}`);
      if (r > 0) times.push(ms); // the first run warms chromium itself up
      await context.close();
    }
    console.log(
      `${String(n).padStart(5)}  ${String(model.links.length).padStart(5)}  ${(diagramJson.length / 1024).toFixed(0).padStart(8)} KiB  ${median(times)} ms (${Math.min(...times)}-${Math.max(...times)})`,
    );
  }
} finally {
  await browser.close();
  server.close();
}
