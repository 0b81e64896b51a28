// layoutDiagram(): where each box and zone group sits on the canvas. PURE and deterministic: the same
// model gives the same positions, so the map does not jump between refreshes and golden files hold.
//
// Columns are zone groups (boxes in exactly the same zones), ordered by the mean policy index of their
// zones, so Leeds reads N3 | N3 + PSN | PSN left to right; boxes in no zone come last. Inside a
// column, boxes sorted by name fill a grid top to bottom, then left to right. Every column has the
// same number of rows, chosen so that the whole canvas is about as wide as a screen is for its height
// (16:10): a column of 1,000 boxes becomes ~20 sub-columns, not one 44,000-unit strip. O(n) in
// boxes after the sort by name (the model is sorted already).
import { boxesByGroup } from './palette.js';
import type { DiagramBox, DiagramGroup, DiagramModel } from './types.js';

export const BOX_WIDTH = 160;
export const BOX_HEIGHT = 44;
/** Space between boxes across and down. */
export const GAP_X = 24;
export const GAP_Y = 16;
/** Inside a group rectangle, around its boxes; and the band at its top for the heading. */
export const GROUP_PADDING = 16;
export const HEADING_HEIGHT = 32;
/** Between group rectangles, and around the whole canvas. */
export const GROUP_GAP = 80;
export const MARGIN = 24;
/** Width / height the canvas aims at. */
const ASPECT = 16 / 10;

/** Mean policy index of the zones; boxes in no zone sort after every zone. */
function meanIndex(zones: readonly string[], order: ReadonlyMap<string, number>): number {
  if (zones.length === 0) return Number.POSITIVE_INFINITY;
  let sum = 0;
  for (const z of zones) sum += order.get(z) ?? order.size;
  return sum / zones.length;
}

/** "n3" -> "N3", ["n3", "psn"] -> "N3 + PSN", [] -> "no zone". */
export function groupLabel(zones: readonly string[]): string {
  return zones.length === 0 ? 'no zone' : zones.map((z) => z.toUpperCase()).join(' + ');
}

/** Rows per column: with N boxes in R rows the grid is ~N/R columns, so width/height is about
 *  (N/R * stepX) / (R * stepY); solving for ASPECT gives R. */
export function rowsFor(boxCount: number): number {
  const stepX = BOX_WIDTH + GAP_X;
  const stepY = BOX_HEIGHT + GAP_Y;
  return Math.max(1, Math.ceil(Math.sqrt((boxCount * stepX) / (ASPECT * stepY))));
}

/** The model with x/y on every box, its groups' rectangles and the canvas size. */
export function layoutDiagram(model: DiagramModel): DiagramModel {
  const order = new Map(model.zones.map((z, i) => [z.name, i]));
  const members = boxesByGroup(model.boxes);
  const zonesOf = new Map([...members].map(([key, boxes]) => [key, boxes[0]!.zones]));
  const keys = [...members.keys()].sort((x, y) => {
    const d = meanIndex(zonesOf.get(x)!, order) - meanIndex(zonesOf.get(y)!, order);
    // Infinity - Infinity is NaN: both in no zone (only "" can be), so equal.
    if (d < 0) return -1;
    if (d > 0) return 1;
    return x < y ? -1 : x > y ? 1 : 0;
  });

  const rows = rowsFor(model.boxes.length);
  const groups: DiagramGroup[] = [];
  const boxes: DiagramBox[] = [];
  let left = MARGIN;
  let height = 0;
  for (const key of keys) {
    const list = [...members.get(key)!].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const groupRows = Math.min(rows, list.length);
    const cols = Math.ceil(list.length / groupRows);
    const width = Math.max(
      cols * BOX_WIDTH + (cols - 1) * GAP_X + 2 * GROUP_PADDING,
      // Wide enough for its heading.
      BOX_WIDTH + 2 * GROUP_PADDING,
    );
    const groupHeight = HEADING_HEIGHT + groupRows * BOX_HEIGHT + (groupRows - 1) * GAP_Y + 2 * GROUP_PADDING;
    const zones = zonesOf.get(key)!;
    groups.push({
      key,
      label: groupLabel(zones),
      zones: [...zones],
      x: left,
      y: MARGIN,
      width,
      height: groupHeight,
    });
    list.forEach((b, i) => {
      const col = Math.floor(i / groupRows);
      const row = i % groupRows;
      boxes.push({
        ...b,
        x: left + GROUP_PADDING + col * (BOX_WIDTH + GAP_X) + BOX_WIDTH / 2,
        y: MARGIN + HEADING_HEIGHT + GROUP_PADDING + row * (BOX_HEIGHT + GAP_Y) + BOX_HEIGHT / 2,
      });
    });
    left += width + GROUP_GAP;
    height = Math.max(height, groupHeight);
  }
  boxes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const width = keys.length === 0 ? 2 * MARGIN + BOX_WIDTH : left - GROUP_GAP + MARGIN;
  return { ...model, groups, boxes, width, height: 2 * MARGIN + (keys.length === 0 ? BOX_HEIGHT : height) };
}
