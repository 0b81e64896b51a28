import t from 'tap';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import {
  canonicalEndpoint,
  canonicalInterfaceAddress,
  canonicalPrefix,
  canonicalPrefixList,
  compareText,
  isPrefix,
  parsePrefix,
  strictCanonicalPrefix,
  strictInterfaceAddress,
  type ParsedPrefix,
} from './canonical.js';

// What parsePrefix() must give for plain IPv4: what the regular expression and checks of the first
// IPv4 scanner accepted, read the way ipaddr.js reads it (the oracle; lib/prefix.ts does the parsing).
const V4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;
function isFastV4(text: string): boolean {
  const m = V4_RE.exec(text);
  if (!m) return false;
  for (let i = 1; i <= 4; i++) if ((m[i]!.length > 1 && m[i]![0] === '0') || Number(m[i]) > 255) return false;
  return m[5] === undefined || (Number(m[5]) <= 32 && !(m[5].length > 1 && m[5][0] === '0'));
}
function reference(text: string): ParsedPrefix {
  const [addr, len] = text.includes('/') ? ipaddr.IPv4.parseCIDR(text) : [ipaddr.IPv4.parse(text), 32];
  const n = addr.toByteArray().reduce((acc, b) => acc * 256 + b, 0);
  const size = 2 ** (32 - len);
  const start = n - (n % size);
  const hex = (x: number) => x.toString(16).padStart(8, '0');
  return {
    text: `${ipaddr.fromByteArray(Array.from(Buffer.from(hex(start), 'hex'))).toString()}/${len}`,
    family: 4,
    len,
    startHex: hex(start),
    endHex: hex(start + size - 1),
  };
}
const attempt = (text: string) => {
  try {
    return parsePrefix(text);
  } catch {
    return null;
  }
};

t.test('IPv4 prefixes: the scanner gives what ipaddr.js gives', async (t) => {
  for (const [text, want] of [
    ['10.1.0.7/24', { text: '10.1.0.0/24', family: 4, len: 24, startHex: '0a010000', endHex: '0a0100ff' }],
    ['10.1.0.0/24', { text: '10.1.0.0/24', family: 4, len: 24, startHex: '0a010000', endHex: '0a0100ff' }],
    ['10.0.0.1', { text: '10.0.0.1/32', family: 4, len: 32, startHex: '0a000001', endHex: '0a000001' }],
    ['0.0.0.0/0', { text: '0.0.0.0/0', family: 4, len: 0, startHex: '00000000', endHex: 'ffffffff' }],
    [
      '255.255.255.255/32',
      { text: '255.255.255.255/32', family: 4, len: 32, startHex: 'ffffffff', endHex: 'ffffffff' },
    ],
  ] as const)
    t.same(parsePrefix(text), want, text);
  t.throws(() => parsePrefix('10.0.0.0/33'), { code: 'config_invalid' });
  const octet = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('00', '01', '1000', ''));
  const len = fc.oneof(
    fc.integer({ min: 0, max: 40 }).map((l) => `/${l}`),
    fc.constantFrom('', '/', '/00', '/08', '/032'),
  );
  const arb = fc.tuple(octet, octet, octet, octet, len).map(([a, b, c, d, l]) => `${a}.${b}.${c}.${d}${l}`);
  fc.assert(
    fc.property(fc.oneof(arb, fc.stringMatching(/^[0-9./]{0,18}$/)), (text) => {
      const got = attempt(text);
      if (isFastV4(text)) return got !== null && JSON.stringify(got) === JSON.stringify(reference(text));
      // Other texts: refused, or read as IPv4 (a longer or zero-padded length).
      return got === null || got.family === 4;
    }),
    { numRuns: 20_000 },
  );
});

// Strict: the ipaddr.js path canonical.ts had before lib/prefix.ts: the scanner must give exactly
// what this gives.
function referenceAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  if (text.includes('%')) return null;
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (!text.includes(':') || !ipaddr.IPv6.isValid(text)) return null;
  return ipaddr.IPv6.parse(text);
}
function referencePrefix(text: string): string | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) return null;
  const addr = referenceAddress(m[1]!);
  const len = Number(m[2]);
  if (!addr || len > (addr.kind() === 'ipv4' ? 32 : 128)) return null;
  const net =
    addr.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${len}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${addr.toString()}/${len}`);
  return `${net.toString()}/${len}`;
}
function referenceEndpoint(text: string): string | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  const addr = referenceAddress(m[1]!);
  if (addr) return addr.kind() === 'ipv6' ? `[${addr.toString()}]:${port}` : `${addr.toString()}:${port}`;
  if (text.startsWith('[')) return null;
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(m[1]!)) return null;
  return `${m[1]!.toLowerCase()}:${port}`;
}

t.test('strict prefixes: the scanner gives what the ipaddr.js path gave', async (t) => {
  const cases: Array<[string, string | null]> = [
    ['10.1.0.0/24', '10.1.0.0/24'],
    ['10.1.0.7/24', '10.1.0.0/24'],
    ['10.1.0.0/024', '10.1.0.0/24'],
    ['10.1.0.0/08', '10.0.0.0/8'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['255.255.255.255/32', '255.255.255.255/32'],
    [' 10.1.0.0/24 ', '10.1.0.0/24'],
    ['10.1.0.0/33', null],
    ['10.1.0.0/0320', null],
    ['010.1.0.0/24', null],
    ['256.1.0.0/24', null],
    ['10.1.0/24', null],
    ['10.1.0.0', null],
    ['10.1.0.0/', null],
    ['2001:DB8::1/64', '2001:db8::/64'],
    ['fe80::1%eth0/64', null],
  ];
  for (const [text, want] of cases) {
    for (let round = 0; round < 2; round++) {
      // the same answer twice (no state between calls)
      t.equal(strictCanonicalPrefix(text), want, `${JSON.stringify(text)} (${round})`);
      t.equal(isPrefix(text), want !== null, `${JSON.stringify(text)} is a prefix (${round})`);
    }
    t.equal(want, referencePrefix(text), `${JSON.stringify(text)}: the table agrees with the reference`);
  }
  const octet = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('00', '01', '1000', ''));
  const arb = fc
    .tuple(
      octet,
      octet,
      octet,
      octet,
      fc.oneof(fc.integer({ min: 0, max: 40 }).map(String), fc.constantFrom('', '00', '032', '1234')),
      fc.constantFrom('', ' ', 'x'),
    )
    .map(([a, b, c, d, len, pad]) => `${a}.${b}.${c}.${d}/${len}${pad}`);
  fc.assert(
    fc.property(
      fc.oneof(arb, fc.stringMatching(/^[0-9./: a-f]{0,20}$/)),
      (text) =>
        strictCanonicalPrefix(text) === referencePrefix(text) && isPrefix(text) === (referencePrefix(text) !== null),
    ),
    { numRuns: 20_000 },
  );
});

t.test('endpoints: the scanner gives what the ipaddr.js path gave', async (t) => {
  for (const text of [
    '198.18.0.1:51820',
    '198.18.0.1:051820',
    '198.18.0.1:0',
    '198.18.0.1:65536',
    '01.2.3.4:1',
    '256.1.1.1:1',
    '[2001:DB8::1]:51820',
    '[1.2.3.4]:5',
    'Host.Example:1',
    '-bad:1',
    '1.2.3.4',
  ]) {
    t.equal(canonicalEndpoint(text), referenceEndpoint(text), text);
    t.equal(canonicalEndpoint(text), referenceEndpoint(text), `${text} (again)`);
  }
  const octet = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('00', '01'));
  fc.assert(
    fc.property(
      fc.tuple(
        octet,
        octet,
        octet,
        octet,
        fc.oneof(fc.integer({ min: 0, max: 70_000 }).map(String), fc.constantFrom('', '00080', '123456')),
      ),
      ([a, b, c, d, port]) => {
        const text = `${a}.${b}.${c}.${d}:${port}`;
        return canonicalEndpoint(text) === referenceEndpoint(text);
      },
    ),
    { numRuns: 20_000 },
  );
});

// Every text the strict parse accepts gets the same canonical text from the lenient one (both
// flavours of a prefix must compare equal in observed and desired state).
t.test('strict and lenient agree on every strict-valid prefix; lenient-only texts still parse', async (t) => {
  const lenWithin = (max: number) =>
    fc
      .tuple(fc.integer({ min: 0, max }), fc.integer({ min: 0, max: 2 }))
      .map(([l, pad]) => String(l).padStart(Math.min(3, String(l).length + pad), '0')); // "8", "08", "008"
  const space = fc.constantFrom('', ' ', '\t', '\n ');
  const v4 = fc.tuple(space, fc.ipV4(), lenWithin(32), space).map(([a, ip, len, b]) => `${a}${ip}/${len}${b}`);
  const v6 = fc
    .tuple(
      space,
      fc.ipV6(),
      fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
      fc.boolean(),
      lenWithin(128),
      space,
    )
    .map(([a, ip, padGroups, upper, len, b]) => {
      // Leading zeros in groups ("0db8") and upper case: both parses must drop them.
      let k = 0;
      const addr = ip
        .split(':')
        .map((g) => (/^[0-9a-f]{1,3}$/.test(g) && padGroups[k++ % 8] ? g.padStart(4, '0') : g))
        .join(':');
      return `${a}${upper ? addr.toUpperCase() : addr}/${len}${b}`;
    });
  // Host bits set, in both families.
  const hostBits = fc.constantFrom(
    '10.1.2.3/8',
    '10.1.2.3/31',
    '255.255.255.255/0',
    '2001:db8::1/64',
    '2001:DB8:0:0:1::1/33',
    '::ffff:10.1.2.3/100',
    '::1/0',
    'fe80::1:2:3:4/127',
  );
  fc.assert(
    fc.property(fc.oneof(v4, v6, hostBits), (text) => {
      const strict = strictCanonicalPrefix(text);
      if (strict === null || strict !== referencePrefix(text)) return false;
      if (parsePrefix(text).text !== strict || canonicalPrefix(text) !== strict) return false;
      // An interface address keeps its host bits, and both flavours write it alike too.
      return strictInterfaceAddress(text) === canonicalInterfaceAddress(text);
    }),
    { numRuns: 20_000 },
  );

  // Texts only the lenient parse accepts: canonicalPrefix() reads them, whichever flavour is asked first.
  for (const [text, want] of [
    ['10.0.0.1', '10.0.0.1/32'],
    ['2001:DB8::1', '2001:db8::1/128'],
    ['fe80::1%eth0/64', 'fe80::/64'],
  ] as const) {
    t.equal(strictCanonicalPrefix(text), null, `${text}: not strict`);
    for (let round = 0; round < 2; round++) t.equal(canonicalPrefix(text), want, `${text}: lenient (${round})`);
    t.equal(strictCanonicalPrefix(text), null, `${text}: still not strict`);
  }
  t.equal(canonicalPrefix('192.0.2.9'), '192.0.2.9/32', 'lenient first');
  t.equal(strictCanonicalPrefix('192.0.2.9'), null, 'then strict');
  // Invalid for both: the lenient one throws every time, the strict one is null.
  for (const text of ['10.0.0.0/33', 'not a prefix', '', '10.0.0.0/']) {
    for (let round = 0; round < 2; round++) {
      t.throws(() => canonicalPrefix(text), { code: 'config_invalid' }, `${JSON.stringify(text)} (${round})`);
      t.equal(strictCanonicalPrefix(text), null, `${JSON.stringify(text)}: strict (${round})`);
    }
  }
  t.same(canonicalPrefixList(['10.1.0.7/24', '9.0.0.0/8', '10.1.0.0/24', '10.0.0.1', '2001:DB8::/32']), [
    '9.0.0.0/8',
    '10.0.0.1/32',
    '10.1.0.0/24',
    '2001:db8::/32',
  ]);
});

t.test("compareText is plain string order (the desired state's), not numeric prefix order", async (t) => {
  t.same(['9.0.0.0/8', '10.0.0.0/8', '10.0.0.0/16', '1.0.0.0/8'].sort(compareText), [
    '1.0.0.0/8',
    '10.0.0.0/16',
    '10.0.0.0/8',
    '9.0.0.0/8',
  ]);
  fc.assert(
    fc.property(
      fc.array(fc.string()),
      (list) => JSON.stringify([...list].sort(compareText)) === JSON.stringify([...list].sort()),
    ),
  );
});
