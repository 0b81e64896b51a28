import t from 'tap';
import {
  IpfixEncoder,
  MAX_RULE_NAME_BYTES,
  encodeDataRecord,
  utf8Prefix,
  variableLengthField,
  DEFAULT_TEMPLATE_REFRESH_MS,
} from './ipfix.js';
import type { FlowRecord } from './record.js';
import { sampleFlow } from './record.fixture.js';

// An independent reader, written from RFC 7011 rather than from the encoder: header, sets, template
// records (enterprise bit and PEN), data records with variable-length fields, padding.
interface Field {
  id: number;
  pen: number;
  length: number;
}
interface Decoded {
  version: number;
  length: number;
  exportTime: number;
  sequence: number;
  domain: number;
  sets: { id: number; length: number; padding: Buffer }[];
  records: { templateId: number; values: Map<string, Buffer> }[];
}

function decode(msg: Buffer, templates: Map<number, Field[]>): Decoded {
  const d: Decoded = {
    version: msg.readUInt16BE(0),
    length: msg.readUInt16BE(2),
    exportTime: msg.readUInt32BE(4),
    sequence: msg.readUInt32BE(8),
    domain: msg.readUInt32BE(12),
    sets: [],
    records: [],
  };
  let o = 16;
  while (o < msg.length) {
    const id = msg.readUInt16BE(o);
    const length = msg.readUInt16BE(o + 2);
    const end = o + length;
    let p = o + 4;
    if (id === 2) {
      while (end - p >= 4) {
        const tid = msg.readUInt16BE(p);
        const count = msg.readUInt16BE(p + 2);
        p += 4;
        const fields: Field[] = [];
        for (let i = 0; i < count; i++) {
          const raw = msg.readUInt16BE(p);
          const len = msg.readUInt16BE(p + 2);
          p += 4;
          let pen = 0;
          if (raw & 0x8000) {
            pen = msg.readUInt32BE(p);
            p += 4;
          }
          fields.push({ id: raw & 0x7fff, pen, length: len });
        }
        templates.set(tid, fields);
      }
    } else {
      const fields = templates.get(id);
      if (!fields) throw new Error(`data set ${id} before its template`);
      const minimum = fields.reduce((n, f) => n + (f.length === 0xffff ? 1 : f.length), 0);
      while (end - p >= minimum) {
        const values = new Map<string, Buffer>();
        for (const f of fields) {
          let len = f.length;
          if (len === 0xffff) {
            len = msg[p++]!;
            if (len === 255) {
              len = msg.readUInt16BE(p);
              p += 2;
            }
          }
          values.set(`${f.pen}:${f.id}`, msg.subarray(p, p + len));
          p += len;
        }
        d.records.push({ templateId: id, values });
      }
    }
    d.sets.push({ id, length, padding: msg.subarray(p, end) });
    o = end;
  }
  return d;
}

const base: FlowRecord = sampleFlow();

const u64 = (b: Buffer | undefined) => Number(b!.readBigUInt64BE(0));
const ipv6 = (b: Buffer) => Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16)).join(':');

t.test('a data message matches one built by hand from RFC 7011', async (t) => {
  const enc = new IpfixEncoder({ observationDomainId: 7 });
  const first = enc.encode([], 1764968460000);
  t.equal(first.length, 1, 'the first call sends the templates alone');
  const [msg] = enc.encode([base], 1764968461000);
  const hand = [
    '000a 0068 6933480d 00000000 00000007', // version 10, length 104, export time, sequence 0, domain 7
    '0100 0058', // data set for template 256: 4 + 84 = 88 octets (a multiple of 4: no padding)
    '0000019af0508480 0000019af05170d4', // flowStart/EndMilliseconds
    '0a010203 0a090807', // source, destination
    '00000000000004b0 000000000000000a', // 1200 octets, 10 packets
    '0000000000001518 0000000000000008', // reverse: 5400 octets, 8 packets
    'c93a 01bb 06 01 02', // ports 51514 -> 443, tcp, egress, flow deleted (ended)
    '0d 67702d746f2d636f756e63696c', // 13, "gp-to-council"
    '02 6e33 03 70736e', // zones: 2, "n3"; 3, "psn"
  ]
    .join('')
    .replace(/ /g, '');
  t.equal(msg!.toString('hex'), hand);
});

t.test('templates: both families, enterprise elements with their PEN, set length', async (t) => {
  const templates = new Map<number, Field[]>();
  const [msg] = new IpfixEncoder({ observationDomainId: 1 }).encode([], 0);
  const d = decode(msg!, templates);
  t.equal(d.version, 10);
  t.equal(d.length, msg!.length);
  t.equal(d.sets.length, 1);
  t.equal(d.sets[0]!.id, 2);
  t.equal(d.sets[0]!.length, msg!.length - 16);
  const expect = (a: number, b: number) => [
    { id: 152, pen: 0, length: 8 },
    { id: 153, pen: 0, length: 8 },
    { id: a, pen: 0, length: a === 8 ? 4 : 16 },
    { id: b, pen: 0, length: a === 8 ? 4 : 16 },
    { id: 1, pen: 0, length: 8 },
    { id: 2, pen: 0, length: 8 },
    { id: 1, pen: 29305, length: 8 },
    { id: 2, pen: 29305, length: 8 },
    { id: 7, pen: 0, length: 2 },
    { id: 11, pen: 0, length: 2 },
    { id: 4, pen: 0, length: 1 },
    { id: 61, pen: 0, length: 1 },
    { id: 233, pen: 0, length: 1 },
    { id: 100, pen: 32473, length: 0xffff },
    { id: 101, pen: 32473, length: 0xffff },
    { id: 102, pen: 32473, length: 0xffff },
  ];
  t.same(templates.get(256), expect(8, 12));
  t.same(templates.get(257), expect(27, 28));
  // 2 template headers + 16 fields each, 5 of them enterprise (8 octets), + the set header.
  t.equal(msg!.length, 16 + 4 + 2 * (4 + 11 * 4 + 5 * 8));
});

t.test('records round-trip through the reader, IPv4 and IPv6', async (t) => {
  const cases: {
    name: string;
    rec: FlowRecord;
    src: string;
    dst: string;
    template: number;
    event: number;
    dir: number;
  }[] = [
    { name: 'ended, outbound', rec: base, src: '10.1.2.3', dst: '10.9.8.7', template: 256, event: 2, dir: 1 },
    {
      name: 'IPv6, inbound, open',
      rec: { ...base, srcAddress: '2001:db8::1', dstAddress: 'fd00:1:2::abcd', direction: 'inbound', endMs: null },
      src: '2001:db8:0:0:0:0:0:1',
      dst: 'fd00:1:2:0:0:0:0:abcd',
      template: 257,
      event: 1,
      dir: 0,
    },
    {
      name: 'dropped, local, no rule',
      rec: { ...base, verdict: 'dropped', rule: null, direction: 'local', protocol: 17, dstZone: '' },
      src: '10.1.2.3',
      dst: '10.9.8.7',
      template: 256,
      event: 3,
      dir: 0,
    },
  ];
  const templates = new Map<number, Field[]>();
  const enc = new IpfixEncoder({ observationDomainId: 9 });
  const now = 1764968470000;
  const msgs = enc.encode(
    cases.map((c) => c.rec),
    now,
  );
  t.equal(msgs.length, 1);
  const d = decode(msgs[0]!, templates);
  t.equal(d.records.length, cases.length);
  cases.forEach((c, i) => {
    const r = d.records[i]!;
    const v = (k: string) => r.values.get(k)!;
    t.equal(r.templateId, c.template, `${c.name}: template`);
    const addr = (b: Buffer) => (b.length === 4 ? Array.from(b).join('.') : ipv6(b));
    t.equal(addr(v(c.template === 256 ? '0:8' : '0:27')), c.src, `${c.name}: source`);
    t.equal(addr(v(c.template === 256 ? '0:12' : '0:28')), c.dst, `${c.name}: destination`);
    t.equal(u64(v('0:152')), c.rec.startMs, `${c.name}: start`);
    t.equal(u64(v('0:153')), c.rec.endMs ?? now, `${c.name}: end (now when open)`);
    t.equal(u64(v('0:1')), c.rec.bytes);
    t.equal(u64(v('0:2')), c.rec.packets);
    t.equal(u64(v('29305:1')), c.rec.replyBytes, `${c.name}: reverse octets`);
    t.equal(u64(v('29305:2')), c.rec.replyPackets, `${c.name}: reverse packets`);
    t.equal(v('0:7').readUInt16BE(0), c.rec.srcPort);
    t.equal(v('0:11').readUInt16BE(0), c.rec.dstPort);
    t.equal(v('0:4')[0], c.rec.protocol);
    t.equal(v('0:61')[0], c.dir, `${c.name}: flowDirection`);
    t.equal(v('0:233')[0], c.event, `${c.name}: firewallEvent`);
    t.equal(v('32473:100').toString('utf8'), c.rec.rule ?? '', `${c.name}: rule name`);
    t.equal(v('32473:101').toString('utf8'), c.rec.srcZone, `${c.name}: source zone`);
    t.equal(v('32473:102').toString('utf8'), c.rec.dstZone, `${c.name}: destination zone`);
  });
});

t.test('variable-length rule names: one length octet below 255, three from 255', async (t) => {
  const cases = [
    { name: '', header: '00', bytes: 0 },
    { name: 'a', header: '01', bytes: 1 },
    { name: 'b'.repeat(254), header: 'fe', bytes: 254 },
    { name: 'c'.repeat(255), header: 'ff00ff', bytes: 255 },
    { name: 'd'.repeat(256), header: 'ff0100', bytes: 256 },
    { name: 'e'.repeat(1024), header: 'ff0400', bytes: 1024 },
    { name: 'f'.repeat(2000), header: 'ff0400', bytes: MAX_RULE_NAME_BYTES },
    // 1 + 2 x 600 octets, cut before the character that would cross 1024: 1023.
    { name: 'g' + 'é'.repeat(600), header: 'ff03ff', bytes: 1023 },
  ];
  for (const c of cases) {
    const rec = encodeDataRecord({ ...base, rule: c.name }, 0)!;
    const fixed = 16 + 8 + 32 + 4 + 3; // times, addresses, counts, ports, 3 one-octet fields
    t.equal(
      rec.bytes.subarray(fixed, fixed + c.header.length / 2).toString('hex'),
      c.header,
      `${c.name.length}: header`,
    );
    // Then the zones: "n3" and "psn", one length octet each.
    t.equal(rec.bytes.length, fixed + c.header.length / 2 + c.bytes + 3 + 4, `${c.name.length}: record length`);
    const templates = new Map<number, Field[]>();
    const enc = new IpfixEncoder({ observationDomainId: 1 });
    const d = decode(enc.encode([{ ...base, rule: c.name }], 0)[0]!, templates);
    const got = d.records[0]!.values.get('32473:100')!.toString('utf8');
    t.ok(c.name.startsWith(got) && Buffer.byteLength(got) === c.bytes, `${c.name.length}: decodes to its prefix`);
  }
  t.equal(utf8Prefix('aé', 2).toString(), 'a', 'never splits a character');
  t.throws(() => variableLengthField(Buffer.alloc(70000)), RangeError);
});

t.test('sequence numbers count the data records sent before each message', async (t) => {
  const enc = new IpfixEncoder({ observationDomainId: 1 });
  const batches = [0, 3, 1, 0, 60, 2];
  const seen: number[] = [];
  let sent = 0;
  const expected: number[] = [];
  const templates = new Map<number, Field[]>();
  for (const [i, n] of batches.entries()) {
    const records = Array.from({ length: n }, (_, k) => ({ ...base, srcPort: 1000 + k }));
    for (const m of enc.encode(records, 1000 * i)) {
      const d = decode(m, templates);
      seen.push(d.sequence);
      expected.push(sent);
      sent += d.records.length;
    }
  }
  t.same(seen, expected);
  t.equal(sent, 66);
  t.equal(enc.sequenceNumber, 66);
});

t.test('a large batch splits into messages under the limit, sets padded to 4 with zeros', async (t) => {
  const cases = [
    { max: undefined, limit: 1400 },
    { max: 512, limit: 512 },
  ];
  for (const c of cases) {
    const enc = new IpfixEncoder({ observationDomainId: 3, maxMessageBytes: c.max });
    const records = Array.from({ length: 200 }, (_, i) =>
      i % 3 === 0
        ? { ...base, srcAddress: `2001:db8::${i.toString(16)}`, dstAddress: '2001:db8::ffff', rule: 'r'.repeat(i % 7) }
        : { ...base, srcPort: i, rule: 'x'.repeat(i % 5) },
    );
    const msgs = enc.encode(records, 5000);
    t.ok(msgs.length > 1, `${c.limit}: more than one message`);
    const templates = new Map<number, Field[]>();
    const ports: number[] = [];
    for (const m of msgs) {
      t.ok(m.length <= c.limit, `${c.limit}: message of ${m.length} octets`);
      const d = decode(m, templates);
      t.equal(d.length, m.length, 'header length is the message length');
      for (const s of d.sets) {
        t.equal(s.length % 4, 0, 'set length is a multiple of 4');
        t.ok(s.padding.length < 4 && s.padding.every((b) => b === 0), 'padding is short and zero');
      }
      for (const r of d.records) ports.push(r.values.get('0:7')!.readUInt16BE(0));
    }
    t.same(
      ports,
      records.map((r) => r.srcPort),
      `${c.limit}: every record, in order`,
    );
  }
});

t.test('templates go first and again after templateRefreshMs (or when the clock goes back)', async (t) => {
  const enc = new IpfixEncoder({ observationDomainId: 1, templateRefreshMs: 60_000 });
  const steps = [
    { at: 100_000, records: 1, templates: true },
    { at: 120_000, records: 1, templates: false },
    { at: 159_999, records: 0, templates: false, messages: 0 },
    { at: 160_000, records: 0, templates: true, messages: 1 },
    { at: 200_000, records: 2, templates: false },
    { at: 150_000, records: 1, templates: true },
  ];
  for (const s of steps) {
    const msgs = enc.encode(
      Array.from({ length: s.records }, () => base),
      s.at,
    );
    t.equal(msgs.length, s.messages ?? 1, `${s.at}: messages`);
    if (msgs.length) t.equal(msgs[0]!.readUInt16BE(16) === 2, s.templates, `${s.at}: leads with templates`);
  }
  t.equal(new IpfixEncoder({ observationDomainId: 1 }).templateRefreshMs, DEFAULT_TEMPLATE_REFRESH_MS);
});

t.test('records without one family of valid addresses are skipped and counted', async (t) => {
  const enc = new IpfixEncoder({ observationDomainId: 1 });
  enc.encode([], 0);
  const bad = [
    { ...base, srcAddress: 'not-an-ip' },
    { ...base, dstAddress: '2001:db8::1' },
    { ...base, srcAddress: '10.0.0.256' },
  ];
  t.same(enc.encode(bad, 1), []);
  t.equal(enc.skippedRecords, 3);
  t.equal(enc.encode([...bad, base], 2).length, 1);
  t.equal(enc.sequenceNumber, 1);
  t.throws(() => new IpfixEncoder({ observationDomainId: -1 }), RangeError);
  t.throws(() => new IpfixEncoder({ observationDomainId: 2 ** 32 }), RangeError);
});

t.test('odd numbers become safe unsigned values', async (t) => {
  const rec = encodeDataRecord({ ...base, bytes: -5, packets: NaN, replyBytes: 1.9, srcPort: 70000 }, 0)!;
  const d = decode(
    new IpfixEncoder({ observationDomainId: 1 }).encode([{ ...base, bytes: -5, packets: NaN }], 0)[0]!,
    new Map(),
  );
  t.equal(u64(d.records[0]!.values.get('0:1')), 0);
  t.equal(u64(d.records[0]!.values.get('0:2')), 0);
  t.equal(Number(rec.bytes.readBigUInt64BE(40)), 1, 'fractions are floored');
  t.equal(rec.bytes.readUInt16BE(56), 70000 & 0xffff);
});
