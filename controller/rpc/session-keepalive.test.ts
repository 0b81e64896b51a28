import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import t, { type Test } from 'tap';
import { silentLogger } from '../../lib/logger.js';
import { keepSessionsAlive } from './session-keepalive.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

async function server(t: Test, o: { intervalMs: number; timeoutMs: number }) {
  const srv = http2.createServer();
  const dead: string[] = [];
  const stop = keepSessionsAlive(srv, { ...o, log: silentLogger(), onDead: (addr) => dead.push(addr) });
  const sessions = new Set<http2.ServerHttp2Session>();
  srv.on('session', (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(async () => {
    stop();
    for (const s of sessions) s.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  });
  return { port: (srv.address() as AddressInfo).port, dead, sessions };
}

t.test('a client that answers PINGs keeps its connection', async (t) => {
  const s = await server(t, { intervalMs: 50, timeoutMs: 1000 });
  const client = http2.connect(`http://127.0.0.1:${s.port}`);
  t.teardown(() => {
    client.destroy();
  });
  await new Promise<void>((r) => client.once('connect', () => r()));
  await new Promise((r) => setTimeout(r, 800));
  t.notOk(client.closed || client.destroyed, 'still open after many PINGs');
  t.equal(s.sessions.size, 1);
  t.same(s.dead, []);
});

t.test('a peer that stops answering (no FIN, no RST) is cut off within interval + timeout', async (t) => {
  const s = await server(t, { intervalMs: 100, timeoutMs: 200 });
  // Speaks just enough HTTP/2 to open a session, then never answers anything: a box that lost power.
  const socket = net.connect(s.port, '127.0.0.1');
  t.teardown(() => {
    socket.destroy();
  });
  await new Promise<void>((r) => socket.once('connect', () => r()));
  socket.write(Buffer.concat([PREFACE, EMPTY_SETTINGS]));
  socket.resume();
  const startedMs = Date.now();
  await new Promise<void>((r) => socket.once('close', () => r()));
  const tookMs = Date.now() - startedMs;
  t.ok(tookMs >= 200, `not before the timeout (${tookMs} ms)`);
  t.ok(tookMs < 3000, `closed in ${tookMs} ms`);
  t.same(s.dead, ['127.0.0.1']);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(s.sessions.size, 0, 'the session is gone');
});

t.test('a controller that stalled longer than the timeout reads the answer before judging', async (t) => {
  const s = await server(t, { intervalMs: 100, timeoutMs: 200 });
  // The agent is another process: it answers while this one is stalled, so the answer waits in the
  // socket when the timers expire.
  const child = spawn(
    process.execPath,
    [
      '-e',
      `
    const c = require('node:http2').connect('http://127.0.0.1:${s.port}');
    c.on('connect', () => console.log('connected'));
    c.on('close', () => { console.log('closed'); process.exit(0); });
    setTimeout(() => process.exit(0), 20000);
  `,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => {
    child.kill();
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  while (!out.includes('connected')) await new Promise((r) => setTimeout(r, 20));
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 120));
    const until = Date.now() + 1000;
    while (Date.now() < until) {
      /* the controller's event loop is stuck */
    }
  }
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(out.includes('closed'), 'a stall of the controller is not a dead agent');
  t.same(s.dead, []);
  t.equal(s.sessions.size, 1);
});
