import t from 'tap';
import fc from 'fast-check';
import { decodeAdvert, encodeAdvert, isAdvertPacket, type Advert } from './advert.js';
import { decodeEcho, isEchoPacket } from './echo.js';

const A: Advert = { group: 'gp-lan', agent: 'gp-edge-2', rank: 1, isEligible: true, isHolding: false, seq: 42 };

t.test('round trip and layout', async (t) => {
  const bytes = encodeAdvert(A);
  t.same([...bytes.subarray(0, 12)], [0x78, 0x6c, 0x41, 0x44, 1, 1, 0, 1, 0, 0, 0, 42]);
  t.equal(bytes.length, 12 + 1 + 6 + 1 + 9);
  t.same(decodeAdvert(bytes), A);
  t.ok(isAdvertPacket(bytes));
  t.notOk(isEchoPacket(bytes), 'not an echo');
  t.equal(decodeEcho(bytes), null);
  const cases: Advert[] = [
    { ...A, isEligible: false, isHolding: true, rank: 65535, seq: 0xffffffff },
    { ...A, group: 'ü-subnet', agent: 'x', rank: 0, seq: 0 },
    { ...A, group: 'g'.repeat(255), agent: 'a'.repeat(255) },
    { ...A, group: '\uFEFFbom' },
  ];
  for (const c of cases) t.same(decodeAdvert(encodeAdvert(c)), c, JSON.stringify(c).slice(0, 60));
});

t.test('fields that cannot be sent are refused', async (t) => {
  const bad: Array<Partial<Advert>> = [
    { group: '' },
    { agent: '' },
    { group: 'g'.repeat(256) },
    { rank: -1 },
    { rank: 65536 },
    { rank: 1.5 },
    { seq: -1 },
    { seq: 2 ** 32 },
  ];
  for (const b of bad) t.throws(() => encodeAdvert({ ...A, ...b }), RangeError, JSON.stringify(b).slice(0, 40));
});

t.test('malformed packets decode to null', async (t) => {
  const good = encodeAdvert(A);
  const with_ = (i: number, v: number) => {
    const c = good.slice();
    c[i] = v;
    return c;
  };
  const cases: Array<[string, Uint8Array]> = [
    ['empty', new Uint8Array(0)],
    ['header only', good.subarray(0, 12)],
    ['truncated', good.subarray(0, good.length - 1)],
    ['trailing byte', Uint8Array.of(...good, 0)],
    ['magic', with_(3, 0x43)],
    ['version', with_(4, 2)],
    ['unknown flag', with_(5, 4)],
    ['empty group', Uint8Array.of(...good.subarray(0, 12), 0, 1, 0x61)],
    ['empty agent', Uint8Array.of(...good.subarray(0, 12), 1, 0x61, 0)],
    ['group runs past the end', with_(12, 200)],
    ['not UTF-8', Uint8Array.of(...good.subarray(0, 12), 1, 0xff, 1, 0x61)],
  ];
  for (const [name, b] of cases) t.equal(decodeAdvert(b), null, name);
});

t.test('fuzz: random bytes never throw; what decodes encodes back to the same bytes', async () => {
  const good = encodeAdvert(A);
  const mutated = fc
    .tuple(fc.array(fc.tuple(fc.nat(good.length + 2), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat(3))
    .map(([edits, cut]) => {
      const b = Uint8Array.of(...good, 0, 0);
      for (const [i, v] of edits) if (i < b.length) b[i] = v;
      return b.subarray(0, good.length + 2 - cut);
    });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated), (bytes) => {
      const a = decodeAdvert(bytes);
      if (a === null) return true;
      return Buffer.compare(Buffer.from(encodeAdvert(a)), Buffer.from(bytes)) === 0;
    }),
    { numRuns: 5000 },
  );
  fc.assert(
    fc.property(
      fc.record({
        group: fc.string({ minLength: 1, maxLength: 60 }),
        agent: fc.string({ minLength: 1, maxLength: 60 }),
        rank: fc.integer({ min: 0, max: 65535 }),
        isEligible: fc.boolean(),
        isHolding: fc.boolean(),
        seq: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      }),
      (a) => {
        // fc.string may produce lone surrogates, which UTF-8 cannot carry.
        if (new TextDecoder().decode(new TextEncoder().encode(a.group)) !== a.group) return true;
        if (new TextDecoder().decode(new TextEncoder().encode(a.agent)) !== a.agent) return true;
        const d = decodeAdvert(encodeAdvert(a));
        return d !== null && JSON.stringify(d) === JSON.stringify(a);
      },
    ),
    { numRuns: 2000 },
  );
});
