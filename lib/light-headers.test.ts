// lib/light-headers.ts stands in for the global Headers in the agent bundle: over a table of uses
// (the Connect client's, and the Fetch standard's corners) it must answer as node's own does.
import t from 'tap';
import { LightHeaders } from './light-headers.js';

type H = Pick<Headers, 'append' | 'set' | 'delete' | 'get' | 'has' | 'forEach' | 'entries' | 'getSetCookie'>;
type Step = (h: H) => unknown;

/** Runs the steps on a fresh object of each kind; every step's result, or the error's type. */
function trace(make: () => H, steps: Step[]): unknown[] {
  let h: H;
  try {
    h = make();
  } catch (e) {
    return [`constructor threw ${(e as Error).constructor.name}`];
  }
  return steps.map((s) => {
    try {
      const r = s(h);
      return r === undefined ? 'ok' : r;
    } catch (e) {
      return `threw ${(e as Error).constructor.name}`;
    }
  });
}

const all: Step = (h) => [...h.entries()];
const each: Step = (h) => {
  const out: string[][] = [];
  h.forEach((v, k) => out.push([k, v]));
  return out;
};

const cases: Array<[string, unknown, Step[]]> = [
  ['empty', undefined, [all, (h) => h.get('x'), (h) => h.has('x')]],
  ['record', { 'Content-Type': 'application/proto', 'connect-timeout-ms': '5000' }, [all, each]],
  [
    'pairs',
    [
      ['B', '2'],
      ['a', '1'],
      ['b', '3'],
    ],
    [all, each, (h) => h.get('b')],
  ],
  ['another Headers', new Headers({ X: 'y', 'set-cookie': 'a=1' }), [all]],
  ['bad pair', [['a', '1', 'x']], [all]],
  ['bad name in init', { 'bad name': 'x' }, [all]],
  [
    'append, set, delete, case',
    undefined,
    [
      (h) => h.append('Grpc-Status', '0'),
      (h) => h.append('grpc-status', '1'),
      (h) => h.get('GRPC-STATUS'),
      (h) => h.set('grpc-status', '2'),
      (h) => h.get('grpc-status'),
      (h) => h.delete('Grpc-Status'),
      (h) => h.has('grpc-status'),
      all,
    ],
  ],
  [
    'values trimmed, bad values and names refused',
    undefined,
    [
      (h) => h.append('a', '  x \t'),
      (h) => h.get('a'),
      (h) => h.append('b', 'x\ny'),
      (h) => h.append('b c', 'x'),
      (h) => h.append('', 'x'),
      (h) => h.set('ü', 'x'),
      (h) => h.get('b c'),
      (h) => h.append('c', ''),
      (h) => h.get('c'),
      all,
    ],
  ],
  [
    'set-cookie kept apart',
    undefined,
    [
      (h) => h.append('Set-Cookie', 'a=1'),
      (h) => h.append('set-cookie', 'b=2'),
      (h) => h.append('x', '1'),
      (h) => h.get('set-cookie'),
      (h) => h.getSetCookie(),
      all,
      each,
      (h) => h.set('set-cookie', 'c=3'),
      (h) => h.getSetCookie(),
      (h) => h.delete('set-cookie'),
      (h) => h.getSetCookie(),
      all,
    ],
  ],
];

t.test('answers as the global Headers', async (t) => {
  for (const [name, init, steps] of cases) {
    const real = trace(() => new Headers(init as ConstructorParameters<typeof Headers>[0]), steps);
    const light = trace(() => new LightHeaders(init as never), steps);
    t.same(light, real, name);
  }
});

t.test('iterable, keys and values, a Headers to Object.prototype.toString', async (t) => {
  const h = new LightHeaders({ b: '2', a: '1' });
  t.same(
    [...h],
    [
      ['a', '1'],
      ['b', '2'],
    ],
  );
  t.same([...h.keys()], ['a', 'b']);
  t.same([...h.values()], ['1', '2']);
  t.equal(Object.prototype.toString.call(h), '[object Headers]');
  t.same([...new LightHeaders(h)], [...h], 'one made from another');
});
