import t from 'tap';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { canonicalEndpoint, canonicalPrefix, isPrefix } from './canonical.js';

// The general path, as canonical.ts had it before the IPv4 scanner and the memo: the fast paths
// must give exactly what this gives.
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
  const net = addr.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${len}`) : ipaddr.IPv6.networkAddressFromCIDR(`${addr.toString()}/${len}`);
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

t.test('prefixes: the IPv4 fast path and the memo give what the general path gives', async (t) => {
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
    for (let round = 0; round < 2; round++) { // the second round is served by the memo
      t.equal(canonicalPrefix(text), want, `${JSON.stringify(text)} (${round})`);
      t.equal(isPrefix(text), want !== null, `${JSON.stringify(text)} is a prefix (${round})`);
    }
    t.equal(want, referencePrefix(text), `${JSON.stringify(text)}: the table agrees with the reference`);
  }
  const octet = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('00', '01', '1000', ''));
  const arb = fc.tuple(octet, octet, octet, octet, fc.oneof(fc.integer({ min: 0, max: 40 }).map(String), fc.constantFrom('', '00', '032', '1234')), fc.constantFrom('', ' ', 'x'))
    .map(([a, b, c, d, len, pad]) => `${a}.${b}.${c}.${d}/${len}${pad}`);
  fc.assert(fc.property(fc.oneof(arb, fc.stringMatching(/^[0-9./: a-f]{0,20}$/)), (text) =>
    canonicalPrefix(text) === referencePrefix(text) && isPrefix(text) === (referencePrefix(text) !== null)), { numRuns: 20_000 });
});

t.test('endpoints: the IPv4 fast path and the memo give what the general path gives', async (t) => {
  for (const text of ['198.18.0.1:51820', '198.18.0.1:051820', '198.18.0.1:0', '198.18.0.1:65536', '01.2.3.4:1', '256.1.1.1:1', '[2001:DB8::1]:51820', '[1.2.3.4]:5', 'Host.Example:1', '-bad:1', '1.2.3.4']) {
    t.equal(canonicalEndpoint(text), referenceEndpoint(text), text);
    t.equal(canonicalEndpoint(text), referenceEndpoint(text), `${text} (memo)`);
  }
  const octet = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('00', '01'));
  fc.assert(fc.property(fc.tuple(octet, octet, octet, octet, fc.oneof(fc.integer({ min: 0, max: 70_000 }).map(String), fc.constantFrom('', '00080', '123456'))), ([a, b, c, d, port]) => {
    const text = `${a}.${b}.${c}.${d}:${port}`;
    return canonicalEndpoint(text) === referenceEndpoint(text);
  }), { numRuns: 20_000 });
});
