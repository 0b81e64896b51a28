// The overlay as a map: zone groups as columns (N3 | both | PSN), boxes coloured by health, links
// between boxes with a permitted flow (relayed ones drawn through their relay, dashed). Positions come
// from the server (controller/diagram/layout.ts); this only draws. Boxes are buttons: click, or
// Tab to one and press Enter, to open its details; links open from a click or from a box's details.
import { useMemo, useState } from 'preact/hooks';
import { boxesByGroup } from '../../diagram/palette.js';
import type { DiagramBox, DiagramLink, DiagramModel } from '../../diagram/types.js';

export type Selection = { kind: 'box'; name: string } | { kind: 'link'; name: string } | null;

interface Props {
  model: DiagramModel;
  selection: Selection;
  onSelect: (s: Selection) => void;
}

/** Box size in canvas units: at most 160 x 44, smaller where the layout packs boxes closer. */
export function boxSize(model: DiagramModel): { w: number; h: number } {
  let dx = Infinity;
  let dy = Infinity;
  for (const boxes of boxesByGroup(model.boxes).values())
    for (let i = 1; i < boxes.length; i++) {
      const p = boxes[i - 1]!;
      const q = boxes[i]!;
      const ddx = Math.abs(p.x - q.x);
      const ddy = Math.abs(p.y - q.y);
      if (ddx > 1 && ddx < dx) dx = ddx;
      if (ddy > 1 && ddy < dy) dy = ddy;
    }
  return { w: Math.min(160, dx * 0.9), h: Math.min(44, dy * 0.8) };
}

export function MapView({ model, selection, onSelect }: Props) {
  const [scale, setScale] = useState(1);
  const byName = useMemo(() => new Map(model.boxes.map((b) => [b.name, b])), [model]);
  const size = useMemo(() => boxSize(model), [model]);
  const isSelectedBox = (n: string) => selection?.kind === 'box' && selection.name === n;
  const isSelectedLink = (n: string) => selection?.kind === 'link' && selection.name === n;
  const linked =
    selection?.kind === 'box'
      ? new Set(model.links.filter((l) => l.a === selection.name || l.b === selection.name).map((l) => l.name))
      : null;
  return (
    <section class="map" aria-label="Overlay map">
      <div class="toolbar">
        <button type="button" onClick={() => setScale((s) => Math.max(0.1, s / 1.25))} aria-label="Zoom out">
          −
        </button>
        <button type="button" onClick={() => setScale(1)}>
          {Math.round(scale * 100)} %
        </button>
        <button type="button" onClick={() => setScale((s) => Math.min(4, s * 1.25))} aria-label="Zoom in">
          +
        </button>
        <Legend />
        <span class="spacer" />
        <a class="button" href="/v1/diagram?format=svg&download=true" download>
          Download SVG
        </a>
        <a class="button" href="/v1/diagram?format=dot&download=true" download>
          DOT
        </a>
        <a class="button" href="/v1/diagram?format=mermaid&download=true" download>
          Mermaid
        </a>
      </div>
      <div class="canvas">
        <svg
          width={model.width * scale}
          height={model.height * scale}
          viewBox={`0 0 ${model.width} ${model.height}`}
          role="img"
          aria-label={`${model.boxes.length} boxes, ${model.links.length} links`}
        >
          {model.groups.map((g) => (
            <g class="group" key={g.key}>
              <rect x={g.x} y={g.y} width={g.width} height={g.height} rx={8} />
              <text x={g.x + 12} y={g.y + 22} class="group-label">
                {g.label}
              </text>
            </g>
          ))}
          <g class="links">
            {model.links.map((l) => (
              <LinkLine
                key={l.name}
                link={l}
                boxWidth={size.w}
                byName={byName}
                isSelected={isSelectedLink(l.name)}
                isDimmed={linked !== null && !linked.has(l.name)}
                onSelect={() => onSelect({ kind: 'link', name: l.name })}
              />
            ))}
          </g>
          <g class="boxes">
            {model.boxes.map((b) => (
              <BoxNode
                key={b.name}
                box={b}
                w={size.w}
                h={size.h}
                isSelected={isSelectedBox(b.name)}
                onSelect={() => onSelect({ kind: 'box', name: b.name })}
              />
            ))}
          </g>
        </svg>
      </div>
    </section>
  );
}

function Legend() {
  return (
    <span class="legend" aria-label="Legend">
      {(['ok', 'degraded', 'down', 'unknown'] as const).map((s) => (
        <span key={s} class={`chip state-${s}`}>
          {s}
        </span>
      ))}
      <span class="chip relayed">relayed (dashed)</span>
    </span>
  );
}

function BoxNode(p: { box: DiagramBox; w: number; h: number; isSelected: boolean; onSelect: () => void }) {
  const { box: b, w, h } = p;
  const label = `${b.name}: ${b.state}${b.isRelay ? ', relay' : ''}${b.isEnrolled ? '' : ', not enrolled'}`;
  return (
    <g
      class={`box state-${b.state}${p.isSelected ? ' selected' : ''}${b.isEnrolled ? '' : ' absent'}`}
      transform={`translate(${b.x - w / 2},${b.y - h / 2})`}
      // Lower case: SVG attributes are case-sensitive, and "tabIndex" would leave the box unfocusable.
      tabindex={0}
      role="button"
      aria-label={label}
      data-box={b.name}
      data-state={b.state}
      onClick={p.onSelect}
      onKeyDown={(e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          p.onSelect();
        }
      }}
    >
      <title>{`${label}${b.reason ? ` — ${b.reason}` : ''}`}</title>
      <rect width={w} height={h} rx={6} />
      <text x={8} y={h * 0.42} class="box-name">
        {b.isRelay ? `⇄ ${b.name}` : b.name}
      </text>
      <text x={8} y={h * 0.82} class="box-state">
        {b.state}
        {b.subnets.length ? ` · ${b.subnets.filter((s) => s.role === 'serving').length} subnet(s)` : ''}
      </text>
    </g>
  );
}

/**
 * One leg of a link. Boxes in one column sit on one vertical line, so a straight leg between two
 * of them would run through the boxes between: it leaves from the boxes' right edges and bends
 * out, further the further apart they are.
 */
function segment(from: { x: number; y: number }, to: { x: number; y: number }, boxWidth: number): string {
  if (Math.abs(from.x - to.x) > 1) return `M${from.x},${from.y} L${to.x},${to.y}`;
  const x = from.x + boxWidth / 2;
  const bend = Math.min(boxWidth, 12 + Math.abs(to.y - from.y) * 0.3);
  return `M${x},${from.y} Q${x + bend},${(from.y + to.y) / 2} ${x},${to.y}`;
}

function LinkLine(p: {
  link: DiagramLink;
  boxWidth: number;
  byName: Map<string, DiagramBox>;
  isSelected: boolean;
  isDimmed: boolean;
  onSelect: () => void;
}) {
  const { link: l, byName } = p;
  const a = byName.get(l.a);
  const b = byName.get(l.b);
  if (!a || !b) return null;
  const relay = l.path === 'relay' ? byName.get(l.relays[0] ?? '') : undefined;
  const points = relay ? [a, relay, b] : [a, b];
  const d = points
    .slice(1)
    .map((q, i) => segment(points[i]!, q, p.boxWidth))
    .join(' ');
  return (
    <path
      d={d}
      class={`link state-${l.state}${relay ? ' relayed' : ''}${l.path === 'none' ? ' nopath' : ''}${
        p.isSelected ? ' selected' : ''
      }${p.isDimmed ? ' dimmed' : ''}`}
      data-link={l.name}
      data-state={l.state}
      onClick={p.onSelect}
    >
      <title>{`${l.a} ⇄ ${l.b}: ${l.state}${relay ? ` via ${relay.name}` : ''}${l.reason ? ` — ${l.reason}` : ''}`}</title>
    </path>
  );
}
