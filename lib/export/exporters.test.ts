// The exporters against in-process receivers: option parsing, several collectors, bounded queues,
// lookup failures, TCP framing and reconnection. The real collectors (nfacctd, rsyslog) and TLS are
// in test/flows/collectors.test.ts.
import t from 'tap';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { CrosslinkError } from '../errors.js';
import { IpfixExporter, SyslogExporter, parseCollector, parseSyslogUrl } from './exporters.js';
import type { FlowRecord } from './record.js';
import { sampleFlow } from './record.fixture.js';

const rec: FlowRecord = sampleFlow();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(check: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await sleep(20);
  }
  return check();
}

function thrown(f: () => unknown): CrosslinkError | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof CrosslinkError ? e : undefined;
  }
  return undefined;
}

t.test('parseCollector: HOST:PORT with IPv4, [IPv6] and host names', async (t) => {
  const good: [string, { host: string; port: number }][] = [
    ['192.0.2.10:4739', { host: '192.0.2.10', port: 4739 }],
    ['192.0.2.10', { host: '192.0.2.10', port: 4739 }],
    ['[2001:db8::1]:9995', { host: '2001:db8::1', port: 9995 }],
    ['[::1]', { host: '::1', port: 4739 }],
    ['collector.nhs.example:2055', { host: 'collector.nhs.example', port: 2055 }],
    [' localhost:1 ', { host: 'localhost', port: 1 }],
  ];
  for (const [text, want] of good) t.same(parseCollector(text), want, text);
  const bad: [string, RegExp][] = [
    ['', /host is missing/],
    [':4739', /host is missing/],
    ['2001:db8::1', /brackets/],
    ['[2001:db8::1', /no "\]"/],
    ['[2001:db8::1]4739', /":PORT"/],
    ['[10.0.0.1]:4739', /not an IPv6/],
    ['10.0.0.256:4739', /neither an IPv4 address nor a host name/],
    ['bad_name:4739', /neither/],
    ['host:0', /1-65535/],
    ['host:65536', /1-65535/],
    ['host:http', /1-65535/],
    ['host:', /1-65535/],
  ];
  for (const [text, message] of bad) {
    const e = thrown(() => parseCollector(text, '--ipfix-collector'));
    t.ok(e instanceof CrosslinkError, `${JSON.stringify(text)}: a CrosslinkError`);
    t.equal(e?.code, 'config_invalid');
    t.match(e?.message, /^--ipfix-collector: /, 'names the option');
    t.match(e?.message, message);
    t.equal(e?.details[0]?.path, '--ipfix-collector');
  }
});

t.test('parseSyslogUrl: udp, tcp and tls with default ports', async (t) => {
  const good: [string, object][] = [
    ['udp://siem.example', { transport: 'udp', host: 'siem.example', port: 514 }],
    ['tcp://10.0.0.5', { transport: 'tcp', host: '10.0.0.5', port: 601 }],
    ['tls://[2001:db8::5]', { transport: 'tls', host: '2001:db8::5', port: 6514 }],
    ['TLS://siem.example:10514/', { transport: 'tls', host: 'siem.example', port: 10514 }],
  ];
  for (const [text, want] of good) t.same(parseSyslogUrl(text), want, text);
  for (const text of [
    'siem.example:514',
    'http://siem.example',
    'udp://',
    'tcp://h:99999',
    'tls://h/path',
    'udp://a b',
  ]) {
    const e = thrown(() => parseSyslogUrl(text, '--syslog'));
    t.equal(e?.code, 'config_invalid', text);
    t.match(e?.message, /^--syslog: /, `${text}: names the option`);
  }
});

async function udpReceiver(
  type: 'udp4' | 'udp6',
  address: string,
): Promise<{ sock: UdpSocket; got: Buffer[]; port: number }> {
  const sock = createSocket(type);
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  sock.bind(0, address);
  await once(sock, 'listening');
  return { sock, got, port: sock.address().port };
}

t.test('IPFIX to several collectors: IPv4, IPv6 and a host name get the same messages', async (t) => {
  const v4 = await udpReceiver('udp4', '127.0.0.1');
  const byName = await udpReceiver('udp4', '127.0.0.1');
  const v6 = await udpReceiver('udp6', '::1').catch(() => null);
  t.teardown(() => [v4, byName, v6].forEach((r) => r?.sock.close()));
  const collectors = [
    parseCollector(`127.0.0.1:${v4.port}`),
    parseCollector(`collector.test:${byName.port}`),
    ...(v6 ? [parseCollector(`[::1]:${v6.port}`)] : []),
  ];
  const looked: string[] = [];
  const exporter = new IpfixExporter({
    collectors,
    observationDomainId: 42,
    lookup: async (host) => {
      looked.push(host);
      return { address: '127.0.0.1', family: 4 };
    },
  });
  t.teardown(() => exporter.close());
  exporter.start();
  exporter.export([rec, { ...rec, srcPort: 1 }]);
  const receivers = [v4, byName, ...(v6 ? [v6] : [])];
  t.ok(await until(() => receivers.every((r) => r.got.length >= 2)), 'every collector got two messages');
  for (const r of receivers) {
    t.equal(r.got[0]!.readUInt16BE(16), 2, 'the first message is the templates');
    t.equal(r.got[1]!.readUInt32BE(12), 42, 'observation domain');
    t.same(r.got[1], v4.got[1], 'the same bytes to each');
  }
  t.same(looked, ['collector.test'], 'only the host name is looked up, once (cached)');
  const stats = exporter.stats();
  t.equal(stats.recordsEncoded, 2);
  t.equal(stats.collectors[`127.0.0.1:${v4.port}`]!.sentMessages, 2);
  if (!v6) t.comment('no IPv6 loopback here: IPv6 collector not exercised');
});

t.test('IPFIX: a collector whose name does not resolve drops and counts; a full queue drops', async (t) => {
  let release: (v: { address: string; family: number }) => void = () => undefined;
  const pending = new Promise<{ address: string; family: number }>((r) => (release = r));
  const sink = await udpReceiver('udp4', '127.0.0.1');
  t.teardown(() => sink.sock.close());
  let calls = 0;
  const exporter = new IpfixExporter({
    collectors: [
      { host: 'slow.test', port: sink.port },
      { host: 'missing.test', port: 9 },
    ],
    observationDomainId: 1,
    maxQueuedMessages: 2,
    lookup: (host) => {
      calls++;
      return host === 'slow.test' ? pending : Promise.reject(new Error('ENOTFOUND'));
    },
  });
  t.teardown(() => exporter.close());
  t.doesNotThrow(() => {
    exporter.export([]); // templates
    for (let i = 0; i < 4; i++) exporter.export([{ ...rec, srcPort: i }]);
  });
  await sleep(50);
  let s = exporter.stats().collectors;
  // slow.test: two messages wait for the lookup; three found the queue full.
  t.equal(s[`slow.test:${sink.port}`]!.droppedMessages, 3, 'queue bound');
  t.equal(s[`slow.test:${sink.port}`]!.queuedMessages, 2);
  t.ok(s['missing.test:9']!.errors >= 1, 'lookup failure counted');
  t.equal(s['missing.test:9']!.sentMessages, 0);
  release({ address: '127.0.0.1', family: 4 });
  t.ok(await until(() => sink.got.length === 2), 'what was queued arrives once the name resolves');
  s = exporter.stats().collectors;
  t.equal(s[`slow.test:${sink.port}`]!.sentMessages, 2);
  t.equal(s['missing.test:9']!.droppedMessages + s['missing.test:9']!.sentMessages, 5, 'every message accounted for');
  t.ok(calls >= 2);
});

function frameReader(onMessage: (m: string) => void): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const sp = buf.indexOf(0x20);
      if (sp < 0) return;
      const len = Number(buf.subarray(0, sp).toString('ascii'));
      if (buf.length < sp + 1 + len) return;
      onMessage(buf.subarray(sp + 1, sp + 1 + len).toString('utf8'));
      buf = buf.subarray(sp + 1 + len);
    }
  };
}

t.test('syslog over TCP: octet-counted frames, queued until connected, reconnects after a drop', async (t) => {
  const got: string[] = [];
  const conns: Socket[] = [];
  let server: Server = createServer((c) => {
    conns.push(c);
    c.on(
      'data',
      frameReader((m) => got.push(m)),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const exporter = new SyslogExporter({
    target: parseSyslogUrl(`tcp://127.0.0.1:${port}`),
    backoff: { initialMs: 50, maxMs: 200, jitter: 0 },
  });
  t.teardown(() => {
    exporter.close();
    server.close();
  });
  exporter.start();
  exporter.export([rec, { ...rec, rule: 'two\nlines' }]);
  t.ok(await until(() => got.length === 2), 'two messages');
  t.match(got[0], /^<134>1 \S+ leeds-gw crosslink - flow \[flow@32473 rule="gp-to-council" /);
  t.match(got[1], /rule="two\nlines"/, 'a newline stays inside its frame');

  // The receiver goes away: messages queue, the exporter retries, and delivers when it is back.
  for (const c of conns) c.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  t.ok(await until(() => !exporter.connected), 'sees the connection drop');
  exporter.export([{ ...rec, rule: 'while-down' }]);
  await sleep(300);
  t.ok(exporter.stats().errors >= 1, 'failed reconnects are counted');
  server = createServer((c) => {
    conns.push(c);
    c.on(
      'data',
      frameReader((m) => got.push(m)),
    );
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  t.ok(await until(() => got.length === 3, 5000), 'queued message delivered after reconnect');
  t.match(got[2], /rule="while-down"/);
  t.equal(exporter.stats().droppedMessages, 0);
});

t.test('syslog over TCP: a receiver that never answers only fills a bounded queue', async (t) => {
  const exporter = new SyslogExporter({
    target: { transport: 'tcp', host: '127.0.0.1', port: 9 }, // discard: nothing listens here
    maxQueuedMessages: 5,
    backoff: { initialMs: 20, maxMs: 50 },
  });
  t.teardown(() => exporter.close());
  exporter.start();
  t.doesNotThrow(() => exporter.export(Array.from({ length: 12 }, (_, i) => ({ ...rec, srcPort: i }))));
  await sleep(150);
  const s = exporter.stats();
  t.equal(s.queuedMessages, 5);
  t.equal(s.droppedMessages, 7);
  t.ok(s.errors >= 1);
  exporter.close();
  t.equal(exporter.stats().droppedMessages, 12, 'close drops (and counts) what never went');
});

t.test('syslog over UDP: one message a datagram', async (t) => {
  const r = await udpReceiver('udp4', '127.0.0.1');
  t.teardown(() => r.sock.close());
  const exporter = new SyslogExporter({ target: parseSyslogUrl(`udp://127.0.0.1:${r.port}`), hostname: 'gw-a' });
  t.teardown(() => exporter.close());
  exporter.start();
  exporter.export([rec, { ...rec, verdict: 'dropped', rule: null }]);
  t.ok(await until(() => r.got.length === 2));
  t.match(r.got[0]!.toString(), /^<134>1 \S+ gw-a crosslink - flow \[/);
  t.match(r.got[1]!.toString(), /^<133>1 .* verdict="dropped"/);
  t.equal(await exporter.flushed(1000), true);
});
