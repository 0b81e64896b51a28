// renderDot(): the overlay as Graphviz DOT, for connection paperwork (`dot -Tpdf`). PURE and
// deterministic: the model is sorted, and this adds nothing that depends on time or order of maps.
// One cluster per zone group; each box lists its site, underlays and subnets; each link names its
// underlay (or relay) and the rules that permit it. A relayed link is drawn a -- relay -- b, dashed,
// because that is the way its datagrams go; Graphviz places nodes itself (the x/y are for the map).
import { boxesByGroup, drawnRelay, pathText, STATE_COLOUR, STATE_FILL } from './palette.js';
import type { DiagramBox, DiagramLink, DiagramModel } from './types.js';

/** A DOT double-quoted string: only `"` and `\` need escaping; a newline becomes a centred line break. */
export function dotString(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r?\n/g, '\\n')}"`;
}

function attrs(list: Array<[string, string | number]>): string {
  return `[${list.map(([k, v]) => `${k}=${typeof v === 'number' ? v : dotString(v)}`).join(', ')}]`;
}

function boxLines(b: DiagramBox): string {
  const lines = [b.name];
  if (b.site) lines.push(b.site);
  const flags = [b.isRelay ? 'relay' : '', b.isEnrolled ? '' : 'not enrolled'].filter(Boolean);
  lines.push(
    `${b.state}${flags.length > 0 ? ` (${flags.join(', ')})` : ''}; underlays: ${b.underlays.join(', ') || '-'}`,
  );
  for (const s of b.subnets) lines.push(`${s.name} ${s.cidrs.join(' ')}${s.role === 'standby' ? ' (standby)' : ''}`);
  return lines.join('\n');
}

function node(b: DiagramBox, indent: string): string {
  return `${indent}${dotString(b.name)} ${attrs([
    ['label', boxLines(b)],
    ['color', STATE_COLOUR[b.state]],
    ['fillcolor', STATE_FILL[b.state]],
    ['style', b.isEnrolled ? 'rounded,filled' : 'rounded,filled,dashed'],
    ['penwidth', b.isRelay ? 3 : 2],
    ['tooltip', `${b.name}: ${b.state}: ${b.reason}`],
  ])};`;
}

function edges(l: DiagramLink, relay: string | undefined): string[] {
  const label = [pathText(l), ...l.rules].join('\n');
  const common: Array<[string, string | number]> = [
    ['color', STATE_COLOUR[l.state]],
    ['fontcolor', STATE_COLOUR[l.state]],
    ['tooltip', `${l.name}: ${l.state}: ${l.reason}`],
  ];
  if (relay === undefined) {
    const style = l.path === 'none' ? 'dotted' : 'solid';
    return [`  ${dotString(l.a)} -- ${dotString(l.b)} ${attrs([['label', label], ['style', style], ...common])};`];
  }
  // Two edges rather than one chain, so the label is written once, on the first leg.
  return [
    `  ${dotString(l.a)} -- ${dotString(relay)} ${attrs([['label', `${l.a} - ${l.b}\n${label}`], ['style', 'dashed'], ...common])};`,
    `  ${dotString(relay)} -- ${dotString(l.b)} ${attrs([['style', 'dashed'], ...common])};`,
  ];
}

export function renderDot(model: DiagramModel): string {
  const title = `Crosslink overlay, ${model.policyVersion === null ? 'no policy yet' : `policy version ${model.policyVersion}`}`;
  const out = [
    'graph "crosslink-overlay" {',
    `  graph ${attrs([
      ['label', title],
      ['labelloc', 't'],
      ['fontname', 'Helvetica'],
      ['rankdir', 'LR'],
    ])};`,
    `  node ${attrs([
      ['shape', 'box'],
      ['fontname', 'Helvetica'],
      ['fontsize', 10],
    ])};`,
    `  edge ${attrs([
      ['fontname', 'Helvetica'],
      ['fontsize', 9],
    ])};`,
  ];
  const byGroup = boxesByGroup(model.boxes);
  model.groups.forEach((g, i) => {
    out.push(`  subgraph ${dotString(`cluster_${i}`)} {`);
    out.push(
      `    graph ${attrs([
        ['label', g.label],
        ['style', 'filled'],
        ['fillcolor', '#fafafa'],
        ['color', '#9e9e9e'],
      ])};`,
    );
    for (const b of byGroup.get(g.key) ?? []) out.push(node(b, '    '));
    out.push('  }');
  });
  const names = new Set(model.boxes.map((b) => b.name));
  for (const l of model.links) out.push(...edges(l, drawnRelay(l, names)));
  if (model.unserved.length > 0) {
    const text = ['Unserved subnets', ...model.unserved.map((u) => `${u.subnet}: ${u.reason}`)].join('\n');
    out.push(
      `  "crosslink:unserved" ${attrs([
        ['shape', 'note'],
        ['label', text],
        ['color', STATE_COLOUR.down],
      ])};`,
    );
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}
