// The three renderers on Leeds with a made-up health snapshot: golden files (UPDATE_GOLDEN=1
// rewrites them), plus escaping and determinism checks that a golden file would not show.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { compiledInput, leedsPolicy } from './diagram.fixture.js';
import { buildDiagramModel } from './model.js';
import { dotString, renderDot } from './render-dot.js';
import { mermaidIds, mermaidText, renderMermaid } from './render-mermaid.js';
import { renderSvg, xmlEscape } from './render-svg.js';
import type { DiagramModel } from './types.js';

const goldenDir = join(import.meta.dirname, '..', '..', 'test', 'golden', 'diagram');

/** Leeds, one box not enrolled, one down (and its link), one link degraded. */
export function leedsModel(): DiagramModel {
  return buildDiagramModel(
    compiledInput(leedsPolicy(), {
      notEnrolled: ['gp-armley'],
      states: {
        'lcc-civic-hall': 'down',
        'lcc-civic-hall:nhs-shared-hub': 'down',
        'lcc-adult-social-care:lth-sjuh-standby': 'degraded',
      },
    }),
  );
}

const renderers: Array<[string, (m: DiagramModel) => string]> = [
  ['leeds.json', (m) => `${JSON.stringify(m, null, 2)}\n`],
  ['leeds.dot', renderDot],
  ['leeds.svg', renderSvg],
  ['leeds.mmd', renderMermaid],
];

t.test('golden: Leeds in every format', async (t) => {
  const m = leedsModel();
  const isUpdate = process.env.UPDATE_GOLDEN === '1';
  if (isUpdate) mkdirSync(goldenDir, { recursive: true });
  for (const [file, render] of renderers) {
    const path = join(goldenDir, file);
    const text = render(m);
    if (isUpdate) writeFileSync(path, text);
    t.ok(existsSync(path), `${file} exists (run with UPDATE_GOLDEN=1 to create)`);
    if (existsSync(path)) t.equal(text, readFileSync(path, 'utf8'), `${file} matches its golden file`);
    t.equal(render(leedsModel()), text, `${file}: the same input gives the same bytes`);
  }
});

t.test('SVG: relayed links bent through the relay, nothing external', async (t) => {
  const m = leedsModel();
  const svg = renderSvg(m);
  const at = new Map(m.boxes.map((b) => [b.name, b]));
  const [a, r, b] = ['lcc-adult-social-care', 'nhs-shared-hub', 'lth-sjuh'].map((n) => at.get(n)!) as [
    DiagramModel['boxes'][number],
    DiagramModel['boxes'][number],
    DiagramModel['boxes'][number],
  ];
  t.ok(svg.includes(`points="${a.x},${a.y} ${r.x},${r.y} ${b.x},${b.y}"`), 'a -> relay -> b');
  t.notMatch(svg, /href|<script|url\(|@import/, 'no external reference');
  t.equal(svg.match(/<g class="box /g)?.length, m.boxes.length, 'one box each');
});

t.test('hostile text is escaped in every format', async (t) => {
  const m = leedsModel();
  const evil = `a"b<c>&d'#e\\f\nnew`;
  const bad: DiagramModel = {
    ...m,
    boxes: m.boxes.map((b, i) => (i === 0 ? { ...b, site: evil, reason: evil } : b)),
    unserved: [{ subnet: 'x', reason: evil }],
  };
  t.notOk(renderSvg(bad).includes('<c>'), 'svg: no raw tag');
  t.ok(renderSvg(bad).includes('a&quot;b&lt;c&gt;&amp;d&#39;#e'), 'svg: entities');
  t.ok(renderDot(bad).includes('a\\"b<c>&d\'#e\\\\f\\nnew'), 'dot: quote and backslash escaped, newline as \\n');
  const mmd = renderMermaid(bad);
  t.ok(mmd.includes("a#quot;b#lt;c#gt;#38;d'#35;e\\f new"), 'mermaid: entity codes');
  t.equal(xmlEscape('<&>'), '&lt;&amp;&gt;');
  t.equal(dotString('x"y'), '"x\\"y"');
  t.equal(mermaidText('#"'), '#35;#quot;');
});

t.test('mermaid ids: only letters, digits and _, unique', async (t) => {
  const ids = mermaidIds(['a-b', 'a_b', 'a.b', 'end'], 'b_');
  t.same([...ids.values()], ['b_a_b', 'b_a_b_2', 'b_a_b_3', 'b_end']);
});
