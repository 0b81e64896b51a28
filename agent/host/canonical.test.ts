import t from 'tap';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { parsePrefix, type ParsedPrefix } from './canonical.js';

// What the IPv4 scanner in parsePrefix() must give: the regular expression and checks it replaced
// (null hands the text to ipaddr.js), and for what it accepts, what ipaddr.js makes of it.
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
  return { text: `${ipaddr.fromByteArray(Array.from(Buffer.from(hex(start), 'hex'))).toString()}/${len}`, family: 4, len, startHex: hex(start), endHex: hex(start + size - 1) };
}
const attempt = (text: string) => {
  try {
    return parsePrefix(text);
  } catch {
    return null;
  }
};

t.test('IPv4 prefixes: the scanner gives what ipaddr.js gives, and hands on what it does not read', async (t) => {
  for (const [text, want] of [
    ['10.1.0.7/24', { text: '10.1.0.0/24', family: 4, len: 24, startHex: '0a010000', endHex: '0a0100ff' }],
    ['10.1.0.0/24', { text: '10.1.0.0/24', family: 4, len: 24, startHex: '0a010000', endHex: '0a0100ff' }],
    ['10.0.0.1', { text: '10.0.0.1/32', family: 4, len: 32, startHex: '0a000001', endHex: '0a000001' }],
    ['0.0.0.0/0', { text: '0.0.0.0/0', family: 4, len: 0, startHex: '00000000', endHex: 'ffffffff' }],
    ['255.255.255.255/32', { text: '255.255.255.255/32', family: 4, len: 32, startHex: 'ffffffff', endHex: 'ffffffff' }],
  ] as const) t.same(parsePrefix(text), want, text);
  t.throws(() => parsePrefix('10.0.0.0/33'), { code: 'config_invalid' });
  const octet = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('00', '01', '1000', ''));
  const len = fc.oneof(fc.integer({ min: 0, max: 40 }).map((l) => `/${l}`), fc.constantFrom('', '/', '/00', '/08', '/032'));
  const arb = fc.tuple(octet, octet, octet, octet, len).map(([a, b, c, d, l]) => `${a}.${b}.${c}.${d}${l}`);
  fc.assert(fc.property(fc.oneof(arb, fc.stringMatching(/^[0-9./]{0,18}$/)), (text) => {
    const got = attempt(text);
    if (isFastV4(text)) return got !== null && JSON.stringify(got) === JSON.stringify(reference(text));
    // Not the scanner's: ipaddr.js decides (and parses IPv4 the same way as before).
    return got === null || got.family === 4;
  }), { numRuns: 20_000 });
});
