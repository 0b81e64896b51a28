// The agent's settings: /etc/crosslink/agent.yaml (same keys as the flags of `crosslink agent run`)
// with flags on top. Every mistake names the key and, for the file, the line:
// "agent.yaml:14: advertise[1]: not a prefix".
import { readFile } from 'node:fs/promises';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { CrosslinkError, type ErrorDetail } from '../lib/errors.js';
import { canonicalEndpoint, strictCanonicalPrefix } from './host/canonical.js';
import { DEFAULT_INTERFACE, DEFAULT_LISTEN_PORT, DEFAULT_MTU } from './reconcile/desired.js';
import type { AgentRunOptions, WireGuardChoice } from './main.js';
import { parseListenAddress } from './health/status-server.js';
import type { UnderlayEndpoint } from './control/client.js';
import { parseCollector, parseSyslogUrl } from '../lib/export/exporters.js';

/** The underlay a bare HOST:PORT endpoint means (controller/policy/types.ts DEFAULT_UNDERLAY). */
const DEFAULT_UNDERLAY_NAME = 'default';

export const DEFAULT_STATE_DIR = '/var/lib/crosslink/agent';
export const DEFAULT_STATUS_LISTEN = '127.0.0.1:9474';
export const DEFAULT_CONFIG_FILE = '/etc/crosslink/agent.yaml';

/** Settings as they may come from the file or the flags; every key optional. */
export interface AgentSettingsInput {
  join?: string;
  stateDir?: string;
  name?: string;
  interfaceName?: string;
  listenPort?: number;
  /** In the order given; a bare HOST:PORT is the underlay "default". */
  endpoint?: UnderlayEndpoint[];
  /** The box consents to relay between its underlays (the policy must allow it too). */
  relay?: boolean;
  advertise?: string[];
  statusListen?: string;
  wireguard?: WireGuardChoice;
  mtu?: number;
  /** Seconds between periodic reports (the controller's report-interval-seconds must match). */
  reportIntervalSeconds?: number;
  /** The flow log's size limit in MB (STATE_DIR/flows.jsonl and one rotation); 0: no flow log. */
  flowLogMb?: number;
  /** IPFIX collectors ("HOST:PORT", UDP) the flow records are exported to. */
  ipfixCollector?: string[];
  /** RFC 5424 syslog of the flow records: udp://HOST[:PORT], tcp://..., tls://... */
  syslog?: string;
  /** PEM file of the CA that signs a tls:// syslog receiver's certificate (default: the system's). */
  syslogCa?: string;
}

/** File key / flag name -> field. */
export const SETTING_KEYS: Record<string, keyof AgentSettingsInput> = {
  join: 'join',
  'state-dir': 'stateDir',
  name: 'name',
  interface: 'interfaceName',
  'listen-port': 'listenPort',
  endpoint: 'endpoint',
  relay: 'relay',
  advertise: 'advertise',
  'status-listen': 'statusListen',
  wireguard: 'wireguard',
  mtu: 'mtu',
  'report-interval-seconds': 'reportIntervalSeconds',
  'flow-log-mb': 'flowLogMb',
  'ipfix-collector': 'ipfixCollector',
  syslog: 'syslog',
  'syslog-ca': 'syslogCa',
};

type Locate = (key: string, index?: number) => { line?: number; column?: number };

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

function int(v: unknown): number | null {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^\d+$/.test(v.trim())) return Number(v.trim());
  return null;
}

/**
 * Checks raw values (from YAML or yargs) key by key. Unknown keys are errors (a misspelt key
 * silently ignored is worse than a refusal). Returns the typed settings and every error.
 */
export function validateSettings(
  raw: Record<string, unknown>,
  locate: Locate = () => ({}),
): { settings: AgentSettingsInput; errors: ErrorDetail[] } {
  const errors: ErrorDetail[] = [];
  const out: AgentSettingsInput = {};
  const err = (key: string, message: string, index?: number) =>
    errors.push({ path: index === undefined ? key : `${key}[${index}]`, message, ...locate(key, index) });
  const str = (key: string, v: unknown): string | null => {
    if (v === null || v === undefined) return '';
    if (typeof v !== 'string') {
      err(key, 'must be text');
      return null;
    }
    return v.trim();
  };

  for (const [key, v] of Object.entries(raw)) {
    const field = SETTING_KEYS[key];
    if (!field) {
      err(key, `unknown key (known: ${Object.keys(SETTING_KEYS).join(', ')})`);
      continue;
    }
    switch (field) {
      case 'join':
      case 'stateDir': {
        const s = str(key, v);
        if (s !== null && s !== '') out[field] = s;
        break;
      }
      case 'name': {
        const s = str(key, v);
        if (s === null || s === '') break;
        if (!NAME_RE.test(s)) err(key, `"${s}" is not lowercase letters, digits and '-', 1-63 characters`);
        else out.name = s;
        break;
      }
      case 'interfaceName': {
        const s = str(key, v);
        if (s === null) break;
        if (!IFNAME_RE.test(s)) err(key, `"${s}" is not an interface name (1-15 of A-Z a-z 0-9 _ . -)`);
        else out.interfaceName = s;
        break;
      }
      case 'listenPort':
      case 'mtu': {
        const n = int(v);
        const [lo, hi] = field === 'listenPort' ? [1, 65535] : [1280, 9000];
        if (n === null || n < lo || n > hi) err(key, `must be a whole number from ${lo} to ${hi}`);
        else out[field] = n;
        break;
      }
      case 'endpoint': {
        // One value or a list (the flag repeated, or a YAML list): NAME=HOST:PORT or a bare HOST:PORT.
        const list: unknown[] = v === null || v === undefined || v === '' ? [] : Array.isArray(v) ? v : [v];
        const endpoints: UnderlayEndpoint[] = [];
        list.forEach((item, i) => {
          const at = list.length > 1 || Array.isArray(v) ? i : undefined;
          const text = typeof item === 'string' ? item.trim() : '';
          const eq = text.indexOf('=');
          const underlay = eq < 0 ? DEFAULT_UNDERLAY_NAME : text.slice(0, eq);
          const hostPort = eq < 0 ? text : text.slice(eq + 1);
          if (typeof item !== 'string' || text === '')
            err(key, `${JSON.stringify(item)} is not NAME=HOST:PORT or HOST:PORT`, at);
          else if (!NAME_RE.test(underlay))
            err(
              key,
              `"${text}": the underlay name "${underlay}" is not lowercase letters, digits and '-', 1-63 characters (expected NAME=HOST:PORT)`,
              at,
            );
          else if (canonicalEndpoint(hostPort) === null)
            err(
              key,
              `"${text}": "${hostPort}" is not host:port or [v6]:port (expected ${eq < 0 ? 'HOST:PORT' : 'NAME=HOST:PORT'})`,
              at,
            );
          else if (endpoints.some((e) => e.underlay === underlay))
            err(key, `"${text}": underlay "${underlay}" is given twice (one endpoint per underlay)`, at);
          else endpoints.push({ underlay, endpoint: hostPort });
        });
        out.endpoint = endpoints;
        break;
      }
      case 'relay': {
        const b = typeof v === 'boolean' ? v : v === 'true' ? true : v === 'false' ? false : null;
        if (b === null) err(key, 'must be true or false');
        else out.relay = b;
        break;
      }
      case 'advertise': {
        let list: unknown[];
        if (v === null || v === undefined || v === '') list = [];
        else if (Array.isArray(v)) list = (v as unknown[]).flatMap((x) => (typeof x === 'string' ? x.split(',') : [x]));
        else if (typeof v === 'string') list = v.split(',');
        else {
          err(key, 'must be a list of prefixes');
          break;
        }
        const prefixes: string[] = [];
        list.forEach((p, i) => {
          const text = typeof p === 'string' ? p.trim() : '';
          const c = text === '' ? null : strictCanonicalPrefix(text);
          if (c === null) err(key, `${JSON.stringify(p)} is not a prefix`, i);
          else if (c !== text) err(key, `"${text}" has host bits set; did you mean ${c}?`, i);
          else prefixes.push(c);
        });
        out.advertise = prefixes;
        break;
      }
      case 'reportIntervalSeconds': {
        const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v.trim()) : NaN;
        if (!Number.isFinite(n) || n < 0.1 || n > 300) err(key, 'must be a number of seconds from 0.1 to 300');
        else out.reportIntervalSeconds = n;
        break;
      }
      case 'ipfixCollector': {
        const list: unknown[] = v === null || v === undefined || v === '' ? [] : Array.isArray(v) ? v : [v];
        const collectors: string[] = [];
        list.forEach((c, i) => {
          const text = typeof c === 'string' ? c.trim() : '';
          try {
            parseCollector(text, key);
            collectors.push(text);
          } catch (e) {
            err(key, (e as Error).message.replace(/^[^:]*: /, ''), i);
          }
        });
        out.ipfixCollector = collectors;
        break;
      }
      case 'syslog': {
        const s = str(key, v);
        if (s === null || s === '') break;
        try {
          parseSyslogUrl(s, key);
          out.syslog = s;
        } catch (e) {
          err(key, (e as Error).message.replace(/^[^:]*: /, ''));
        }
        break;
      }
      case 'syslogCa': {
        const s = str(key, v);
        if (s !== null && s !== '') out.syslogCa = s;
        break;
      }
      case 'flowLogMb': {
        const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v.trim()) : NaN;
        if (!Number.isInteger(n) || n < 0 || n > 100_000)
          err(key, 'must be a whole number of MB from 0 (off) to 100000');
        else out.flowLogMb = n;
        break;
      }
      case 'statusListen': {
        const s = str(key, v);
        if (s === null) break;
        if (s !== '' && parseListenAddress(s) === null) err(key, `"${s}" is not host:port (or "" to turn it off)`);
        else out.statusListen = s;
        break;
      }
      case 'wireguard': {
        if (v !== 'auto' && v !== 'kernel' && v !== 'userspace') err(key, 'must be auto, kernel or userspace');
        else out.wireguard = v;
        break;
      }
    }
  }
  if (out.relay && out.endpoint !== undefined && out.endpoint.length < 2) {
    err(
      'relay',
      `a relay joins two underlays: give an endpoint on each (endpoint: NAME=HOST:PORT, at least two; got ${out.endpoint.length})`,
    );
  }
  return { settings: out, errors };
}

/** Parses the YAML config file text; throws config_invalid listing every error with its line. */
export function parseAgentConfigText(text: string, file = 'agent.yaml'): AgentSettingsInput {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const fail = (details: ErrorDetail[]) => {
    throw new CrosslinkError(
      'config_invalid',
      details.map((d) => `${file}${d.line ? `:${d.line}` : ''}: ${d.path ? `${d.path}: ` : ''}${d.message}`).join('\n'),
      details,
    );
  };
  if (doc.errors.length > 0) {
    fail(
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { message: e.message.split('\n')[0]!, line: pos.line, column: pos.col };
      }),
    );
  }
  const contents = doc.contents;
  if (contents === null || (isScalar(contents) && (contents.value === null || contents.value === ''))) return {};
  if (!isMap(contents)) fail([{ message: 'the file must be a mapping of keys (join:, name:, ...)', line: 1 }]);
  const map = contents as unknown as { items: Array<{ key: Node | null; value: Node | null }> };
  const nodes = new Map<string, { key: Node | null; value: Node | null }>();
  for (const item of map.items) if (isScalar(item.key)) nodes.set(String(item.key.value), item);
  const pos = (n: Node | null | undefined) => {
    if (!n?.range) return {};
    const p = lineCounter.linePos(n.range[0]);
    return { line: p.line, column: p.col };
  };
  const locate: Locate = (key, index) => {
    const item = nodes.get(key);
    if (index !== undefined && isSeq(item?.value)) return pos(item.value.items[index] as Node);
    return pos(item?.value ?? item?.key);
  };
  const { settings, errors } = validateSettings(doc.toJS() as Record<string, unknown>, locate);
  if (errors.length > 0) fail(errors);
  return settings;
}

export async function loadAgentConfigFile(path: string): Promise<AgentSettingsInput> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new CrosslinkError(
      'config_invalid',
      `${path}: cannot read: ${(e as Error).message}`,
      [{ message: 'cannot read' }],
      { cause: e },
    );
  }
  return parseAgentConfigText(text, path);
}

/** Validates flag values ("--listen-port: ..." on error). Undefined flags are left out. */
export function settingsFromFlags(flags: Record<string, unknown>): AgentSettingsInput {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(SETTING_KEYS)) if (flags[key] !== undefined) raw[key] = flags[key];
  const { settings, errors } = validateSettings(raw);
  if (errors.length > 0) {
    throw new CrosslinkError(
      'config_invalid',
      errors.map((e) => `--${e.path}: ${e.message}`).join('\n'),
      errors.map((e) => ({ ...e, path: `--${e.path}` })),
    );
  }
  return settings;
}

/** Flags over file over defaults. */
export function resolveAgentOptions(
  flags: AgentSettingsInput,
  file: AgentSettingsInput,
  agentVersion: string,
): AgentRunOptions {
  const m = { ...file, ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) };
  return {
    stateDir: m.stateDir ?? DEFAULT_STATE_DIR,
    join: m.join,
    name: m.name,
    interfaceName: m.interfaceName ?? DEFAULT_INTERFACE,
    listenPort: m.listenPort ?? DEFAULT_LISTEN_PORT,
    endpoint: m.endpoint?.[0]?.endpoint ?? '',
    // A box with only a bare HOST:PORT announces no named endpoints: on the wire it is what it was before underlays.
    endpoints:
      (m.endpoint ?? []).length === 1 && m.endpoint![0]!.underlay === DEFAULT_UNDERLAY_NAME
        ? []
        : [...(m.endpoint ?? [])],
    isRelay: m.relay ?? false,
    advertise: m.advertise ?? [],
    statusListen: m.statusListen ?? DEFAULT_STATUS_LISTEN,
    wireguard: m.wireguard ?? 'auto',
    mtu: m.mtu ?? DEFAULT_MTU,
    ...(m.reportIntervalSeconds !== undefined ? { reportIntervalMs: m.reportIntervalSeconds * 1000 } : {}),
    ...(m.flowLogMb !== undefined ? { flowLogMaxBytes: m.flowLogMb * 1024 * 1024 } : {}),
    ...(m.ipfixCollector && m.ipfixCollector.length > 0 ? { ipfixCollectors: m.ipfixCollector } : {}),
    ...(m.syslog ? { syslog: m.syslog, ...(m.syslogCa ? { syslogCa: m.syslogCa } : {}) } : {}),
    agentVersion,
  };
}
