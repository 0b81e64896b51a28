// The web view's session: the API token itself, kept in a cookie the page's JavaScript cannot read
// (HttpOnly), sent only over TLS (Secure) and never on a request another site starts (SameSite=Strict).
// There is no server-side session table: the cookie is checked exactly as a bearer token is
// (controller/api/auth.ts), so revoking the token ends the session at once.

export const SESSION_COOKIE = 'crosslink_session';

/**
 * The header a cookie-authenticated unsafe request must carry. A cross-site form cannot set a
 * header, and a cross-site fetch with one needs a CORS preflight the controller never grants.
 */
export const UI_HEADER = 'x-crosslink-ui';

const ATTRIBUTES = 'Path=/; HttpOnly; Secure; SameSite=Strict';

/**
 * Set-Cookie for a login. No Expires or Max-Age: a session cookie, gone when the browser closes.
 * Secure always: browsers keep Secure cookies from https and from http://localhost.
 */
export function sessionCookie(token: string): string {
  return `${SESSION_COOKIE}=${token}; ${ATTRIBUTES}`;
}

/** Set-Cookie for a logout: the same cookie, empty and expired. */
export function clearedSessionCookie(): string {
  return `${SESSION_COOKIE}=; ${ATTRIBUTES}; Max-Age=0`;
}

/** The session token in a Cookie header, or null (absent or empty). The first one wins. */
export function sessionTokenOf(cookieHeader: string | undefined): string | null {
  if (!cookieHeader) return null;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== SESSION_COOKIE) continue;
    const value = part.slice(eq + 1).trim();
    return value === '' ? null : value;
  }
  return null;
}

/** Methods that change something (RFC 9110 §9.2.1: not safe). */
export function isUnsafeMethod(method: string): boolean {
  return !['GET', 'HEAD', 'OPTIONS'].includes(method.toUpperCase());
}

/** An API token is cookie-safe text: "xlapi_" and base64url. Anything else is not one of ours. */
export function isTokenText(token: string): boolean {
  return /^[A-Za-z0-9_-]{1,200}$/.test(token);
}
