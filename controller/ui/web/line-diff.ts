// A line diff of two texts for the side-by-side view of two policy versions: rows of (left, right)
// where each side is a line or a gap, marked same / removed / added / changed. Longest common
// subsequence over lines after trimming the common head and tail; policy documents are a few
// hundred lines, and past MAX_CELLS the middle is shown as one changed block rather than
// spending seconds. Pure.

export interface DiffRow {
  kind: 'same' | 'removed' | 'added' | 'changed';
  left: { line: number; text: string } | null;
  right: { line: number; text: string } | null;
}

const MAX_CELLS = 4_000_000;

export function lineDiff(a: string, b: string): DiffRow[] {
  const A = splitLines(a);
  const B = splitLines(b);
  let head = 0;
  while (head < A.length && head < B.length && A[head] === B[head]) head++;
  let tail = 0;
  while (tail < A.length - head && tail < B.length - head && A[A.length - 1 - tail] === B[B.length - 1 - tail]) tail++;
  const rows: DiffRow[] = [];
  for (let i = 0; i < head; i++) rows.push(same(A, i, i));
  const a0 = head;
  const b0 = head;
  const n = A.length - head - tail;
  const m = B.length - head - tail;
  const ops = n * m > MAX_CELLS ? blockOps(n, m) : lcsOps(A.slice(a0, a0 + n), B.slice(b0, b0 + m));
  pairUp(ops, A, B, a0, b0, rows);
  for (let k = 0; k < tail; k++) rows.push(same(A, A.length - tail + k, B.length - tail + k));
  return rows;
}

function splitLines(s: string): string[] {
  if (s === '') return [];
  const lines = s.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

function same(A: string[], i: number, j: number): DiffRow {
  return { kind: 'same', left: { line: i + 1, text: A[i]! }, right: { line: j + 1, text: A[i]! } };
}

type Op = '=' | '-' | '+';

function lcsOps(A: string[], B: string[]): Op[] {
  const n = A.length;
  const m = B.length;
  // lengths[i][j]: LCS length of A[i..] and B[j..], in one typed array.
  const w = m + 1;
  const L = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      L[i * w + j] = A[i] === B[j] ? L[(i + 1) * w + j + 1]! + 1 : Math.max(L[(i + 1) * w + j]!, L[i * w + j + 1]!);
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (A[i] === B[j]) {
      ops.push('=');
      i++;
      j++;
    } else if (L[(i + 1) * w + j]! >= L[i * w + j + 1]!) {
      ops.push('-');
      i++;
    } else {
      ops.push('+');
      j++;
    }
  }
  while (i++ < n) ops.push('-');
  while (j++ < m) ops.push('+');
  return ops;
}

function blockOps(n: number, m: number): Op[] {
  return [...Array<Op>(n).fill('-'), ...Array<Op>(m).fill('+')];
}

/** Consecutive removals and additions side by side as "changed" rows; the rest as they are. */
function pairUp(ops: Op[], A: string[], B: string[], a0: number, b0: number, rows: DiffRow[]): void {
  let i = a0;
  let j = b0;
  let k = 0;
  while (k < ops.length) {
    if (ops[k] === '=') {
      rows.push(same(A, i++, j++));
      k++;
      continue;
    }
    const removed: number[] = [];
    const added: number[] = [];
    while (k < ops.length && ops[k] !== '=') {
      if (ops[k] === '-') removed.push(i++);
      else added.push(j++);
      k++;
    }
    for (let r = 0; r < Math.max(removed.length, added.length); r++) {
      const li = removed[r];
      const ri = added[r];
      rows.push({
        kind: li !== undefined && ri !== undefined ? 'changed' : li !== undefined ? 'removed' : 'added',
        left: li !== undefined ? { line: li + 1, text: A[li]! } : null,
        right: ri !== undefined ? { line: ri + 1, text: B[ri]! } : null,
      });
    }
  }
}
