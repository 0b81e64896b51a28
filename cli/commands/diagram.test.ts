// `crosslink diagram`: the format asked of the controller (from --format or the file's extension),
// stdout or a file, and bad flags refused before anything is asked.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import yargs from 'yargs';
import { startChildController, waitExit } from '../../test/controller/child.js';
import { ApiClient } from './api.js';
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

t.test('against a real controller: the Leeds policy, nobody enrolled yet', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crosslink-diagram-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await startChildController(join(dir, 'data'));
  t.teardown(async () => {
    c.proc.kill('SIGTERM');
    await waitExit(c.proc);
  });
  const api = await ApiClient.connect({ controller: c.url, token: c.adminToken, caFingerprint: c.caFingerprint });
  t.teardown(() => api.close());
  const leeds = readFileSync(new URL('../../examples/leeds.yaml', import.meta.url), 'utf8');
  await api.request('PUT', '/v1/policy', { text: leeds, headers: { 'if-match': '"0"' } });

  const env = { CROSSLINK_CONTROLLER: c.url, CROSSLINK_TOKEN: c.adminToken, CROSSLINK_CA_FINGERPRINT: c.caFingerprint };
  const run = async (argv: string[]) => {
    let out = '';
    let err = '';
    const io: RemoteIo = { out: (x) => (out += x), err: (x) => (err += x), readFile: () => '', env };
    process.exitCode = 0;
    await yargs(argv)
      .command(diagramCommand(io) as never)
      .strict()
      .version(false)
      .exitProcess(false)
      .parseAsync();
    const code = Number(process.exitCode ?? 0);
    process.exitCode = 0;
    return { code, out, err };
  };
  const json = await run(['diagram', '--format', 'json']);
  t.equal(json.code, 0, json.err);
  const m = JSON.parse(json.out) as { policyVersion: number; boxes: { name: string; isEnrolled: boolean }[] };
  t.equal(m.policyVersion, 1);
  t.equal(m.boxes.length, 7, 'every box of the policy');
  t.ok(
    m.boxes.every((b) => !b.isEnrolled),
    'none enrolled yet',
  );
  const file = join(dir, 'overlay.svg');
  const svg = await run(['diagram', '--output', file]);
  t.equal(svg.code, 0, svg.err);
  t.match(svg.out, /^wrote .*overlay\.svg \(svg, \d+ bytes\)/);
  t.match(readFileSync(file, 'utf8'), /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*nhs-shared-hub/);
  const dot = await run(['diagram']);
  t.match(dot.out, /^graph "crosslink-overlay" \{/);
  const bad = await run(['diagram', '--output', join(dir, 'no', 'such', 'dir', 'x.dot')]);
  t.equal(bad.code, 1);
  t.match(bad.err, /cannot write .*x\.dot/);
});
