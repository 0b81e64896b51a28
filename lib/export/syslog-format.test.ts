import t from 'tap';
import {
  escapeSdParamValue,
  formatFlowSyslog,
  formatSyslog,
  headerField,
  isSdName,
  isoTime,
  octetCountingFrame,
} from './syslog-format.js';
import type { FlowRecord } from './record.js';
import { sampleFlow } from './record.fixture.js';

const base: FlowRecord = sampleFlow({
  startMs: Date.UTC(2026, 11, 5, 20, 59, 0),
  endMs: Date.UTC(2026, 11, 5, 20, 59, 30, 250),
});
const nowMs = Date.UTC(2026, 11, 5, 21, 0, 0);

t.test('SD-PARAM values escape ", \\ and ] and nothing else (RFC 5424 §6.3.3)', async (t) => {
  const cases = [
    ['plain', 'plain'],
    ['a"b', 'a\\"b'],
    ['a\\b', 'a\\\\b'],
    ['a]b', 'a\\]b'],
    ['[x]', '[x\\]'],
    ['\\"]', '\\\\\\"\\]'],
    ['é = ok', 'é = ok'],
    ['', ''],
  ];
  for (const [input, want] of cases) t.equal(escapeSdParamValue(input!), want, JSON.stringify(input));
});

t.test('a flow record as one RFC 5424 message', async (t) => {
  t.equal(
    formatFlowSyslog(base, { nowMs }),
    '<134>1 2026-12-05T21:00:00.000Z leeds-gw crosslink - flow [flow@32473 rule="gp-to-council" ' +
      'verdict="allowed" direction="outbound" proto="6" src="10.1.2.3" sport="51514" dst="10.9.8.7" ' +
      'dport="443" bytes="1200" packets="10" replyBytes="5400" replyPackets="8" ' +
      'start="2026-12-05T20:59:00.000Z" end="2026-12-05T20:59:30.250Z" srcZone="n3" dstZone="psn"] ' +
      'allowed tcp 10.1.2.3:51514 -> 10.9.8.7:443 rule gp-to-council (outbound) 1200 B/10 pkts, reply 5400 B/8 pkts',
  );
});

t.test('map-to: the real address beside the mapped one', async (t) => {
  const m = formatFlowSyslog({ ...base, srcAddress: '10.201.1.10', srcRealAddress: '10.1.1.10' }, { nowMs });
  t.match(m, /src="10\.201\.1\.10" .*srcReal="10\.1\.1\.10"\]/);
  t.match(m, / 10\.201\.1\.10:51514 \(real 10\.1\.1\.10\) -> 10\.9\.8\.7:443 /);
  t.notMatch(formatFlowSyslog(base, { nowMs }), /real/);
});

t.test('variants: drops, open flows, IPv6, odd rule names, options', async (t) => {
  const cases: { name: string; rec: FlowRecord; opts?: object; has: string[]; lacks?: string[] }[] = [
    {
      name: 'dropped: notice, empty rule',
      rec: { ...base, verdict: 'dropped', rule: null },
      has: ['<133>1 ', 'rule=""', 'verdict="dropped"', 'no rule admits it'],
    },
    { name: 'open flow: no end', rec: { ...base, endMs: null }, has: ['start="'], lacks: ['end="'] },
    {
      name: 'IPv6 in brackets in the text',
      rec: { ...base, srcAddress: '2001:db8::1', dstAddress: '2001:db8::2', protocol: 17 },
      has: ['src="2001:db8::1"', 'udp [2001:db8::1]:51514 -> [2001:db8::2]:443'],
    },
    {
      name: 'icmp: no ports in the text',
      rec: { ...base, protocol: 1, srcPort: 0, dstPort: 0 },
      has: ['icmp 10.1.2.3 -> 10.9.8.7 '],
    },
    {
      name: 'rule name with ] " \\ and a newline',
      rec: { ...base, rule: 'a]b"c\\d\ne' },
      has: ['rule="a\\]b\\"c\\\\d\ne"', 'rule a]b"c\\d e ('],
    },
    {
      name: 'options: facility, hostname, app',
      rec: base,
      opts: { facility: 4, hostname: 'gw 1', appName: 'xl' },
      has: ['<38>1 2026-12-05T21:00:00.000Z gw_1 xl - flow ['],
    },
  ];
  for (const c of cases) {
    const line = formatFlowSyslog(c.rec, { nowMs, ...c.opts });
    for (const h of c.has) t.ok(line.includes(h), `${c.name}: has ${h}`);
    for (const h of c.lacks ?? []) t.notOk(line.includes(h), `${c.name}: lacks ${h}`);
    const sd = line.slice(line.indexOf('['));
    t.notOk(
      /\n/.test(line.slice(0, line.indexOf('[')) + sd.slice(sd.lastIndexOf('"]'))),
      `${c.name}: one line of text`,
    );
  }
});

t.test('header fields and SD names', async (t) => {
  t.equal(headerField(undefined, 10), '-');
  t.equal(headerField('', 10), '-');
  t.equal(headerField('héllo wörld', 48), 'h_llo_w_rld');
  t.equal(headerField('x'.repeat(300), 255).length, 255);
  t.ok(isSdName('flow@32473'));
  for (const bad of ['', 'a=b', 'a b', 'a]', 'a"', 'x'.repeat(33), 'é']) t.notOk(isSdName(bad), bad);
  t.throws(() =>
    formatSyslog({
      facility: 1,
      severity: 1,
      timestampMs: 0,
      hostname: 'h',
      appName: 'a',
      structuredData: [{ id: 'a b', params: [] }],
    }),
  );
  t.equal(
    formatSyslog({ facility: 13, severity: 6, timestampMs: NaN, hostname: '', appName: 'a' }),
    '<110>1 - - a - - -',
    'NILVALUEs, and no message',
  );
  t.equal(isoTime(Number.MAX_VALUE), undefined);
});

t.test('octet counting frames count octets, not characters', async (t) => {
  const cases = [
    ['<134>1 - - - - - -', '18 <134>1 - - - - - -'],
    ['é', '2 é'],
    ['', '0 '],
  ];
  for (const [msg, want] of cases) t.equal(octetCountingFrame(msg!).toString('utf8'), want);
});
