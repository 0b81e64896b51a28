// renderSvg(): the map as one standalone SVG file (the download button, `crosslink diagram --format
// svg`), drawn at the positions layout.ts gave. PURE and deterministic. Nothing external: no fonts,
// stylesheets, scripts or links; every text is escaped. Hovering a box or a link shows its full
// details (<title>), since the box itself only has room for three short lines.
import { BOX_HEIGHT, BOX_WIDTH } from './layout.js';
import { drawnRelay, pathText, STATE_COLOUR, STATE_FILL, STATES } from './palette.js';
import type { DiagramBox, DiagramLink, DiagramModel } from './types.js';

const LEGEND_LINE = 18;
/** Characters that fit a box line at its font size (about 6.2 and 5.2 units a character). */
const NAME_CHARS = 24;
const SMALL_CHARS = 30;

export function xmlEscape(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}\u2026`;
}

function boxTitle(b: DiagramBox): string {
  const lines = [
    `${b.name}${b.site ? ` (${b.site})` : ''}`,
    `${b.state}: ${b.reason}`,
    `zones: ${b.zones.join(', ') || '-'}; underlays: ${b.underlays.join(', ') || '-'}`,
  ];
  if (b.isRelay) lines.push('relay');
  if (!b.isEnrolled) lines.push('not enrolled');
  else if (!b.isConnected) lines.push('config stream not connected');
  for (const s of b.subnets) lines.push(`${s.role} ${s.name} ${s.cidrs.join(' ')}`);
  return lines.join('\n');
}

function box(b: DiagramBox): string {
  const left = b.x - BOX_WIDTH / 2;
  const top = b.y - BOX_HEIGHT / 2;
  const dash = b.isEnrolled ? '' : ' stroke-dasharray="5 3"';
  const subnets = b.subnets.map((s) => (s.role === 'standby' ? `(${s.name})` : s.name)).join(', ');
  const second = b.site || `${b.state}: ${b.reason}`;
  return [
    `<g class="box state-${b.state}">`,
    `<title>${xmlEscape(boxTitle(b))}</title>`,
    `<rect x="${left}" y="${top}" width="${BOX_WIDTH}" height="${BOX_HEIGHT}" rx="6" fill="${STATE_FILL[b.state]}" stroke="${STATE_COLOUR[b.state]}" stroke-width="${b.isRelay ? 4 : 2}"${dash}/>`,
    `<text x="${left + 8}" y="${top + 14}" font-size="11" font-weight="bold" fill="#212121">${xmlEscape(clip(`${b.name}${b.isRelay ? ' \u21c4' : ''}`, NAME_CHARS))}</text>`,
    `<text x="${left + 8}" y="${top + 27}" font-size="9" fill="#424242">${xmlEscape(clip(second, SMALL_CHARS))}</text>`,
    `<text x="${left + 8}" y="${top + 39}" font-size="9" fill="#424242">${xmlEscape(clip(subnets || '-', SMALL_CHARS))}</text>`,
    '</g>',
  ].join('');
}

function link(l: DiagramLink, at: ReadonlyMap<string, DiagramBox>, relay: string | undefined): string {
  const a = at.get(l.a);
  const b = at.get(l.b);
  if (!a || !b) return '';
  const r = relay === undefined ? undefined : at.get(relay);
  const dash = l.path === 'relay' ? ' stroke-dasharray="8 4"' : l.path === 'none' ? ' stroke-dasharray="2 4"' : '';
  const title = [`${l.name}: ${l.state}: ${l.reason}`, pathText(l), ...l.rules.map((x) => `rule ${x}`)].join('\n');
  const paint = `class="link state-${l.state}" fill="none" stroke="${STATE_COLOUR[l.state]}" stroke-width="2"${dash}`;
  if (!r && a.x === b.x) {
    // Same sub-column: a straight line would run under the boxes between them; arc out to the right,
    // further for boxes further apart, so the arcs of one column do not lie on each other.
    const cx = a.x + BOX_WIDTH / 2 + 16 + Math.abs(b.y - a.y) / 4;
    return `<path ${paint} d="M${a.x + BOX_WIDTH / 2},${a.y} Q${cx},${(a.y + b.y) / 2} ${b.x + BOX_WIDTH / 2},${b.y}"><title>${xmlEscape(title)}</title></path>`;
  }
  const points = [a, ...(r ? [r] : []), b].map((p) => `${p.x},${p.y}`).join(' ');
  return `<polyline ${paint} points="${points}"><title>${xmlEscape(title)}</title></polyline>`;
}

function legend(model: DiagramModel, top: number): string[] {
  const out: string[] = [];
  let x = 24;
  const y = top + 14;
  for (const s of STATES) {
    out.push(
      `<rect x="${x}" y="${y - 10}" width="14" height="14" rx="3" fill="${STATE_FILL[s]}" stroke="${STATE_COLOUR[s]}" stroke-width="2"/>`,
      `<text x="${x + 20}" y="${y + 1}">${s}</text>`,
    );
    x += 90;
  }
  out.push(
    `<line x1="${x}" y1="${y - 3}" x2="${x + 40}" y2="${y - 3}" stroke="#616161" stroke-width="2"/>`,
    `<text x="${x + 46}" y="${y + 1}">direct</text>`,
    `<line x1="${x + 100}" y1="${y - 3}" x2="${x + 140}" y2="${y - 3}" stroke="#616161" stroke-width="2" stroke-dasharray="8 4"/>`,
    `<text x="${x + 146}" y="${y + 1}">relayed, through the relay \u21c4</text>`,
    `<rect x="${x + 330}" y="${y - 10}" width="28" height="14" rx="3" fill="#ffffff" stroke="#616161" stroke-width="2" stroke-dasharray="5 3"/>`,
    `<text x="${x + 364}" y="${y + 1}">not enrolled</text>`,
  );
  model.unserved.forEach((u, i) => {
    out.push(
      `<text x="24" y="${y + LEGEND_LINE * (i + 1) + 1}" fill="${STATE_COLOUR.down}">${xmlEscape(`unserved: ${u.subnet}: ${u.reason}`)}</text>`,
    );
  });
  return out;
}

export function renderSvg(model: DiagramModel): string {
  const legendHeight = LEGEND_LINE * (2 + model.unserved.length);
  const width = Math.max(model.width, 840);
  const height = model.height + legendHeight;
  const title = `Crosslink overlay, ${model.policyVersion === null ? 'no policy yet' : `policy version ${model.policyVersion}`}`;
  const at = new Map(model.boxes.map((b) => [b.name, b]));
  const names = new Set(at.keys());
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family="sans-serif" font-size="12" role="img" aria-label="${xmlEscape(title)}">`,
    `<title>${xmlEscape(title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
  ];
  for (const g of model.groups) {
    out.push(
      `<g class="group"><rect x="${g.x}" y="${g.y}" width="${g.width}" height="${g.height}" rx="8" fill="#fafafa" stroke="#9e9e9e"/>` +
        `<text x="${g.x + 12}" y="${g.y + 21}" font-size="14" font-weight="bold" fill="#212121">${xmlEscape(g.label)}</text></g>`,
    );
  }
  // Links under the boxes, so a line never hides a name.
  for (const l of model.links) {
    const line = link(l, at, drawnRelay(l, names));
    if (line) out.push(line);
  }
  for (const b of model.boxes) out.push(box(b));
  out.push(...legend(model, model.height));
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
