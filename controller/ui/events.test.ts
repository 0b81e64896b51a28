// GET /ui/events on a listening app: the stream gets a published event and pings, a client that
// goes away unsubscribes, and app.close() ends open streams instead of waiting on them (over
// HTTP/1.1, and over TLS with HTTP/2 as a browser speaks to the controller).
import t from 'tap';
import { request as httpRequest } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeHarness, type Harness } from '../../test/controller/harness.fixture.js';
import type { AppOptions } from '../app.js';
import { createControllerMetrics } from '../metrics.js';
import { loadOrCreateTlsIdentity } from '../tls.js';
import { sseFrame, UiEventHub } from './events.js';
import { SESSION_COOKIE } from './session.js';

const health: NonNullable<AppOptions['health']> = {
  monitor: { snapshot: () => null, history: () => Promise.resolve([]), servingDetail: () => new Map() },
  metrics: createControllerMetrics({
    monitor: { snapshot: () => null, servingHealth: () => new Map() },
    distribution: { connectedCount: () => 0 },
  }),
};

/** Resolves with the text received so far once `pattern` appears in it. */
function until(read: () => string, pattern: RegExp, source: NodeJS.EventEmitter, ms = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${String(pattern)} within ${ms} ms; got: ${read()}`)), ms);
    const check = () => {
      if (!pattern.test(read())) return;
      clearTimeout(timer);
      source.off('data', check);
      resolve(read());
    };
    source.on('data', check);
    check();
  });
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

/** The harness's close(), for a test that closed the app itself. */
async function closeHarness(h: Harness, isAppClosed: boolean): Promise<void> {
  if (!isAppClosed) return h.close();
  await h.store.close();
  rmSync(h.dir, { recursive: true, force: true });
}

t.test('sseFrame: event name and one line of JSON', async (t) => {
  t.equal(sseFrame({ type: 'health', atMs: 5 }), 'event: health\ndata: {"atMs":5}\n\n');
  t.equal(sseFrame({ type: 'policy', version: 3 }), 'event: policy\ndata: {"version":3}\n\n');
});

t.test('the hub: a throwing subscriber does not stop the others', async (t) => {
  const hub = new UiEventHub();
  const got: number[] = [];
  hub.subscribe(() => {
    throw new Error('boom');
  });
  const off = hub.subscribe((e) => got.push(e.type === 'policy' ? e.version : -1));
  hub.publish({ type: 'policy', version: 2 });
  off();
  hub.publish({ type: 'policy', version: 3 });
  t.same(got, [2]);
  t.equal(hub.subscriberCount, 1);
});

t.test('no events route without health; 401 without a session, 403 without agents.read', async (t) => {
  const hub = new UiEventHub();
  const without = await makeHarness({ ui: { events: { hub } } });
  t.teardown(() => without.close());
  const r = await without.app.inject({
    method: 'GET',
    url: '/ui/events',
    headers: { cookie: `${SESSION_COOKIE}=${without.tokens.operator}` },
  });
  t.notMatch(String(r.headers['content-type']), /event-stream/, 'not a stream: the shell route answers');
  const h = await makeHarness({ health, ui: { events: { hub } } });
  t.teardown(() => h.close());
  t.equal((await h.app.inject({ method: 'GET', url: '/ui/events' })).statusCode, 401);
});

t.test('HTTP/1.1: an event after publish, pings, unsubscribe on disconnect, close with a stream open', async (t) => {
  const hub = new UiEventHub();
  const h: Harness = await makeHarness({ health, ui: { events: { hub, pingIntervalMs: 50 } } });
  let isClosed = false;
  t.teardown(() => closeHarness(h, isClosed));
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = h.app.server.address() as { port: number };

  const open = () =>
    new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      httpRequest({
        host: '127.0.0.1',
        port,
        path: '/ui/events',
        headers: { cookie: `${SESSION_COOKIE}=${h.tokens.auditor}` },
      })
        .on('response', resolve)
        .on('error', reject)
        .end();
    });
  const res = await open();
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/event-stream/);
  t.equal(res.headers['cache-control'], 'no-store');
  t.equal(res.headers['x-content-type-options'], 'nosniff', 'the /ui headers too');
  let text = '';
  res.on('data', (c: Buffer) => (text += c.toString()));
  await until(() => text, /^retry: \d+\n\n/, res);
  t.ok(await waitFor(() => hub.subscriberCount === 1), 'subscribed');
  hub.publish({ type: 'policy', version: 7 });
  await until(() => text, /event: policy\ndata: \{"version":7\}\n\n/, res);
  hub.publish({ type: 'health', atMs: 123 });
  await until(() => text, /event: health\ndata: \{"atMs":123\}\n\n/, res);
  await until(() => text, /: ping\n\n/, res);

  // A tab closed: its subscription goes.
  const second = await open();
  t.ok(await waitFor(() => hub.subscriberCount === 2), 'a second tab, a second subscription');
  second.destroy();
  t.ok(await waitFor(() => hub.subscriberCount === 1), 'its subscription ends with its connection');

  // Shutdown with the first stream still open: close() finishes and the stream ends.
  const ended = once(res, 'end');
  const started = Date.now();
  await h.app.close();
  isClosed = true;
  await ended;
  t.ok(Date.now() - started < 3000, `app.close() took ${Date.now() - started} ms with a stream open`);
  t.equal(hub.subscriberCount, 0, 'nothing left subscribed');
});

t.test('TLS + HTTP/2: the stream works and close() does not wait on it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-ui-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tls = await loadOrCreateTlsIdentity(dir, { sans: ['127.0.0.1'] });
  const hub = new UiEventHub();
  const h = await makeHarness({
    health,
    tls: { keyPem: tls.keyPem, certChainPem: tls.certChainPem },
    ui: { events: { hub } },
  });
  let isClosed = false;
  t.teardown(() => closeHarness(h, isClosed));
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = h.app.server.address() as { port: number };

  const session = http2Connect(`https://127.0.0.1:${port}`, { ca: tls.caCertPem });
  t.teardown(() => session.destroy());
  const stream = session.request({ ':path': '/ui/events', cookie: `${SESSION_COOKIE}=${h.tokens.operator}` });
  const [headers] = (await once(stream, 'response')) as [Record<string, string>];
  t.equal(headers[':status'], 200);
  t.match(headers['content-type'], /^text\/event-stream/);
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  t.ok(await waitFor(() => hub.subscriberCount === 1), 'subscribed');
  hub.publish({ type: 'health', atMs: 9 });
  await until(() => text, /event: health\ndata: \{"atMs":9\}/, stream);

  const ended = once(stream, 'end');
  const started = Date.now();
  await h.app.close();
  isClosed = true;
  await ended;
  t.ok(Date.now() - started < 3000, `app.close() took ${Date.now() - started} ms with an HTTP/2 stream open`);
  t.equal(hub.subscriberCount, 0);
});

t.test('a tab that stops reading is dropped, not buffered for without end', async (t) => {
  const hub = new UiEventHub();
  const h: Harness = await makeHarness({ health, ui: { events: { hub } } });
  t.teardown(() => h.close());
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = h.app.server.address() as { port: number };
  const req = httpRequest({
    host: '127.0.0.1',
    port,
    path: '/ui/events',
    headers: { cookie: `${SESSION_COOKIE}=${h.tokens.auditor}` },
  });
  req.end();
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  res.pause(); // a frozen tab: reads nothing more
  t.teardown(() => res.destroy());
  t.ok(await waitFor(() => hub.subscriberCount === 1));
  // Until the socket's buffers (megabytes on loopback) and the 64 KiB the server keeps for one tab
  // are full: about 100,000 events here.
  let i = 0;
  for (; i < 1_000_000 && hub.subscriberCount > 0; i++) {
    hub.publish({ type: 'health', atMs: i });
    if (i % 1000 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  t.ok(await waitFor(() => hub.subscriberCount === 0), `its subscription ended (after ${i} events)`);
});
