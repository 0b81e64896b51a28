import t from 'tap';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import {
  canonicalText,
  contains,
  containsAddress,
  formatAddress,
  formatPrefix,
  hasHostBits,
  networkOf,
  overlaps,
  parseAddress,
  parsePrefix,
  rangeOf,
  scanIPv4,
  scanIPv6,
  type Prefix,
} from './prefix.js';

const must = (text: string, lenient = false): Prefix => {
  const r = parsePrefix(text, lenient);
  if (!r.ok) throw new Error(r.message);
  return r.prefix;
};

t.test('addresses: what is accepted and how it is written', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['10.1.2.3', '10.1.2.3'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['010.1.2.3', undefined], // leading zero: octal in some parsers, refused here
    ['10.1.2.256', undefined],
    ['10.1.2', undefined],
    ['10.1.2.3.4', undefined],
    ['10.1.2.', undefined],
    [' 10.1.2.3', undefined],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['1:0:0:1:0:0:0:1', '1:0:0:1::1'],
    ['1:0:0:1:1:0:0:1', '1::1:1:0:0:1'], // leftmost of two equal runs
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'], // one zero group is not compressed
    ['::ffff:10.1.2.3', '::ffff:a01:203'],
    ['::10.1.2.3', '::ffff:a01:203'], // as ipaddr.js reads it
    ['64:ff9b::010.1.2.3', '64:ff9b::a01:203'], // the IPv4 tail is decimal even with a zero in front
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['1:2:3:4:5:6:7:1.2.3.4', undefined],
    ['1:2:3:4:5:6:7:8:9', undefined],
    ['1:2:3:4:5:6:7', undefined],
    ['1::2::3', undefined],
    ['1:::2', undefined],
    [':1::', undefined],
    ['1::2:', undefined],
    ['12345::', undefined],
    ['g::', undefined],
    ['fe80::1%eth0', undefined], // zones only in a lenient prefix
    ['', undefined],
  ];
  for (const [text, want] of cases) {
    const a = parseAddress(text);
    t.equal(a ? formatAddress(a) : undefined, want, JSON.stringify(text));
  }
  t.equal(scanIPv4('x10.0.0.1y', 1, 9), 0x0a000001, 'a range inside a longer text');
  t.equal(scanIPv6('[2001:db8::]', 1, 11), 0x20010db8n << 96n);
});

t.test('prefixes: strict and lenient, with an error that says what is wrong', async (t) => {
  const cases: Array<[string, boolean, string]> = [
    ['10.1.0.7/24', false, '10.1.0.7/24'],
    [' 10.1.0.0/024\n', false, '10.1.0.0/24'],
    ['2001:DB8::1/64', false, '2001:db8::1/64'],
    ['0.0.0.0/0', false, '0.0.0.0/0'],
    ['::/0', false, '::/0'],
    ['10.0.0.1', true, '10.0.0.1/32'],
    ['2001:db8::1', true, '2001:db8::1/128'],
    ['fe80::1%eth0/64', true, 'fe80::1%eth0/64'],
    ['10.0.0.0/0000024', true, '10.0.0.0/24'],
  ];
  for (const [text, lenient, want] of cases) t.equal(formatPrefix(must(text, lenient)), want, JSON.stringify(text));
  const errors: Array<[string, boolean, string]> = [
    ['10.0.0.1', false, '"10.0.0.1" is not a prefix: write it as ADDRESS/LENGTH, e.g. 10.20.1.0/24'],
    ['10.20.300.0/24', false, '"10.20.300.0/24" is not a valid IPv4 or IPv6 prefix'],
    ['/24', false, '"/24" is not a valid IPv4 or IPv6 prefix'],
    ['10.0.0.0/33', false, '"10.0.0.0/33": prefix length must be 0-32'],
    ['10.0.0.0/0024', false, '"10.0.0.0/0024": prefix length must be 0-32'],
    ['10.0.0.0/', true, '"10.0.0.0/": prefix length must be 0-32'],
    ['10.0.0.0/24 x', true, '"10.0.0.0/24 x": prefix length must be 0-32'],
    ['::/129', true, '"::/129": prefix length must be 0-128'],
    ['fe80::1%eth0/64', false, '"fe80::1%eth0/64" is not a valid IPv4 or IPv6 prefix'],
    ['fe80::1%/64', true, '"fe80::1%/64" is not a valid IPv4 or IPv6 prefix'],
    ['fe80::1%e-0/64', true, '"fe80::1%e-0/64" is not a valid IPv4 or IPv6 prefix'],
    ['10.0.0.1%eth0', true, '"10.0.0.1%eth0" is not a valid IPv4 or IPv6 prefix'],
    ['', true, '"" is not a valid IPv4 or IPv6 prefix'],
  ];
  for (const [text, lenient, message] of errors)
    t.same(parsePrefix(text, lenient), { ok: false, message }, JSON.stringify(text));
});

t.test('host bits, networks, canonical text, containment', async (t) => {
  t.equal(hasHostBits(must('10.1.0.7/24')), true);
  t.equal(hasHostBits(must('10.1.0.0/24')), false);
  t.equal(hasHostBits(must('2001:db8::1/64')), true);
  t.equal(hasHostBits(must('2001:db8::/32')), false);
  t.equal(canonicalText(must('10.1.0.7/24')), '10.1.0.0/24');
  t.equal(canonicalText(must('fe80::1%eth0/64', true)), 'fe80::/64', 'the zone is dropped');
  t.equal(canonicalText(must('::1/0')), '::/0');
  const text = '10.1.0.0/24';
  t.equal(canonicalText(must(text), text), text, 'a canonical text is returned itself');
  t.equal(canonicalText(must('10.1.0.0/08'), '10.1.0.0/08'), '10.0.0.0/8');
  t.equal(
    canonicalText(must('10.0.0.1  ', true), '10.0.0.1  '),
    '10.0.0.1/32',
    'trimmed text of the same length is not taken for canonical',
  );
  t.same(rangeOf(must('10.1.0.7/24')), { family: 4, start: 0x0a010000, end: 0x0a0100ff });
  t.same(rangeOf(must('2001:db8::/32')), {
    family: 6,
    start: 0x20010db8n << 96n,
    end: (0x20010db8n << 96n) | ((1n << 96n) - 1n),
  });
  t.same(networkOf(must('10.1.0.7/24')), { family: 4, addr: 0x0a010000, len: 24 });
  t.equal(contains(must('10.0.0.0/8'), must('10.1.0.0/24')), true);
  t.equal(contains(must('10.1.0.0/24'), must('10.0.0.0/8')), false);
  t.equal(contains(must('0.0.0.0/0'), must('255.0.0.0/8')), true);
  t.equal(contains(must('::/0'), must('10.0.0.0/8')), false, 'families never contain each other');
  t.equal(contains(must('2001:db8::/32'), must('2001:db8:1::/48')), true);
  t.equal(contains(must('2001:db8::/32'), must('2001:db9::/48')), false);
  t.equal(overlaps(must('10.1.0.0/24'), must('10.0.0.0/8')), true);
  t.equal(overlaps(must('10.1.0.0/24'), must('10.2.0.0/16')), false);
  const host = parseAddress('10.20.1.2');
  t.ok(host && containsAddress(must('10.20.1.1/24'), host));
  t.notOk(host && containsAddress(must('10.20.2.1/24'), host));
});

// ipaddr.js as the oracle: canonical text and range of random prefixes in both families, written
// in the ways a person or a host may write them.
function oracle(text: string): { text: string; start: bigint; end: bigint } {
  const [addr, len] = ipaddr.parseCIDR(text.trim());
  const bits = addr.kind() === 'ipv4' ? 32 : 128;
  const value = addr.toByteArray().reduce((v, b) => (v << 8n) | BigInt(b), 0n);
  const size = 1n << BigInt(bits - len);
  const start = value - (value % size);
  const net =
    addr.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${len}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${addr.toString()}/${len}`);
  return { text: `${net.toString()}/${len}`, start, end: start + size - 1n };
}

t.test('random prefixes: the same canonical text and range as ipaddr.js, and the text round-trips', async (t) => {
  const v4 = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, l]) => `${a}/${l}`);
  const v6 = fc
    .tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 }), fc.boolean())
    .map(([a, l, upper]) => `${upper ? a.toUpperCase() : a}/${l}`);
  fc.assert(
    fc.property(fc.oneof(v4, v6), (text) => {
      const p = must(text);
      const want = oracle(text);
      const r = rangeOf(p);
      const canonical = canonicalText(p, text);
      if (canonical !== want.text || BigInt(r.start) !== want.start || BigInt(r.end) !== want.end) return false;
      // Round trip: the canonical text parses to itself, and the interface form keeps the address.
      const again = must(canonical);
      return (
        canonicalText(again, canonical) === canonical && !hasHostBits(again) && must(formatPrefix(p)).addr === p.addr
      );
    }),
    { numRuns: 20_000 },
  );
  t.pass('checked');
});

t.test('random text: accepted exactly when ipaddr.js accepts it strictly', async (t) => {
  // The strict reading ipaddr.js gave before the scanner: four-part decimal IPv4, or IPv6 without a zone.
  const reference = (text: string): string | undefined => {
    if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text).toString();
    if (!text.includes(':') || text.includes('%') || !ipaddr.IPv6.isValid(text)) return undefined;
    return ipaddr.IPv6.parse(text).toString();
  };
  const group = fc.oneof(
    fc.constantFrom('', '0', '00', 'ffff', 'FFFF', '12345', '1.2.3.4', '01.2.3.4', '256.1.1.1'),
    fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16)),
  );
  const v6ish = fc.array(group, { maxLength: 10 }).map((g) => g.join(':'));
  fc.assert(
    fc.property(fc.oneof(v6ish, fc.stringMatching(/^[0-9a-fA-F.:]{0,24}$/)), (text) => {
      const a = parseAddress(text);
      return (a ? formatAddress(a) : undefined) === reference(text);
    }),
    { numRuns: 30_000 },
  );
  t.pass('checked');
});
