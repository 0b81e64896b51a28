import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

// Field names that must never reach a log line, wherever they appear.
const REDACT = [
  'token',
  '*.token',
  'credential',
  '*.credential',
  'secret',
  '*.secret',
  'password',
  '*.password',
  'privateKey',
  '*.privateKey',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'joinToken',
  '*.joinToken',
  'join_token',
  '*.join_token',
];

export function createLogger(
  opts: { level?: string; name?: string; destination?: NodeJS.WritableStream | number } = {},
): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? process.env.CROSSLINK_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT, censor: '[redacted]' },
    base: opts.name ? { name: opts.name } : undefined,
  };
  const dest = opts.destination ?? 2;
  return pino(options, typeof dest === 'number' ? pino.destination({ fd: dest, sync: false }) : dest);
}

/** A logger that drops everything (tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
