// `crosslink diagram`: the format asked of the controller (from --format or the file's extension),
// stdout or a file, and bad flags refused before anything is asked.
import t from 'tap';
import yargs from 'yargs';
import type { RemoteIo } from './connection.js';
import { diagramCommand, formatOfFile, runDiagram, type DiagramDeps } from './diagram.js';

function fake(body: unknown) {
  const asked: string[] = [];
  const out: string[] = [];
  const files = new Map<string, string>();
  const deps: DiagramDeps = {
    get: (path) => {
      asked.push(path);
      return Promise.resolve(body);
    },
    out: (s) => out.push(s),
    writeFile: (p, text) => files.set(p, text),
  };
  return { deps, asked, out, files };
}

t.test('format from the flag, else from the file name, else DOT', async (t) => {
  for (const [file, format] of [
    ['overlay.svg', 'svg'],
    ['overlay.SVG', 'svg'],
    ['overlay.mmd', 'mermaid'],
    ['notes.md', 'mermaid'],
    ['overlay.json', 'json'],
    ['overlay.dot', 'dot'],
    ['overlay.gv', 'dot'],
    ['overlay', 'dot'],
  ] as const)
    t.equal(formatOfFile(file), format, file);
});

t.test('stdout, or a file', async (t) => {
  const a = fake('graph "crosslink-overlay" {\n}\n');
  t.equal(await runDiagram({}, a.deps), 0);
  t.same(a.asked, ['/v1/diagram?format=dot']);
  t.same(a.out, ['graph "crosslink-overlay" {\n}\n'], 'the text as the controller sent it');

  const b = fake('<svg/>\n');
  t.equal(await runDiagram({ output: 'x/overlay.svg' }, b.deps), 0);
  t.same(b.asked, ['/v1/diagram?format=svg']);
  t.equal(b.files.get('x/overlay.svg'), '<svg/>\n');
  t.match(b.out.join(''), /^wrote x\/overlay\.svg \(svg, 7 bytes\)\n$/);

  const c = fake({ atMs: 1, boxes: [] });
  t.equal(await runDiagram({ format: 'json', output: 'o.txt' }, c.deps), 0);
  t.same(c.asked, ['/v1/diagram?format=json'], '--format wins over the extension');
  t.equal(c.files.get('o.txt'), '{\n  "atMs": 1,\n  "boxes": []\n}\n', 'JSON pretty-printed');
});

t.test('flags: an unknown format and an empty --output are usage errors', async (t) => {
  const err: string[] = [];
  const io: RemoteIo = { out: () => {}, err: (s) => err.push(s), readFile: () => '', env: {} };
  const parse = (argv: string[]) =>
    yargs(argv)
      .command(diagramCommand(io, () => {}) as never)
      .strict()
      .version(false)
      .fail((msg, e) => {
        throw e ?? new Error(msg);
      })
      .exitProcess(false)
      .parseAsync();
  await t.rejects(async () => parse(['diagram', '--format', 'png']), /Invalid values[\s\S]*format/);
  process.exitCode = 0;
  await parse(['diagram', '--output', ' ']);
  t.equal(process.exitCode, 2);
  t.match(err.join(''), /--output needs a file name/);
  process.exitCode = 0;
  await parse(['diagram']);
  t.equal(process.exitCode, 2, 'no controller given');
  t.match(err.join(''), /missing --controller/);
  process.exitCode = 0;
});
