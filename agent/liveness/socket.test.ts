import t from 'tap';
import dgram from 'node:dgram';
import { silentLogger } from '../../lib/logger.js';
import type { Advert } from './advert.js';
import { ECHO_PACKET_BYTES, encodeEcho } from './echo.js';
import { directedBroadcast, LivenessSocket } from './socket.js';

t.test('directedBroadcast', async (t) => {
  const cases: Array<[string, string | null]> = [
    ['10.20.1.2/24', '10.20.1.255'],
    ['10.20.1.2/16', '10.20.255.255'],
    ['192.168.7.9/30', '192.168.7.11'],
    ['192.168.7.8/31', '192.168.7.9'],
    ['192.168.7.8/32', '192.168.7.8'],
    ['10.0.0.1/0', '255.255.255.255'],
    ['10.20.1.2', null],
    ['10.20.1.256/24', null],
    ['10.20.1.2/33', null],
    ['2001:db8::1/64', null],
  ];
  for (const [cidr, want] of cases) t.equal(directedBroadcast(cidr), want, cidr);
});

/** A free UDP port on both families (bound, read, closed). */
async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const until = async (cond: () => boolean, ms = 2000) => {
  for (const end = Date.now() + ms; !cond() && Date.now() < end;) await new Promise((r) => setTimeout(r, 5));
  return cond();
};

t.test('echo and advert on one port, on loopback (v4 and v6)', async (t) => {
  const port = await freePort();
  const s = new LivenessSocket({ port, log: silentLogger() });
  t.teardown(() => s.close());
  t.same(await s.ready(), { v4: true, v6: true });
  const echoes: Array<[string, number]> = [];
  const adverts: Array<[string, Advert]> = [];
  s.onEcho((addr, p) => echoes.push([addr, p.length]));
  s.onAdvert((addr, a) => adverts.push([addr, a]));
  const packet = new Uint8Array(ECHO_PACKET_BYTES);
  encodeEcho(packet, true, 1);
  s.sendEcho('127.0.0.1', packet);
  s.sendEcho('::1', packet);
  const ad: Advert = { group: 'g', agent: 'a', rank: 0, isEligible: true, isHolding: false, seq: 9 };
  s.sendAdvert('127.0.0.1/8', 'lo', ad);
  t.ok(await until(() => echoes.length === 2 && adverts.length === 1), 'all three arrive');
  t.same(echoes.sort(), [
    ['127.0.0.1', 12],
    ['::1', 12],
  ]);
  t.same(adverts, [['127.0.0.1', ad]]);
  // Anything else on the port is counted and dropped.
  const other = dgram.createSocket('udp4');
  other.send(Buffer.from('hello'), port, '127.0.0.1', () => other.close());
  t.ok(await until(() => s.counters.ignored === 1));
});

t.test('a port in use is one log line, not a crash; setPort binds again', async (t) => {
  const port = await freePort();
  const first = new LivenessSocket({ port, log: silentLogger() });
  t.teardown(() => first.close());
  await first.ready();
  const lines: string[] = [];
  const log = silentLogger();
  log.error = (obj: unknown, msg?: string) => void lines.push(msg ?? String(obj));
  const second = new LivenessSocket({ port, log });
  t.teardown(() => second.close());
  t.same(await second.ready(), { v4: false, v6: false });
  t.equal(lines.length, 2, lines.join(' | '));
  t.match(lines[0], /EADDRINUSE/);
  const other = await freePort();
  second.setPort(other);
  t.same(await second.ready(), { v4: true, v6: true });
  t.equal(second.boundPort, other);
});
