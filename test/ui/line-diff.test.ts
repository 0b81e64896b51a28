// The side-by-side diff of two policy versions in the web view (controller/ui/web/line-diff.ts).
import t from 'tap';
import fc from 'fast-check';
import { lineDiff, type DiffRow } from '../../controller/ui/web/line-diff.js';

const show = (rows: DiffRow[]) => rows.map((r) => `${r.kind} ${r.left?.line ?? '-'}:${r.right?.line ?? '-'}`);

t.test('table', async (t) => {
  const cases: Array<[string, string, string, string[]]> = [
    ['same', 'a\nb\n', 'a\nb\n', ['same 1:1', 'same 2:2']],
    ['empty to text', '', 'a\n', ['added -:1']],
    ['text to empty', 'a\n', '', ['removed 1:-']],
    ['one line changed', 'a\nb\nc\n', 'a\nB\nc\n', ['same 1:1', 'changed 2:2', 'same 3:3']],
    ['line inserted', 'a\nc\n', 'a\nb\nc\n', ['same 1:1', 'added -:2', 'same 2:3']],
    ['line removed', 'a\nb\nc\n', 'a\nc\n', ['same 1:1', 'removed 2:-', 'same 3:2']],
    [
      'rule added in the middle, port changed later',
      'r1\n  ports: [tcp/443]\nr2\n',
      'r1\n  ports: [tcp/8443]\nrX\nr2\n',
      ['same 1:1', 'changed 2:2', 'added -:3', 'same 3:4'],
    ],
  ];
  for (const [name, a, b, want] of cases) t.same(show(lineDiff(a, b)), want, name);
});

t.test('property: each side reads back in order, and same rows are equal', async (t) => {
  const text = fc
    .array(fc.constantFrom('a', 'b', 'c', 'd', ''), { maxLength: 30 })
    .map((ls) => ls.map((l) => `${l}\n`).join(''));
  fc.assert(
    fc.property(text, text, (a, b) => {
      const rows = lineDiff(a, b);
      const left = rows.flatMap((r) => (r.left ? [r.left.text] : []));
      const right = rows.flatMap((r) => (r.right ? [r.right.text] : []));
      const lines = (s: string) => (s === '' ? [] : s.replace(/\n$/, '').split('\n'));
      return (
        JSON.stringify(left) === JSON.stringify(lines(a)) &&
        JSON.stringify(right) === JSON.stringify(lines(b)) &&
        rows.every((r) => r.kind !== 'same' || r.left!.text === r.right!.text)
      );
    }),
  );
  t.pass('property held');
});
