// Text helpers of the commands that talk to the controller: a table, a time, an error detail line.
import type { ErrorDetail } from '../../lib/errors.js';

export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

export function time(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function detailLine(d: ErrorDetail, file?: string): string {
  const where = [
    file && d.line !== undefined ? `${file}:${d.line}` : d.line !== undefined ? `line ${d.line}` : '',
    d.path ?? '',
  ]
    .filter(Boolean)
    .join(': ');
  return `  ${where ? `${where}: ` : ''}${d.message}\n`;
}
