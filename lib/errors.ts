// Errors with stable codes. Every code a user can see is listed in ERROR_CODES with its HTTP status
// and a one-line meaning; docs/errors.md is checked against this table by a test.

export const ERROR_CODES = {
  invalid_request: {
    status: 400,
    meaning: 'The request body, query or parameters are malformed or have the wrong type.',
  },
  policy_invalid: {
    status: 400,
    meaning: 'The policy document failed validation; details lists every error with its path and line.',
  },
  policy_tests_failed: { status: 400, meaning: 'The policy is valid but one or more of its tests failed.' },
  unauthenticated: { status: 401, meaning: 'No bearer token, or a token that is unknown, expired or revoked.' },
  forbidden: { status: 403, meaning: 'The token is valid but its role may not do this.' },
  not_found: { status: 404, meaning: 'The named resource does not exist.' },
  method_not_allowed: {
    status: 405,
    meaning: 'The path exists but not with this HTTP method; the Allow header lists the methods it takes.',
  },
  conflict: { status: 409, meaning: 'The resource already exists or is in a state that does not allow this.' },
  precondition_failed: {
    status: 412,
    meaning: 'If-Match did not match the current version: someone changed it first.',
  },
  precondition_required: { status: 428, meaning: 'The write needs an If-Match header with the version you read.' },
  payload_too_large: { status: 413, meaning: 'The request body is larger than the limit.' },
  unsupported_media_type: { status: 415, meaning: 'The body must be JSON (or YAML for a policy).' },
  protocol_mismatch: { status: 400, meaning: 'The agent and controller speak protocol versions neither supports.' },
  join_token_invalid: {
    status: 401,
    meaning: 'The join token is unknown, used, expired, revoked or for another name.',
  },
  internal: { status: 500, meaning: 'A fault in Crosslink itself; the log has the details.' },
  unavailable: { status: 503, meaning: 'The controller is starting or its database is unreachable.' },
  host_command_failed: { status: 500, meaning: 'A command the agent ran on the host (wg, ip, nft) failed.' },
  config_invalid: {
    status: 400,
    meaning: 'A configuration file or flag has a wrong value; the message names the key and line.',
  },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetail {
  /** JSON-pointer-like path of the offending field, e.g. "rules[2].ports[0]" or "body.name". */
  path?: string;
  /** 1-based line in the source document, when known. */
  line?: number;
  column?: number;
  message: string;
}

export class CrosslinkError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetail[];
  constructor(code: ErrorCode, message: string, details: ErrorDetail[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CrosslinkError';
    this.code = code;
    this.details = details;
  }
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
  toJSON(): { code: ErrorCode; message: string; details: ErrorDetail[] } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** A command on the host (wg, ip, nft) exited non-zero. */
export class HostCommandError extends CrosslinkError {
  readonly argv: readonly string[];
  readonly exitCode: number;
  readonly stderr: string;
  constructor(argv: readonly string[], exitCode: number, stderr: string, options?: { cause?: unknown }) {
    super(
      'host_command_failed',
      `${argv.join(' ')} exited ${exitCode}: ${stderr.trim().split('\n')[0] ?? ''}`,
      [],
      options,
    );
    this.name = 'HostCommandError';
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

export function isCrosslinkError(e: unknown): e is CrosslinkError {
  return e instanceof CrosslinkError;
}
