// The browser's side of the REST API: same origin, the session cookie (HttpOnly, so this code never
// sees the token), and `x-crosslink-ui: 1` on every request, which the server requires of
// cookie-authenticated writes (a cross-site form cannot set a header).

export interface Session {
  name: string;
  role: 'admin' | 'operator' | 'auditor';
  permissions: string[];
}

/** An API error as the controller states it: {code, message, details}. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Array<{ path?: string; line?: number; message: string }> = [],
  ) {
    super(message);
  }
}

export async function api<T>(method: string, path: string, body?: string, contentType?: string): Promise<T> {
  const headers: Record<string, string> = { 'x-crosslink-ui': '1', accept: 'application/json' };
  if (contentType) headers['content-type'] = contentType;
  const res = await fetch(path, { method, headers, body, credentials: 'same-origin' });
  if (res.status === 401) {
    // The session is gone (token revoked, controller restarted with a new store): log in again.
    location.assign('/ui/login');
    throw new ApiError(401, 'unauthenticated', 'session ended');
  }
  const text = await res.text();
  const parsed: unknown = text === '' ? null : safeJson(text);
  if (!res.ok) {
    const e = (parsed ?? {}) as { code?: string; message?: string; details?: ApiError['details'] };
    throw new ApiError(res.status, e.code ?? String(res.status), e.message ?? text, e.details ?? []);
  }
  return parsed as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export const get = <T>(path: string) => api<T>('GET', path);

/** "3 s", "4 min", "2 h", "5 d". */
export function age(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return 'never';
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

export function when(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
