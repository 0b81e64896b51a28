// Policy text (YAML, or JSON, which is YAML too) -> a plain value plus a way to find the line of any
// path in it, so validation messages can point into the file.
//
// Two parsers, one answer. `yaml` composes a full document with the position of every node: what
// messages that point into the file need, and ~11x slower than js-yaml (3.6 of the 6.7 s that
// `policy check` of a 10,000-box policy took). So a document is first read with js-yaml, which
// builds plain values only and refuses (throws) whatever it does not take exactly as `yaml` would:
// syntax errors, duplicate keys, unknown tags, aliases (also the alias-bomb guard), complex keys,
// more than one document. Those, an empty file and a `%` directive go to `yaml`, whose messages
// have lines. Positions are looked up only when a message needs one: the first locate() parses
// the text with `yaml` once. parse.test.ts holds the two equal over a corpus of scalars and
// documents and over mutated policies.
import { load as fastLoad, CORE_SCHEMA } from 'js-yaml';
import {
  LineCounter,
  parseDocument,
  isMap,
  isSeq,
  isPair,
  isScalar,
  type Node,
  type Document,
  type Pair,
  type YAMLMap,
} from 'yaml';
import type { ErrorDetail } from '../../lib/errors.js';

export type PathSegment = string | number;

export interface Position {
  line: number;
  column: number;
}

export interface ParsedText {
  /** The document as plain data (maps -> objects, sequences -> arrays). undefined for an empty file. */
  value: unknown;
  /**
   * Line and column of the node at `path`, or of its deepest existing ancestor. With `isKey`, the
   * position of the map key itself (used for "unknown field" messages).
   */
  locate: (path: readonly PathSegment[], isKey?: boolean) => Position | undefined;
  /** Syntax errors and duplicate keys. Non-empty: `value` should not be trusted. */
  errors: ErrorDetail[];
}

/** "rules[2].ports[0]" */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

function keyText(key: unknown): string {
  if (isScalar(key)) return String(key.value);
  return String(key);
}

export function parsePolicyText(text: string): ParsedText {
  const fast = parseFast(text);
  if (fast === undefined) return parseWithPositions(text);
  let positioned: ParsedText | undefined;
  return {
    value: fast.value,
    errors: [],
    locate: (path, isKey) => (positioned ??= parseWithPositions(text)).locate(path, isKey),
  };
}

/** The value as js-yaml reads it, or undefined when `yaml` must read it (see the top). */
export function parseFast(text: string): { value: unknown } | undefined {
  // A %YAML 1.1 directive changes the schema for `yaml` only; explicit core tags (`!!float 1`) are
  // resolved differently by the two.
  if (/^%/m.test(text) || text.includes('!!')) return undefined;
  let value: unknown;
  try {
    value = fastLoad(text, { schema: CORE_SCHEMA, maxAliases: 0 });
  } catch {
    return undefined;
  }
  return readsAlike(value) ? { value } : undefined;
}

const EXP_FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/;

/**
 * False where js-yaml's value may differ from `yaml`'s (found by parse.test.ts): a null key (`~:`,
 * `null:`) is "null" to js-yaml and "" to yaml, and a float too large for a double (`1e400`) stays
 * a string for js-yaml and is Infinity for yaml. A key "null" or a string like 1e400 is read by
 * `yaml` instead: slower, never different.
 */
function readsAlike(root: unknown): boolean {
  const stack: unknown[] = [root];
  const isOdd = (s: string): boolean => EXP_FLOAT.test(s) && !Number.isFinite(Number.parseFloat(s));
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (isOdd(v)) return false;
    } else if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'null' || isOdd(k)) return false;
        stack.push(x);
      }
    }
  }
  return true;
}

/** The document read with `yaml`: every node's position, and errors with lines. */
export function parseWithPositions(text: string): ParsedText {
  const lineCounter = new LineCounter();
  // uniqueKeys off: we report duplicate names ourselves, with both lines, and keep going.
  const doc: Document.Parsed = parseDocument(text, {
    lineCounter,
    uniqueKeys: false,
    prettyErrors: false,
    strict: true,
  });
  const pos = (offset: number): Position => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  const errors: ErrorDetail[] = [];
  for (const e of doc.errors) {
    const p = pos(e.pos[0]);
    errors.push({ path: '', line: p.line, column: p.column, message: `syntax: ${e.message.split('\n')[0]}` });
  }

  // Duplicate keys anywhere in the document.
  const walk = (node: unknown, path: PathSegment[]): void => {
    if (isMap(node)) {
      const seen = new Map<string, number>();
      for (const item of node.items) {
        const k = keyText(item.key);
        const kNode = item.key as Node | null;
        const line = kNode?.range ? pos(kNode.range[0]) : undefined;
        const first = seen.get(k);
        if (first !== undefined) {
          errors.push({
            path: formatPath([...path, k]),
            line: line?.line,
            column: line?.column,
            message: `duplicate key "${k}" (first defined on line ${first})`,
          });
        } else {
          seen.set(k, line?.line ?? 0);
        }
        walk(item.value, [...path, k]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    }
  };
  if (errors.length === 0) walk(doc.contents, []);

  let value: unknown = undefined;
  if (doc.errors.length === 0) {
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      errors.push({ path: '', message: `syntax: ${(e as Error).message}` });
    }
  }

  // Each map's pairs by key, built on the first look into it: a scan per lookup made 10,000
  // errors in a 10,000-subnet map 50 million key comparisons (2 s).
  const indexes = new WeakMap<object, Map<string, Pair>>();
  const pairAt = (map: YAMLMap, key: string): Pair | undefined => {
    let index = indexes.get(map);
    if (!index) {
      index = new Map();
      // Last duplicate wins, as in the value.
      for (const item of map.items) if (isPair(item)) index.set(keyText(item.key), item);
      indexes.set(map, index);
    }
    return index.get(key);
  };

  const locate = (path: readonly PathSegment[], isKey = false): Position | undefined => {
    let node: unknown = doc.contents;
    let best: Position | undefined = nodePos(node);
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      const isLast = i === path.length - 1;
      if (isMap(node)) {
        const found = pairAt(node, String(seg));
        if (!found) return best;
        if (isLast && isKey) return nodePos(found.key) ?? best;
        const v = found.value;
        node = v;
        best = nodePos(v) ?? nodePos(found.key) ?? best;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg];
        if (item === undefined) return best;
        node = item;
        best = nodePos(item) ?? best;
      } else {
        return best;
      }
    }
    return best;
  };
  function nodePos(node: unknown): Position | undefined {
    const n = node as Node | null | undefined;
    if (!n || !n.range) return undefined;
    return pos(n.range[0]);
  }

  return { value, locate, errors };
}
