// The fast reader (js-yaml) must give exactly what the positioned one (yaml) gives, or decline: a
// policy means the same whichever of them read it.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parseFast, parsePolicyText, parseWithPositions } from './parse.js';

const leeds = readFileSync(new URL('../../examples/leeds.yaml', import.meta.url), 'utf8');

/** Either the fast reader declines, or both read the same value and the slow one finds no error. */
function agrees(text: string): { ok: boolean; why?: string; isFast: boolean } {
  const fast = parseFast(text);
  if (fast === undefined) return { ok: true, isFast: false };
  const slow = parseWithPositions(text);
  if (slow.errors.length > 0)
    return { ok: false, isFast: true, why: `fast read it, yaml says ${slow.errors[0]!.message}` };
  const a = JSON.stringify(fast.value);
  const b = JSON.stringify(slow.value);
  if (a === b) return { ok: true, isFast: true };
  let at = 0;
  while (at < Math.min(a?.length ?? 0, b?.length ?? 0) && a[at] === b[at]) at++;
  const from = Math.max(0, at - 60);
  return { ok: false, isFast: true, why: `js-yaml …${a?.slice(from, at + 60)} yaml …${b?.slice(from, at + 60)}` };
}

const SCALARS = [
  'yes',
  'no',
  'on',
  'off',
  'y',
  'n',
  '~',
  'null',
  'Null',
  'NULL',
  'nULL',
  'True',
  'TRUE',
  'tRue',
  'false',
  '0o17',
  '017',
  '0x1F',
  '0X1F',
  '0b101',
  '1_000',
  '+12',
  '-0',
  '00',
  '08',
  '.5',
  '1.',
  '1e3',
  '1E3',
  '+1e3',
  '1.5e-3',
  '.inf',
  '-.Inf',
  '+.INF',
  '.NaN',
  '.nan',
  '.NAN',
  '2026-01-01',
  '2026-01-01T00:00:00Z',
  '12:30:00',
  '1:30',
  '=',
  '0.1.2',
  '10.0.0.0/8',
  'fd00::/64',
  '443',
  '8000-8080',
  '-1',
  '0x',
  '0o',
  '0b',
  '"a"',
  "'a'",
  '"\\u00e9\\x41\\t"',
  "'it''s'",
  '!!str 12',
  '!!int "12"',
  '!!float 1',
  '!!bool true',
  '!!null ""',
  '!!binary aGk=',
  '!!timestamp 2026-01-01',
  '!foo bar',
  '&a x',
  '*a',
  '1__0',
  '0_1',
  '+0x1F',
  '-0x1F',
  '+.inf',
  '1e',
  'e3',
  '.',
  '0.',
  '-.5',
  '+.5',
  '1.2.3',
  '0e0',
  '0E1',
  '12345678901234567890',
  '0.1e400',
  '"a\\\n  b"',
  '|\n  a\n  b\n',
  '>-\n  a\n  b\n',
  '|+\n  a\n\n',
  '[a, b, ]',
  '{a: 1, b: }',
  '[]',
  '{}',
  '""',
  "''",
  '# c',
  'a # c',
  'a#b',
  'a: b',
  '"a: b"',
  '- a',
  '? a',
  'tcp/443',
  '@x',
  '`x',
];

t.test('scalars: the same value from both readers, as a value and as a key', async (t) => {
  let fastCount = 0;
  for (const s of SCALARS) {
    for (const doc of [`k: ${s}\n`, `- ${s}\n`, `${s}: v\n`, `{k: ${s}}\n`]) {
      const r = agrees(doc);
      if (r.isFast) fastCount++;
      t.ok(r.ok, `${JSON.stringify(doc)}: ${r.why ?? ''}`);
    }
  }
  t.ok(fastCount > SCALARS.length * 2, `most read fast (${fastCount})`);
});

t.test('documents the fast reader must leave to yaml', async (t) => {
  const slowOnly: Array<[string, string]> = [
    ['a: 1\na: 2\n', 'duplicate key (yaml reports both lines)'],
    ['a: &x [1, 2]\nb: *x\n', 'an alias (yaml has the alias-count guard)'],
    ['%YAML 1.1\n---\nk: yes\n', 'a directive that changes the schema'],
    ['k: 1\n---\nk: 2\n', 'two documents'],
    ['', 'an empty file'],
    ['? [a, b]\n: 1\n', 'a complex key'],
    ['k: !!set {a, b}\n', 'an unknown tag'],
    ['k: [1, 2\n', 'a syntax error'],
  ];
  for (const [doc, why] of slowOnly) t.equal(parseFast(doc), undefined, why);
  const viaSlow = parsePolicyText('a: 1\na: 2\n');
  t.match(
    viaSlow.errors[0]?.message,
    /duplicate key "a" \(first defined on line 1\)/,
    'and yaml gives its message with lines',
  );
});

t.test('the example reads fast, and positions come from yaml on demand', async (t) => {
  t.not(parseFast(leeds), undefined);
  t.ok(agrees(leeds).ok);
  t.ok(agrees(JSON.stringify(JSON.parse(JSON.stringify(parseWithPositions(leeds).value)), null, 2)).ok, 'as JSON too');
  const p = parsePolicyText(leeds);
  const slow = parseWithPositions(leeds);
  for (const path of [['rules', 0, 'ports'], ['subnets', 3, 'cidrs', 0], ['agents'], ['nope', 1]]) {
    t.same(p.locate(path), slow.locate(path), `locate ${path.join('.')}`);
    t.same(p.locate(path, true), slow.locate(path, true), `locate ${path.join('.')} (key)`);
  }
});

t.test('mutated policies: the fast reader never reads something else, nor accepts what yaml refuses', async (t) => {
  // Deterministic: the same mutations on every run.
  let seed = 20261204;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pieces = [
    ':',
    ': ',
    '-',
    '- ',
    '#',
    "'",
    '"',
    '\t',
    '\n',
    ' ',
    '  ',
    '[',
    ']',
    '{',
    '}',
    ',',
    '&a ',
    '*a',
    '!',
    '|',
    '>',
    '?',
    '%',
    '~',
    '0x1',
    '.5',
    'yes',
    '\\',
    '\r\n',
  ];
  const lines = leeds.split('\n');
  const failures: string[] = [];
  let fast = 0;
  const N = 1500;
  for (let i = 0; i < N; i++) {
    let text: string;
    const kind = rand(4);
    if (kind === 0) {
      const at = rand(leeds.length);
      text = leeds.slice(0, at) + leeds.slice(at + 1 + rand(3));
    } else if (kind === 1) {
      const at = rand(leeds.length);
      text = leeds.slice(0, at) + pieces[rand(pieces.length)] + leeds.slice(at);
    } else if (kind === 2) {
      const l = [...lines];
      const at = rand(l.length);
      l.splice(rand(l.length), 0, l[at]!);
      text = l.join('\n');
    } else {
      const l = [...lines];
      const a = rand(l.length);
      const b = rand(l.length);
      [l[a], l[b]] = [l[b]!, l[a]!];
      text = l.join('\n');
    }
    const r = agrees(text);
    if (r.isFast) fast++;
    if (!r.ok) failures.push(`mutation ${i}: ${r.why}`);
  }
  t.same(failures, [], `${N} mutations, ${fast} read fast`);
});
