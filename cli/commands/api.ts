// A small client for the controller's REST API over node:https. Trust comes only from the CA pin:
// lib/pin.ts fetches the CA (from the handshake or GET /v1/ca) and accepts it only if its DER
// hashes to the fingerprint; every request then trusts that CA alone.
import https from 'node:https';
import { CrosslinkError, type ErrorCode, type ErrorDetail } from '../../lib/errors.js';
import { fetchPinnedCa, pinnedHttpsAgent } from '../../lib/pin.js';

export interface ApiClientOptions {
  /**
   * https://HOST:PORT of the controller, or several (one per network it sits on; also one text with
   * spaces or commas between them, as CROSSLINK_CONTROLLER may hold): tried in turn, the first that
   * answers and proves the pinned CA is used.
   */
  controller: string | readonly string[];
  /** Bearer API token. */
  token: string;
  /** sha256 of the controller CA's DER (hex, colons allowed). */
  caFingerprint: string;
  timeoutMs?: number;
}

/** The controller answered with an error: its code, message and details, as sent. */
export class ApiError extends CrosslinkError {
  readonly httpStatus: number;
  constructor(httpStatus: number, code: ErrorCode, message: string, details: ErrorDetail[]) {
    super(code, message, details);
    this.name = 'ApiError';
    this.httpStatus = httpStatus;
  }
}

/** Could not reach the controller, or it did not prove to hold the pinned CA. CLI exit code 3. */
export class UnreachableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UnreachableError';
  }
}

export interface ApiResponse<T> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

export class ApiClient {
  readonly #base: URL;
  readonly #token: string;
  readonly #agent: https.Agent;
  readonly #timeoutMs: number;

  private constructor(base: URL, token: string, agent: https.Agent, timeoutMs: number) {
    this.#base = base;
    this.#token = token;
    this.#agent = agent;
    this.#timeoutMs = timeoutMs;
  }

  static async connect(opts: ApiClientOptions): Promise<ApiClient> {
    const texts = [opts.controller]
      .flat()
      .flatMap((c) => c.split(/[\s,]+/))
      .filter((c) => c !== '');
    const bases = texts.map((text, i) => {
      const path = texts.length > 1 ? `controller[${i}]` : 'controller';
      let base: URL;
      try {
        base = new URL(text);
      } catch {
        throw new CrosslinkError(
          'config_invalid',
          `controller URL "${text}" is not a URL (expected https://HOST:PORT)`,
          [{ path, message: 'not a URL' }],
        );
      }
      if (base.protocol !== 'https:')
        throw new CrosslinkError('config_invalid', `controller URL "${text}" must start with https://`, [
          { path, message: 'not https' },
        ]);
      return base;
    });
    if (bases.length === 0)
      throw new CrosslinkError('config_invalid', 'no controller URL given', [
        { path: 'controller', message: 'missing' },
      ]);
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const failures: string[] = [];
    for (const base of bases) {
      try {
        const caPem = await fetchPinnedCa(base.toString(), opts.caFingerprint, { timeoutMs });
        return new ApiClient(
          base,
          opts.token,
          pinnedHttpsAgent(caPem, opts.caFingerprint, { keepAlive: true }),
          timeoutMs,
        );
      } catch (e) {
        if (e instanceof CrosslinkError && e.code === 'config_invalid') throw e;
        failures.push(`${base.host}: ${(e as Error).message}`);
      }
    }
    throw new UnreachableError(`cannot reach the controller securely at ${failures.join('; ')}`);
  }

  close(): void {
    this.#agent.destroy();
  }

  /** Sends a request; resolves on 2xx, throws ApiError with the controller's code otherwise. */
  request<T = unknown>(
    method: string,
    path: string,
    opts: { json?: unknown; text?: string; contentType?: string; headers?: Record<string, string> } = {},
  ): Promise<ApiResponse<T>> {
    const url = new URL(path, this.#base);
    const body = opts.json !== undefined ? JSON.stringify(opts.json) : opts.text;
    const headers: Record<string, string> = {
      accept: 'application/json',
      authorization: `Bearer ${this.#token}`,
      ...(opts.headers ?? {}),
    };
    if (body !== undefined) {
      headers['content-type'] = opts.contentType ?? (opts.json !== undefined ? 'application/json' : 'application/yaml');
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    return new Promise((resolve, reject) => {
      const req = https.request(url, { method, headers, agent: this.#agent, timeout: this.#timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) =>
          reject(new UnreachableError(`connection to the controller broke: ${e.message}`, { cause: e })),
        );
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          let parsed: unknown = text;
          if ((res.headers['content-type'] ?? '').includes('json') && text) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = text;
            }
          }
          if (status >= 200 && status < 300) return resolve({ status, headers: res.headers, body: parsed as T });
          const e = (parsed ?? {}) as { code?: ErrorCode; message?: string; details?: ErrorDetail[] };
          reject(
            new ApiError(
              status,
              e.code ?? 'internal',
              e.message ?? `controller answered HTTP ${status}`,
              Array.isArray(e.details) ? e.details : [],
            ),
          );
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.#timeoutMs} ms`)));
      req.on('error', (e) =>
        reject(new UnreachableError(`cannot reach the controller at ${this.#base.host}: ${e.message}`, { cause: e })),
      );
      if (body !== undefined) req.write(body);
      req.end();
    });
  }
}
