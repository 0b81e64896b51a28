// A rule's time window: `not-before` and `not-after`, RFC 3339 times with a time zone. PURE: the
// checker's "now" is passed in (`policy check`), never read here.
import type { PathSegment } from '../parse.js';
import { typeName, type Checker, type Raw } from './checker.js';

// date "T" time, seconds required, fraction optional, "Z" or an offset (RFC 3339 section 5.6; a
// space for the "T" is allowed there too).
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/;

/** ms since the epoch of an RFC 3339 time, or undefined when `text` is not one (or names no real day). */
export function parseRfc3339(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const offsetMin = m[9] === undefined ? 0 : (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11]));
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59 || Math.abs(offsetMin) >= 24 * 60) return undefined;
  const local = Date.UTC(y, mo - 1, d, h, mi, s);
  // Date.UTC rolls 31 April over into May: such a day does not exist.
  if (new Date(local).getUTCDate() !== d) return undefined;
  const fraction = m[7] === undefined ? 0 : Math.floor(Number(`0${m[7]}`) * 1000);
  return local + fraction - offsetMin * 60_000;
}

/** "2025-03-31T16:00:00Z" (UTC, whole seconds when there is no fraction). */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

const EXAMPLE = 'e.g. 2025-03-31T17:00:00Z or 2025-03-31T18:00:00+01:00';

function time(c: Checker, f: Raw, p: PathSegment[], key: 'not-before' | 'not-after'): number | undefined {
  const x = f[key];
  if (x === undefined || x === null) return undefined;
  const ms = typeof x === 'string' ? parseRfc3339(x.trim()) : undefined;
  if (ms === undefined)
    c.err(
      [...p, key],
      `"${key}" must be an RFC 3339 time with a time zone (${EXAMPLE}); got ${typeof x === 'string' ? JSON.stringify(x) : typeName(x)}`,
    );
  return ms;
}

/** The rule's window fields, checked: each a time, the start before the end, the end not past. */
export function checkWindow(
  c: Checker,
  f: Raw,
  p: PathSegment[],
  name: string,
  nowMs: number | undefined,
): { notBeforeMs?: number; notAfterMs?: number } {
  const notBeforeMs = time(c, f, p, 'not-before');
  const notAfterMs = time(c, f, p, 'not-after');
  if (notBeforeMs !== undefined && notAfterMs !== undefined && notBeforeMs >= notAfterMs)
    c.err(
      [...p, 'not-after'],
      `rule "${name}" ends (not-after ${formatTime(notAfterMs)}) before it starts (not-before ${formatTime(notBeforeMs)})`,
    );
  if (notAfterMs !== undefined && nowMs !== undefined && notAfterMs <= nowMs)
    c.err(
      [...p, 'not-after'],
      `rule "${name}" expired at ${formatTime(notAfterMs)} (not-after is in the past): remove the rule, or move its not-after on`,
    );
  return {
    ...(notBeforeMs !== undefined ? { notBeforeMs } : {}),
    ...(notAfterMs !== undefined ? { notAfterMs } : {}),
  };
}
