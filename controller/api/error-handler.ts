// The one place errors become HTTP: every answer is JSON {code, message, details} with a code from
// lib/errors.ts. Bad input is always a 4xx naming the field; anything unexpected is a 500 "internal"
// whose details stay in the log (no stack traces or secrets in answers).
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CrosslinkError, ERROR_CODES, isCrosslinkError, type ErrorCode, type ErrorDetail } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { NAME_PATTERN } from './schemas.js';

interface AjvError {
  instancePath?: string;
  keyword?: string;
  params?: Record<string, unknown>;
  message?: string;
}

function validationDetails(err: FastifyError & { validation?: AjvError[]; validationContext?: string }): ErrorDetail[] {
  const ctx = err.validationContext ?? 'body';
  return (err.validation ?? [])
    .map((v) => {
      const base = [ctx, ...(v.instancePath ?? '').split('/').filter(Boolean)];
      if (v.keyword === 'additionalProperties' && typeof v.params?.additionalProperty === 'string') {
        return {
          path: [...base, v.params.additionalProperty].join('.'),
          message: `unknown field "${v.params.additionalProperty}"`,
        };
      }
      if (v.keyword === 'required' && typeof v.params?.missingProperty === 'string') {
        return { path: [...base, v.params.missingProperty].join('.'), message: 'is required' };
      }
      if (v.keyword === 'enum' && Array.isArray(v.params?.allowedValues)) {
        return {
          path: base.join('.'),
          message: `must be one of ${(v.params.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(', ')}`,
        };
      }
      // In the user's terms, not the schema's: no regular expressions, durations in days.
      if (v.keyword === 'pattern' && typeof v.params?.pattern === 'string') {
        return { path: base.join('.'), message: PATTERN_TEXT[v.params.pattern] ?? 'has the wrong format' };
      }
      if ((v.keyword === 'maximum' || v.keyword === 'minimum') && typeof v.params?.limit === 'number') {
        const field = base.at(-1) ?? '';
        const limit = v.params.limit;
        const human = /seconds$/i.test(field) ? ` (${durationText(limit)})` : '';
        return {
          path: base.join('.'),
          message: `must be ${v.keyword === 'maximum' ? 'at most' : 'at least'} ${limit}${human}`,
        };
      }
      return { path: base.join('.'), message: v.message ?? 'is invalid' };
    })
    .filter((d, i, all) => all.findIndex((o) => o.path === d.path && o.message === d.message) === i);
}

/** What each pattern of the API's schemas means (controller/api/schemas.ts and the routes). */
const PATTERN_TEXT: Record<string, string> = {
  [NAME_PATTERN]:
    'must be a name of lowercase letters, digits and "-", 1-63 characters, not starting or ending with "-" (e.g. gp-armley)',
  '^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$':
    'must be 1-63 letters, digits, ".", "_", "@" or "-", starting with a letter or digit (e.g. ci-deploy)',
  '^[0-9]{1,15}$': 'must be a whole number',
  '^[A-Za-z0-9_-]{1,64}$': 'must be an id as listed (letters, digits, "_" and "-")',
};

/** 2592000 -> "30 days", 3600 -> "1 hour", 90 -> "90 seconds". */
function durationText(seconds: number): string {
  for (const [unit, n] of [
    ['day', 86_400],
    ['hour', 3600],
    ['minute', 60],
  ] as const) {
    if (seconds >= n && seconds % n === 0) return `${seconds / n} ${unit}${seconds / n === 1 ? '' : 's'}`;
  }
  return `${seconds} second${seconds === 1 ? '' : 's'}`;
}

/** Seconds a client should wait before retrying a `503 unavailable` (the database coming back). */
export const RETRY_AFTER_SECONDS = 2;

/**
 * The database could not be reached (PostgreSQL restarting, failing over, or the network to it
 * down): socket errors, SQLSTATE class 08 (connection exception), 57P01-57P03 (server shutting
 * down or starting), 53300 (too many connections), and node-postgres' own connection messages.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  const code = typeof e.code === 'string' ? e.code : '';
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code)) return true;
  if (/^08[0-9A-Z]{3}$/.test(code) || ['57P01', '57P02', '57P03', '53300'].includes(code)) return true;
  const message = typeof e.message === 'string' ? e.message : '';
  return /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|Client was closed)/.test(
    message,
  );
}

/** Converts anything thrown into a CrosslinkError a client may see. */
export function toCrosslinkError(err: unknown, limitBytes?: number): CrosslinkError {
  if (isCrosslinkError(err)) return err;
  if (isDatabaseUnavailable(err))
    return new CrosslinkError(
      'unavailable',
      `the controller cannot reach its database; retry in ${RETRY_AFTER_SECONDS} seconds`,
      [],
      { cause: err },
    );
  const e = err as FastifyError & { validation?: AjvError[]; validationContext?: string; status?: number };
  if (e && Array.isArray(e.validation)) {
    const details = validationDetails(e);
    return new CrosslinkError(
      'invalid_request',
      `invalid request: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`,
      details,
    );
  }
  const status = e?.statusCode ?? e?.status;
  const fastifyCodes: Record<string, ErrorCode> = {
    FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
    FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
    FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
    FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_request',
    FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_request',
  };
  const mapped = e?.code ? fastifyCodes[e.code] : undefined;
  if (mapped === 'payload_too_large' && limitBytes !== undefined) {
    return new CrosslinkError(
      mapped,
      `the request body is larger than the controller's limit of ${bytesText(limitBytes)}`,
      [{ path: 'body', message: `at most ${limitBytes} bytes` }],
      { cause: err },
    );
  }
  if (mapped) return new CrosslinkError(mapped, publicMessage(mapped, e.message), [], { cause: err });
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code: ErrorCode =
      status === 404
        ? 'not_found'
        : status === 413
          ? 'payload_too_large'
          : status === 415
            ? 'unsupported_media_type'
            : 'invalid_request';
    return new CrosslinkError(code, publicMessage(code, e.message), [], { cause: err });
  }
  return new CrosslinkError('internal', 'internal error; the controller log has the details', [], { cause: err });
}

/** 1048576 -> "1 MiB". */
function bytesText(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

function publicMessage(code: ErrorCode, message: string | undefined): string {
  // Fastify's 4xx messages describe the request, not the server; keep them short and single-line.
  const m = (message ?? '').split('\n')[0]!.slice(0, 300);
  return m || ERROR_CODES[code].meaning;
}

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export function installErrorHandling(app: FastifyInstance, log: Logger): void {
  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const ce = toCrosslinkError(err, app.initialConfig.bodyLimit);
    const status = ERROR_CODES[ce.code].status;
    if (status >= 500) log.error({ err, method: req.method, url: req.url }, 'request failed');
    else log.debug({ code: ce.code, method: req.method, url: req.url }, 'request refused');
    // RFC 9110: a 401 says how to authenticate (RFC 6750 for bearer tokens).
    if (ce.code === 'unauthenticated')
      void reply.header(
        'www-authenticate',
        req.headers.authorization ? 'Bearer realm="crosslink", error="invalid_token"' : 'Bearer realm="crosslink"',
      );
    if (ce.code === 'unavailable') void reply.header('retry-after', String(RETRY_AFTER_SECONDS));
    void reply.code(status).type('application/json; charset=utf-8').send(ce.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    // A path that exists with other methods is a 405 with Allow (RFC 9110), not a 404.
    const allowed = HTTP_METHODS.filter((m) => m !== req.method && app.findRoute({ method: m, url: path }) !== null);
    if (allowed.length > 0) {
      const e = new CrosslinkError(
        'method_not_allowed',
        `${req.method} is not allowed on ${path}; it takes ${allowed.join(', ')}`,
      );
      void reply.code(405).header('allow', allowed.join(', ')).type('application/json; charset=utf-8').send(e.toJSON());
      return;
    }
    void reply.code(404).send({ code: 'not_found', message: `no route ${req.method} ${path}`, details: [] });
  });
}
