// renderMermaid(): the overlay as a Mermaid flowchart, to paste into a wiki page or a Markdown change
// record. PURE and deterministic. One subgraph per zone group; node ids are made from box names
// (Mermaid ids allow letters, digits and _ only) and kept unique; labels are quoted with Mermaid's
// entity codes for the characters that would end or break them. A relayed link goes a -.- relay -.- b.
import { boxesByGroup, drawnRelay, pathText, STATE_COLOUR, STATE_FILL, STATES } from './palette.js';
import type { DiagramBox, DiagramModel } from './types.js';

/** Text inside a Mermaid "quoted" label: `#` first (it starts every entity code), then the rest. */
export function mermaidText(text: string): string {
  return text
    .replace(/#/g, '#35;')
    .replace(/&/g, '#38;')
    .replace(/"/g, '#quot;')
    .replace(/</g, '#lt;')
    .replace(/>/g, '#gt;')
    .replace(/\r?\n/g, ' ');
}

/** Ids for names, unique, deterministic in the order given: "lth-sjuh" -> "b_lth_sjuh". */
export function mermaidIds(names: readonly string[], prefix: string): Map<string, string> {
  const ids = new Map<string, string>();
  const taken = new Set<string>();
  for (const n of names) {
    const base = `${prefix}${n.replace(/[^A-Za-z0-9_]/g, '_')}`;
    let id = base;
    for (let i = 2; taken.has(id); i++) id = `${base}_${i}`;
    taken.add(id);
    ids.set(n, id);
  }
  return ids;
}

function label(b: DiagramBox): string {
  const lines = [b.isRelay ? `${b.name} (relay)` : b.name];
  if (b.site) lines.push(b.site);
  lines.push(`${b.state}; ${b.underlays.join(', ') || 'no underlay'}${b.isEnrolled ? '' : '; not enrolled'}`);
  const subnets = b.subnets.map((s) => (s.role === 'standby' ? `${s.name} (standby)` : s.name));
  if (subnets.length > 0) lines.push(subnets.join(', '));
  return lines.map(mermaidText).join('<br/>');
}

export function renderMermaid(model: DiagramModel): string {
  const title = `Crosslink overlay, ${model.policyVersion === null ? 'no policy yet' : `policy version ${model.policyVersion}`}`;
  const ids = mermaidIds(
    model.boxes.map((b) => b.name),
    'b_',
  );
  // The comment after the diagram type: the type must be what a reader (and Mermaid) meets first.
  const out = ['flowchart LR', `%% ${mermaidText(title)}`];
  const byGroup = boxesByGroup(model.boxes);
  model.groups.forEach((g, i) => {
    out.push(`  subgraph g${i}["${mermaidText(g.label)}"]`);
    for (const b of byGroup.get(g.key) ?? []) out.push(`    ${ids.get(b.name)}["${label(b)}"]`);
    out.push('  end');
  });
  const names = new Set(ids.keys());
  // linkStyle addresses links by their order of definition, counting each leg of a chain.
  const styles: string[] = [];
  let index = 0;
  const leg = (state: keyof typeof STATE_COLOUR, isDashed: boolean) => {
    styles.push(
      `  linkStyle ${index++} stroke:${STATE_COLOUR[state]},stroke-width:2px${isDashed ? ',stroke-dasharray:6 4' : ''}`,
    );
  };
  for (const l of model.links) {
    const a = ids.get(l.a);
    const b = ids.get(l.b);
    if (a === undefined || b === undefined) continue;
    const text = mermaidText([pathText(l), ...l.rules].join('; '));
    const relay = drawnRelay(l, names);
    if (relay === undefined) {
      out.push(`  ${a} ${l.path === 'none' ? '-.-' : '---'}|"${text}"| ${b}`);
      leg(l.state, l.path === 'none');
    } else {
      const r = ids.get(relay)!;
      out.push(`  ${a} -.-|"${mermaidText(`${l.a} - ${l.b}: `)}${text}"| ${r}`);
      out.push(`  ${r} -.- ${b}`);
      leg(l.state, true);
      leg(l.state, true);
    }
  }
  if (model.unserved.length > 0) {
    const text = model.unserved.map((u) => mermaidText(`${u.subnet}: ${u.reason}`)).join('<br/>');
    out.push(`  unserved_subnets["Unserved subnets<br/>${text}"]`);
  }
  for (const s of STATES) out.push(`  classDef ${s} fill:${STATE_FILL[s]},stroke:${STATE_COLOUR[s]},stroke-width:2px`);
  for (const s of STATES) {
    const members = model.boxes.filter((b) => b.state === s).map((b) => ids.get(b.name)!);
    if (members.length > 0) out.push(`  class ${members.join(',')} ${s}`);
  }
  out.push(...styles);
  return `${out.join('\n')}\n`;
}
