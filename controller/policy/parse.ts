// Policy text (YAML, or JSON, which is YAML too) -> a plain value plus a way to find the line of any
// path in it, so validation messages can point into the file.
import { LineCounter, parseDocument, isMap, isSeq, isPair, isScalar, type Node, type Document } from 'yaml';
import type { ErrorDetail } from '../../lib/errors.js';

export type PathSegment = string | number;

export interface Position { line: number; column: number }

export interface ParsedText {
  /** The document as plain data (maps -> objects, sequences -> arrays). undefined for an empty file. */
  value: unknown;
  /**
   * Line and column of the node at `path`, or of its deepest existing ancestor. With `isKey`, the
   * position of the map key itself (used for "unknown field" messages).
   */
  locate(path: readonly PathSegment[], isKey?: boolean): Position | undefined;
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
  const lineCounter = new LineCounter();
  // uniqueKeys off: we report duplicate names ourselves, with both lines, and keep going.
  const doc: Document.Parsed = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false, strict: true });
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

  const locate = (path: readonly PathSegment[], isKey = false): Position | undefined => {
    let node: unknown = doc.contents;
    let best: Position | undefined = nodePos(node);
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      const isLast = i === path.length - 1;
      if (isMap(node)) {
        // Last duplicate wins, as in the value.
        let found: unknown;
        for (const item of node.items) if (isPair(item) && keyText(item.key) === String(seg)) found = item;
        if (!found || !isPair(found)) return best;
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
