// The diagram at 1,000 boxes and ~3,000 links: model (buildDiagramModel, layout included), layout
// alone, and each renderer; median and worst of the runs after one warm-up. A check that the map
// stays far below its 1 s render budget on the server side; figures go in the report, not a test.
//
//   node --import ./bench/register.js bench/diagram.ts [--boxes 1000 --runs 15]
import { performance } from 'node:perf_hooks';
import { compiledInput, generatedPolicy } from '../controller/diagram/diagram.fixture.js';
import { layoutDiagram } from '../controller/diagram/layout.js';
import { buildDiagramModel } from '../controller/diagram/model.js';
import { renderDot } from '../controller/diagram/render-dot.js';
import { renderMermaid } from '../controller/diagram/render-mermaid.js';
import { renderSvg } from '../controller/diagram/render-svg.js';
import { numberArg } from './args.js';

const BOXES = numberArg('boxes', 1000);
const RUNS = numberArg('runs', 15);

const input = compiledInput(generatedPolicy(BOXES, [1, 7, 31, 97]));
const model = buildDiagramModel(input);

function time(name: string, fn: () => unknown): void {
  fn();
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  console.log(`${name.padEnd(16)} median ${ms[ms.length >> 1]!.toFixed(2)} ms, worst ${ms.at(-1)!.toFixed(2)} ms`);
}

console.log(
  `${model.boxes.length} boxes, ${model.links.length} links, ${model.groups.length} groups, canvas ${model.width}x${model.height}`,
);
time('model+layout', () => buildDiagramModel(input));
time('layout', () => layoutDiagram(model));
time('svg', () => renderSvg(model));
time('dot', () => renderDot(model));
time('mermaid', () => renderMermaid(model));
time('json', () => JSON.stringify(model));
console.log(
  `sizes: svg ${renderSvg(model).length} B, dot ${renderDot(model).length} B, json ${JSON.stringify(model).length} B`,
);
