import dgram from 'node:dgram';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { PathProber } from './path-prober.js';
import { fakeRunner, probe } from './probes.fixture.js';
import { connectTcp, udpExchange } from './sockets.js';

// ---- real sockets on 127.0.0.1 ------------------------------------------------------------------

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A listener whose accept queue is full and never drained (its thread is blocked), so new SYNs
 *  are dropped and a connect times out — on loopback, without touching any firewall. */
async function blackHoleListener(): Promise<{ port: number; stop(): Promise<void> }> {
  const shared = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const net = require('node:net');
    const server = net.createServer();
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      parentPort.postMessage(server.address().port);
      setTimeout(() => Atomics.wait(workerData, 0, 0, 20000), 50);
    });
  `,
    { eval: true, workerData: shared },
  );
  const port = await new Promise<number>((r) => worker.once('message', r));
  await new Promise((r) => setTimeout(r, 150));
  // Fill the accept queue (backlog 1 holds about 2).
  const fillers = Array.from({ length: 4 }, () =>
    net.connect({ host: '127.0.0.1', port }).on('error', () => undefined),
  );
  await new Promise((r) => setTimeout(r, 200));
  return {
    port,
    stop: async () => {
      fillers.forEach((f) => f.destroy());
      Atomics.store(shared, 0, 1);
      Atomics.notify(shared, 0);
      await worker.terminate();
    },
  };
}

t.test('real tcp connect on 127.0.0.1: connected, refused, timeout', async (t) => {
  const server = net.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  const port = (server.address() as net.AddressInfo).port;

  const ok = await connectTcp({ host: '127.0.0.1', port, localAddress: '127.0.0.1', timeoutMs: 2000 });
  t.equal(ok.kind, 'connected');
  t.ok(ok.kind === 'connected' && ok.rttMs >= 0 && ok.rttMs < 2000);

  const closed = await freePort();
  t.same(await connectTcp({ host: '127.0.0.1', port: closed, localAddress: '127.0.0.1', timeoutMs: 2000 }), {
    kind: 'refused',
    detail: 'connection refused',
  });

  const hole = await blackHoleListener();
  t.teardown(() => hole.stop());
  const started = Date.now();
  t.same(await connectTcp({ host: '127.0.0.1', port: hole.port, timeoutMs: 300 }), {
    kind: 'timeout',
    detail: 'timeout after 300 ms',
  });
  t.ok(Date.now() - started < 2000, 'gave up at the timeout');

  const notMine = await connectTcp({ host: '127.0.0.1', port, localAddress: '192.0.2.1', timeoutMs: 1000 });
  t.equal(notMine.kind, 'error', 'a source address the box does not have is a local error');

  const prober = new PathProber({
    runner: fakeRunner({}).runner,
    clock: { nowMs: () => 0 },
    localAddresses: () => ['127.0.0.1'],
    timeoutMs: 300,
  });
  const results = await prober.runAll([
    probe({ name: 'up/0', target: '127.0.0.1', port, sourcePrefix: '127.0.0.0/8' }),
    probe({ name: 'down/0', target: '127.0.0.1', port: closed, sourcePrefix: '127.0.0.0/8' }),
    probe({ name: 'shut/0', target: '127.0.0.1', port: closed, sourcePrefix: '127.0.0.0/8', expectDeny: true }),
  ]);
  t.same(
    results.map((r) => [r.name, r.isOk]),
    [
      ['up/0', true],
      ['down/0', false],
      ['shut/0', true],
    ],
  );
  t.equal(results[1]?.detail, 'connection refused');
});

t.test('real udp exchange on 127.0.0.1: reply, port unreachable, silence', async (t) => {
  const echo = dgram.createSocket('udp4');
  echo.on('message', (msg, rinfo) => echo.send(msg, rinfo.port, rinfo.address));
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
  t.teardown(() => {
    echo.close();
    silent.close();
  });
  const payload = Buffer.from('x');
  const reply = await udpExchange({
    host: '127.0.0.1',
    port: echo.address().port,
    localAddress: '127.0.0.1',
    timeoutMs: 1000,
    payload,
  });
  t.equal(reply.kind, 'connected');
  const closed = await freePort();
  t.same(await udpExchange({ host: '127.0.0.1', port: closed, localAddress: '127.0.0.1', timeoutMs: 1000, payload }), {
    kind: 'refused',
    detail: 'connection refused',
  });
  t.same(await udpExchange({ host: '127.0.0.1', port: silent.address().port, timeoutMs: 200, payload }), {
    kind: 'timeout',
    detail: 'no reply within 200 ms',
  });
});
