// Controller settings: a YAML file (--config) with the same keys as the flags; flags override it.
// Every error names the key and, for the file, its line (yaml's LineCounter).
import { readFile } from 'node:fs/promises';
import { parsePrefix } from '../lib/prefix.js';
import { isMap, isScalar, LineCounter, parseDocument, type Pair } from 'yaml';
import { CrosslinkError, type ErrorDetail } from '../lib/errors.js';
import { didYouMean } from './policy/names.js';
import { parseSyslogUrl } from '../lib/export/exporters.js';

/** Settings as the file and the flags spell them (kebab-case). */
export interface ControllerSettings {
  'data-dir'?: string;
  /**
   * HOST:PORT to listen on, or several (one per network the controller host sits on, each its own
   * HTTPS server serving the same API and agent service); default 0.0.0.0:8443. The file takes one
   * or a list; callers may pass one text.
   */
  listen?: string | string[];
  /** "postgres://…" for PostgreSQL; otherwise a SQLite file path (default DATA_DIR/controller.db). */
  database?: string;
  /** Pool of overlay addresses; default 100.64.0.0/10. */
  'overlay-cidr'?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  /**
   * The URLs agents and the CLI dial, one per network the controller host sits on (written into join
   * tokens, tried in turn); default one from the listen address. The file takes one or a list.
   */
  url?: string[];
  /** Extra names/addresses for the generated server certificate. */
  san?: string[];
  'heartbeat-interval-seconds'?: number;
  'log-level'?: string;
  // Health and failover (docs/health.md). Fractions of a second are allowed (tests use them).
  /** How often agents report (set the agents' report-interval-seconds to the same); default 10. */
  'report-interval-seconds'?: number;
  /** An agent silent (no report, no stream) for this many report intervals is down and loses its subnets; default 3. */
  'silent-intervals'?: number;
  /** How often the controller evaluates health (also after every report); default 5. */
  'health-interval-seconds'?: number;
  /** WireGuard handshake older than this: link degraded; default 180. */
  'handshake-degraded-seconds'?: number;
  /** Handshake older than this: link down; default 300. */
  'handshake-down-seconds'?: number;
  /** A recovered primary must look healthy this long before it serves again; default 30. */
  'failover-hold-down-seconds'?: number;
  /** Seconds between the agents' peer and path probes, sent in every config; 0 = the agents' default (5). */
  'probe-interval-seconds'?: number;
  /** Bearer token GET /metrics requires; absent: /metrics is open (Prometheus' default). */
  'metrics-token'?: string;
  /** Failover at the edges: echo period through the tunnel, ms; default 150 (the agents'). */
  'liveness-interval-ms'?: number;
  /** Echo periods without a packet before a peer counts as dead; default 5. */
  'liveness-multiplier'?: number;
  /** UDP port of the echo (overlay) and the LAN advertisements; default 51821. */
  'liveness-port'?: number;
  /** Seconds between HTTP/2 PINGs on each agent connection; default 5. */
  'stream-ping-interval-seconds'?: number;
  /** A PING unanswered this long closes the connection, so a dead box's stream ends; default 5. */
  'stream-ping-timeout-seconds'?: number;
  /** The audit log's entries as RFC 5424 syslog to udp://, tcp:// or tls://HOST[:PORT]. */
  syslog?: string;
  /** PEM file of the CA that signs a tls:// syslog receiver's certificate (default: the system's). */
  'syslog-ca'?: string;
}

type Kind = 'string' | 'number' | 'list';
export const SETTING_KINDS: Record<keyof ControllerSettings, Kind> = {
  'data-dir': 'string',
  listen: 'list',
  database: 'string',
  'overlay-cidr': 'string',
  'tls-cert': 'string',
  'tls-key': 'string',
  url: 'list',
  san: 'list',
  'heartbeat-interval-seconds': 'number',
  'log-level': 'string',
  'report-interval-seconds': 'number',
  'silent-intervals': 'number',
  'health-interval-seconds': 'number',
  'handshake-degraded-seconds': 'number',
  'handshake-down-seconds': 'number',
  'failover-hold-down-seconds': 'number',
  'probe-interval-seconds': 'number',
  'metrics-token': 'string',
  'stream-ping-interval-seconds': 'number',
  'stream-ping-timeout-seconds': 'number',
  'liveness-interval-ms': 'number',
  'liveness-multiplier': 'number',
  'liveness-port': 'number',
  syslog: 'string',
  'syslog-ca': 'string',
};

export const DEFAULTS = {
  listen: ['0.0.0.0:8443'],
  'overlay-cidr': '100.64.0.0/10',
  'heartbeat-interval-seconds': 10,
  'log-level': 'info',
} as const;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Parses "HOST:PORT", "[V6]:PORT" or ":PORT". */
export function parseListen(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** The listen addresses, whether given as one text or a list. */
export function listenList(listen: string | readonly string[] | undefined): string[] {
  return listen === undefined ? [] : [listen].flat();
}

/** Whether listening on both hosts with one port must clash: one is a wildcard covering the other. */
function coversOther(a: string, b: string): boolean {
  if (a === '::' || b === '::') return true;
  const isV6 = (h: string) => h.includes(':');
  return (a === '0.0.0.0' || b === '0.0.0.0') && !isV6(a) && !isV6(b);
}

/** Checks values (wherever they came from); `where` gives a key's line when known. */
export function validateSettings(
  s: ControllerSettings,
  where: (key: string) => number | undefined = () => undefined,
): ErrorDetail[] {
  const errors: ErrorDetail[] = [];
  // `index`: the item of a list setting, named "key[index]" when the list has more than one.
  const bad = (key: string, message: string, index?: number, count = 1) => {
    const name = index !== undefined && count > 1 ? `${key}[${index}]` : key;
    errors.push({ path: name, line: where(key), message: `${name}: ${message}` });
  };
  const listens = listenList(s.listen);
  if (s.listen !== undefined && listens.length === 0) bad('listen', 'needs at least one HOST:PORT');
  const parsed = listens.map((l) => parseListen(l));
  listens.forEach((l, i) => {
    const p = parsed[i];
    if (!p) bad('listen', `"${l}" is not HOST:PORT (e.g. 0.0.0.0:8443)`, i, listens.length);
    else if (listens.indexOf(l) !== i) bad('listen', `"${l}" is given twice`, i, listens.length);
    else if (p.port !== 0) {
      // A wildcard takes its port on every address (0.0.0.0: every IPv4 one; "::" every one), so a
      // second listener on that port would fail to bind.
      const j = parsed.findIndex((q, k) => k < i && q !== null && q.port === p.port && coversOther(p.host, q.host));
      if (j >= 0)
        bad(
          'listen',
          `"${l}" and "${listens[j]}" share port ${p.port} and one of them listens on every address: give each network its own address`,
          i,
          listens.length,
        );
    }
  });
  if (s['overlay-cidr'] !== undefined) {
    const r = parsePrefix(s['overlay-cidr']);
    if (!r.ok) bad('overlay-cidr', `"${s['overlay-cidr']}" is not a prefix such as 100.64.0.0/10`);
    else if (r.prefix.family !== 4 || r.prefix.len > 30)
      bad('overlay-cidr', 'must be an IPv4 prefix of length /30 or shorter, e.g. 100.64.0.0/10');
  }
  if ((s['tls-cert'] === undefined) !== (s['tls-key'] === undefined))
    bad(s['tls-cert'] === undefined ? 'tls-cert' : 'tls-key', 'tls-cert and tls-key must be given together');
  const urls = s.url ?? [];
  urls.forEach((u, i) => {
    if (!/^https:\/\/[^/\s]+\/?$/.test(u)) bad('url', `"${u}" must be https://HOST[:PORT]`, i, urls.length);
    else if (urls.indexOf(u) !== i) bad('url', `"${u}" is given twice`, i, urls.length);
  });
  const hb = s['heartbeat-interval-seconds'];
  if (hb !== undefined && (!Number.isFinite(hb) || hb < 1 || hb > 30))
    bad('heartbeat-interval-seconds', 'must be between 1 and 30');
  if (s['log-level'] !== undefined && !LOG_LEVELS.includes(s['log-level']))
    bad('log-level', `must be one of ${LOG_LEVELS.join(', ')}`);
  if (s.database !== undefined && s.database.trim() === '') bad('database', 'must not be empty');
  const positive: Array<[keyof ControllerSettings, number, number]> = [
    ['report-interval-seconds', 0.1, 300],
    ['health-interval-seconds', 0.1, 300],
    ['handshake-degraded-seconds', 1, 86_400],
    ['handshake-down-seconds', 1, 86_400],
    ['failover-hold-down-seconds', 0, 86_400],
    ['silent-intervals', 1, 100],
    ['stream-ping-interval-seconds', 0.1, 300],
    ['stream-ping-timeout-seconds', 0.1, 300],
  ];
  for (const [key, min, max] of positive) {
    const v = s[key] as number | undefined;
    if (v !== undefined && (!Number.isFinite(v) || v < min || v > max)) bad(key, `must be between ${min} and ${max}`);
  }
  const whole: Array<[keyof ControllerSettings, number, number, string]> = [
    ['liveness-interval-ms', 10, 60_000, 'milliseconds'],
    ['liveness-multiplier', 2, 100, 'periods'],
    ['liveness-port', 1, 65_535, 'a UDP port'],
  ];
  for (const [key, min, max, what] of whole) {
    const v = s[key] as number | undefined;
    if (v !== undefined && (!Number.isInteger(v) || v < min || v > max))
      bad(key, `must be a whole number from ${min} to ${max} (${what})`);
  }
  const pi = s['probe-interval-seconds'];
  if (pi !== undefined && (!Number.isInteger(pi) || pi < 0 || pi > 3600))
    bad('probe-interval-seconds', 'must be a whole number of seconds from 0 to 3600');
  const hd = s['handshake-degraded-seconds'];
  const hdown = s['handshake-down-seconds'];
  if (hd !== undefined && hdown !== undefined && hdown < hd)
    bad('handshake-down-seconds', 'must not be below handshake-degraded-seconds');
  if (s['metrics-token'] !== undefined && s['metrics-token'].length < 16)
    bad('metrics-token', 'must be at least 16 characters');
  if (s.syslog !== undefined) {
    try {
      parseSyslogUrl(s.syslog, 'syslog');
    } catch (e) {
      bad('syslog', (e as Error).message.replace(/^syslog: /, ''));
    }
  }
  return errors;
}

/** Reads and validates a controller.yaml; throws config_invalid listing every problem with its line. */
export async function loadSettingsFile(path: string): Promise<ControllerSettings> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new CrosslinkError(
      'config_invalid',
      `cannot read config file ${path}: ${(e as Error).message}`,
      [{ path: 'config', message: 'unreadable' }],
      { cause: e },
    );
  }
  return parseSettingsText(text, path);
}

export function parseSettingsText(text: string, source = 'controller.yaml'): ControllerSettings {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const errors: ErrorDetail[] = doc.errors.map((e) => ({
    path: '',
    line: lc.linePos(e.pos[0]).line,
    message: `syntax: ${e.message.split('\n')[0]}`,
  }));
  const lines = new Map<string, number>();
  const out: Record<string, unknown> = {};
  if (errors.length === 0 && doc.contents !== null) {
    if (!isMap(doc.contents)) {
      errors.push({ path: '', line: 1, message: 'the config file must be a map of settings (key: value)' });
    } else {
      for (const pair of doc.contents.items as Pair[]) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const line =
          pair.key && (pair.key as { range?: [number] }).range
            ? lc.linePos((pair.key as { range: [number] }).range[0]).line
            : undefined;
        lines.set(key, line ?? 0);
        const kind = SETTING_KINDS[key as keyof ControllerSettings];
        let value =
          (pair.value as { toJSON?: () => unknown } | null)?.toJSON?.() ??
          (isScalar(pair.value) ? pair.value.value : pair.value);
        if (kind === 'list' && typeof value === 'string') value = [value]; // one item or a list
        if (!kind) {
          const hint = didYouMean(key, Object.keys(SETTING_KINDS));
          errors.push({
            path: key,
            line,
            message: `unknown setting "${key}"${hint || `; known: ${Object.keys(SETTING_KINDS).join(', ')}`}`,
          });
        } else if (kind === 'string' && typeof value !== 'string') {
          errors.push({ path: key, line, message: `${key}: must be text` });
        } else if (kind === 'number' && typeof value !== 'number') {
          errors.push({ path: key, line, message: `${key}: must be a number` });
        } else if (kind === 'list' && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
          errors.push({ path: key, line, message: `${key}: must be text or a list of text` });
        } else {
          out[key] = value;
        }
      }
    }
  }
  const settings = out as ControllerSettings;
  // Values are checked whatever else is wrong, so one run lists every problem; a key already
  // reported (unknown, wrong type) is not reported again.
  if (doc.errors.length === 0) {
    const reported = new Set(errors.map((e) => e.path));
    errors.push(...validateSettings(settings, (k) => lines.get(k)).filter((e) => !reported.has(e.path ?? '')));
    errors.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
  }
  if (errors.length) {
    const first = errors[0]!;
    throw new CrosslinkError(
      'config_invalid',
      `${source}${first.line ? `:${first.line}` : ''}: ${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`,
      errors,
    );
  }
  return settings;
}
