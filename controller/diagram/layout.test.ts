// layoutDiagram(): deterministic columns per zone group, a grid inside each, boxes inside their
// group's rectangle and never on top of each other, at any size.
import t, { type Test } from 'tap';
import { compiledInput, generatedPolicy, leedsPolicy } from './diagram.fixture.js';
import { BOX_HEIGHT, BOX_WIDTH, layoutDiagram, rowsFor } from './layout.js';
import { buildDiagramModel } from './model.js';
import type { DiagramModel } from './types.js';

t.test('rows per column: a canvas about 16:10 whatever the count', async (t) => {
  for (const [boxes, rows] of [
    [0, 1],
    [1, 2],
    [7, 4],
    [100, 14],
    [1000, 44],
    [10000, 139],
  ] as const)
    t.equal(rowsFor(boxes), rows, `${boxes} boxes`);
});

function checkPlacement(t: Test, m: DiagramModel): void {
  const groups = new Map(m.groups.map((g) => [g.key, g]));
  let isInside = true;
  for (const b of m.boxes) {
    const g = groups.get(b.group)!;
    isInside &&=
      b.x - BOX_WIDTH / 2 >= g.x &&
      b.x + BOX_WIDTH / 2 <= g.x + g.width &&
      b.y - BOX_HEIGHT / 2 >= g.y &&
      b.y + BOX_HEIGHT / 2 <= g.y + g.height;
  }
  t.ok(isInside, 'every box inside its group');
  t.equal(new Set(m.boxes.map((b) => `${b.x},${b.y}`)).size, m.boxes.length, 'no two boxes at one place');
  for (let i = 1; i < m.groups.length; i++)
    t.ok(m.groups[i]!.x >= m.groups[i - 1]!.x + m.groups[i - 1]!.width, `${m.groups[i]!.key} right of the one before`);
  t.ok(
    m.groups.every((g) => g.x + g.width <= m.width && g.y + g.height <= m.height),
    'canvas holds every group',
  );
}

t.test('Leeds: three columns, one box wide each', async (t) => {
  const m = buildDiagramModel(compiledInput(leedsPolicy()));
  checkPlacement(t, m);
  t.same(
    m.groups.map((g) => [g.key, g.width]),
    [
      ['n3', 192],
      ['n3+psn', 192],
      ['psn', 192],
    ],
  );
  const names = (key: string) =>
    m.boxes
      .filter((b) => b.group === key)
      .sort((a, b) => a.y - b.y)
      .map((b) => b.name);
  t.same(names('n3'), ['gp-armley', 'gp-chapeltown', 'lth-sjuh', 'lth-sjuh-standby'], 'sorted by name, top down');
  t.same(layoutDiagram(m), m, 'laying out again gives the same positions');
});

t.test('1,000 boxes: a grid per column, placed in O(n)', async (t) => {
  const m = buildDiagramModel(compiledInput(generatedPolicy(1000)));
  checkPlacement(t, m);
  const wide = m.groups.filter((g) => g.width > BOX_WIDTH * 3);
  t.ok(wide.length >= 6, 'the big columns have sub-columns');
  t.ok(m.height < 3000, `height ${m.height} stays near a screen's proportion (width ${m.width})`);
});

t.test('empty model: a small canvas, no groups', async (t) => {
  const m = layoutDiagram({
    atMs: 0,
    policyVersion: null,
    zones: [],
    underlays: [],
    groups: [],
    boxes: [],
    links: [],
    unserved: [],
    width: 0,
    height: 0,
  });
  t.same(m.groups, []);
  t.ok(m.width > 0 && m.height > 0);
});
