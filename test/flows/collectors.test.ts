// The exporters against the receivers the networks run: nfacctd (Debian's pmacct) decodes our IPFIX,
// rsyslog (with rsyslog-gnutls) receives our syslog over UDP, TCP and TLS. Each daemon is started
// here on loopback ports, in a temp dir, as a child in its own process group, and stopped by PID.
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateTlsIdentity } from '../../controller/tls.js';
import { IpfixExporter, SyslogExporter, parseCollector, parseSyslogUrl } from '../../lib/export/exporters.js';
import type { FlowRecord } from '../../lib/export/record.js';
import { sampleFlow } from '../../lib/export/record.fixture.js';
import { daemon, freePort, hasNfacctd, sleep, startNfacctd, until } from './receivers.fixture.js';

const base: FlowRecord = sampleFlow({
  startMs: Date.UTC(2026, 11, 5, 20, 59, 0),
  endMs: Date.UTC(2026, 11, 5, 21, 0, 0, 500),
});

const hasRsyslog = existsSync('/usr/sbin/rsyslogd');

t.test(
  'nfacctd decodes the IPFIX: true addresses, ports, counts both ways, rule name',
  { skip: hasNfacctd ? false : 'nfacctd not installed (Debian package pmacct; scripts/setup.sh)' },
  async (t) => {
    // The exporter starts first, so its first templates reach nobody (a collector restart looks the
    // same): the data below decodes only because the templates come again on the timer.
    const port = await freePort('udp');
    const exporter = new IpfixExporter({
      collectors: [parseCollector(`127.0.0.1:${port}`)],
      observationDomainId: 11,
      templateRefreshMs: 400,
    });
    t.teardown(() => exporter.close());
    exporter.start();
    await sleep(100);

    const nf = await startNfacctd(t, port);
    t.ok(nf, 'nfacctd is listening');
    if (!nf) return;
    await sleep(600); // at least one template refresh after nfacctd is up

    const records: FlowRecord[] = [
      base,
      {
        ...base,
        srcAddress: '2001:db8:a::10',
        dstAddress: '2001:db8:b::20',
        protocol: 17,
        srcPort: 5353,
        dstPort: 53,
        bytes: 123456789012,
        packets: 98765,
        replyBytes: 42,
        replyPackets: 1,
        direction: 'inbound',
        rule: 'règle-' + 'x'.repeat(300),
      },
      {
        ...base,
        srcPort: 40000,
        verdict: 'dropped',
        rule: null,
        bytes: 60,
        packets: 1,
        replyBytes: 0,
        replyPackets: 0,
      },
    ];
    exporter.export(records);

    const rows = await until(async () => {
      const parsed = await nf.rows();
      return parsed.length >= records.length ? parsed : undefined;
    }, 10_000);
    t.ok(rows, 'nfacctd printed the flows');
    if (!rows) return t.comment(nf.output());
    t.comment(`nfacctd: ${JSON.stringify(rows[0])}`);
    const find = (src: string, sport: number) => rows.find((r) => r.ip_src === src && r.port_src === sport);
    const cases = [
      { rec: records[0]!, proto: 'tcp', event: '2', dir: '1' },
      { rec: records[1]!, proto: 'udp', event: '2', dir: '0' },
      { rec: records[2]!, proto: 'tcp', event: '3', dir: '1' },
    ];
    for (const c of cases) {
      const row = find(c.rec.srcAddress, c.rec.srcPort);
      t.ok(row, `${c.rec.srcAddress}:${c.rec.srcPort} decoded`);
      if (!row) continue;
      t.equal(row.ip_dst, c.rec.dstAddress, 'true destination');
      t.equal(row.port_dst, c.rec.dstPort);
      t.equal(row.ip_proto, c.proto);
      t.equal(row.bytes, c.rec.bytes, 'octets');
      t.equal(row.packets, c.rec.packets, 'packets');
      t.equal(row.rev_bytes, String(c.rec.replyBytes), 'reply octets (RFC 5103)');
      t.equal(row.rev_pkts, String(c.rec.replyPackets), 'reply packets (RFC 5103)');
      t.equal(row.rule, c.rec.rule ?? '', 'rule name');
      t.equal(row.firewall_event, c.event, 'firewallEvent');
      t.equal(row.flow_dir, c.dir, 'flowDirection');
      t.equal(row.timestamp_start, '2026-12-05 20:59:00.000000');
      t.equal(row.timestamp_end, '2026-12-05 21:00:00.500000');
    }
    const s = exporter.stats().collectors[`127.0.0.1:${port}`]!;
    t.equal(s.droppedMessages + s.errors, 0);
  },
);

t.test(
  'rsyslog receives the flow messages over UDP, TCP and TLS',
  { skip: hasRsyslog ? false : 'rsyslogd not installed (Debian packages rsyslog, rsyslog-gnutls; scripts/setup.sh)' },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'crosslink-rsyslog-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await loadOrCreateTlsIdentity(join(dir, 'tls'), { sans: ['localhost', '127.0.0.1'] });
    const ca = join(dir, 'tls', 'ca.crt');
    const ports = { udp: await freePort('udp'), tcp: await freePort('tcp'), tls: await freePort('tcp') };
    const file = (n: string) => join(dir, `${n}.log`);
    // The template prints the fields rsyslog parsed, so the test sees its reading, not our bytes.
    await writeFile(
      join(dir, 'rsyslog.conf'),
      `global(workDirectory="${dir}"
  defaultNetstreamDriverCAFile="${ca}"
  defaultNetstreamDriverCertFile="${join(dir, 'tls', 'server.crt')}"
  defaultNetstreamDriverKeyFile="${join(dir, 'tls', 'server.key')}")
module(load="imudp")
module(load="imtcp")
template(name="fields" type="string"
  string="%pri%|%hostname%|%app-name%|%msgid%|%structured-data%|%msg%\\n")
input(type="imudp" address="127.0.0.1" port="${ports.udp}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="${ports.tcp}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="${ports.tls}" ruleset="tls"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
ruleset(name="udp") { action(type="omfile" file="${file('udp')}" template="fields") }
ruleset(name="tcp") { action(type="omfile" file="${file('tcp')}" template="fields") }
ruleset(name="tls") { action(type="omfile" file="${file('tls')}" template="fields") }
`,
    );
    const rs = daemon(t, [
      '/usr/sbin/rsyslogd',
      '-n',
      '-f',
      join(dir, 'rsyslog.conf'),
      '-i',
      join(dir, 'rsyslogd.pid'),
    ]);
    const listening = await until(
      () =>
        new Promise<true | undefined>((r) => {
          const c = connect(ports.tls, '127.0.0.1');
          c.once('connect', () => (c.destroy(), r(true)));
          c.once('error', () => r(undefined));
        }),
      10_000,
    );
    t.ok(listening, 'rsyslogd is listening');
    if (!listening) return t.comment(rs.output());
    await sleep(200);

    const rec = { ...base, rule: 'gp "to" \\council] ü' };
    const want = (transport: string, text: string) => {
      t.equal(
        text,
        `134|leeds-gw|crosslink|flow|[flow@32473 rule="gp \\"to\\" \\\\council\\] ü ${transport}" verdict="allowed" ` +
          'direction="outbound" proto="6" src="10.1.2.3" sport="51514" dst="10.9.8.7" dport="443" bytes="1200" ' +
          'packets="10" replyBytes="5400" replyPackets="8" start="2026-12-05T20:59:00.000Z" ' +
          'end="2026-12-05T21:00:00.500Z" srcZone="n3" dstZone="psn"]|allowed tcp 10.1.2.3:51514 -> 10.9.8.7:443 ' +
          `rule gp "to" \\council] ü ${transport} (outbound) 1200 B/10 pkts, reply 5400 B/8 pkts\n`,
        `${transport}: rsyslog parsed header, structured data and text`,
      );
    };
    for (const transport of ['udp', 'tcp', 'tls'] as const) {
      const exporter = new SyslogExporter({
        target: parseSyslogUrl(`${transport}://${transport === 'tls' ? 'localhost' : '127.0.0.1'}:${ports[transport]}`),
        caFile: ca,
      });
      t.teardown(() => exporter.close());
      exporter.start();
      // Two records, so TCP and TLS framing must split them exactly.
      exporter.export([
        { ...rec, rule: `${rec.rule} ${transport}` },
        { ...rec, rule: `${rec.rule} ${transport}`, srcPort: 2 },
      ]);
      t.ok(await exporter.flushed(5000), `${transport}: written`);
      const text = await until(async () => {
        const s = existsSync(file(transport)) ? await readFile(file(transport), 'utf8') : '';
        return s.split('\n').length > 2 ? s : undefined;
      }, 5000);
      t.ok(text, `${transport}: rsyslog wrote both`);
      if (!text) {
        t.comment(rs.output());
        continue;
      }
      const [first, second] = text.split('\n');
      want(transport, first + '\n');
      t.match(second, /sport="2"/);
      t.comment(`rsyslog (${transport}): ${first}`);
      t.same(exporter.stats(), { sentMessages: 2, droppedMessages: 0, errors: 0, queuedMessages: 0 });
    }

    // TLS verifies the receiver: without our CA the handshake fails; counted, never thrown.
    const untrusted = new SyslogExporter({
      target: parseSyslogUrl(`tls://localhost:${ports.tls}`),
      backoff: { initialMs: 100, maxMs: 200 },
    });
    t.teardown(() => untrusted.close());
    untrusted.start();
    untrusted.export([base]);
    const failed = await until(() => (untrusted.stats().errors >= 1 ? true : undefined), 5000);
    t.ok(failed, 'a receiver whose certificate we cannot verify is an error');
    t.equal(untrusted.connected, false);
    t.equal(untrusted.stats().sentMessages, 0);
    t.equal(untrusted.stats().queuedMessages, 1, 'the message waits for a trusted connection');
  },
);
