// What the three renderers (DOT, SVG, Mermaid) share: state colours and the words for a link's path,
// so a box is the same colour and a link reads the same in every export. PURE.
import type { DiagramBox, DiagramLink, DiagramState } from './types.js';

/** Stroke colours with at least 4.5:1 contrast on white (WCAG AA for text beside them). */
export const STATE_COLOUR: Readonly<Record<DiagramState, string>> = {
  ok: '#1b7e32',
  degraded: '#a15c00',
  down: '#c62828',
  unknown: '#616161',
};

/** Light fills for a box in each state. */
export const STATE_FILL: Readonly<Record<DiagramState, string>> = {
  ok: '#e8f5e9',
  degraded: '#fff3e0',
  down: '#ffebee',
  unknown: '#f5f5f5',
};

export const STATES: readonly DiagramState[] = ['ok', 'degraded', 'down', 'unknown'];

/** "direct over n3-wan", "relayed through nhs-shared-hub (n3-wan | psn-wan)", "no path". */
export function pathText(l: Pick<DiagramLink, 'path' | 'relays' | 'underlays'>): string {
  switch (l.path) {
    case 'direct':
      return l.underlays.length > 0 ? `direct over ${l.underlays[0]}` : 'direct';
    case 'relay': {
      const [first, ...rest] = l.relays;
      const standby = rest.length > 0 ? `, standby ${rest.join(', ')}` : '';
      return `relayed through ${first ?? '?'}${l.underlays.length > 0 ? ` (${l.underlays.join(' | ')})` : ''}${standby}`;
    }
    case 'none':
      return 'no path';
  }
}

/** The relay a link is drawn through, or undefined (direct, no path, or its relay is not on the map). */
export function drawnRelay(l: DiagramLink, boxNames: ReadonlySet<string>): string | undefined {
  const r = l.path === 'relay' ? l.relays[0] : undefined;
  return r !== undefined && boxNames.has(r) ? r : undefined;
}

/** Boxes by the key of the zone group they are drawn in, in the order given. */
export function boxesByGroup(boxes: readonly DiagramBox[]): Map<string, DiagramBox[]> {
  const byGroup = new Map<string, DiagramBox[]>();
  for (const b of boxes) {
    const list = byGroup.get(b.group);
    if (list) list.push(b);
    else byGroup.set(b.group, [b]);
  }
  return byGroup;
}
