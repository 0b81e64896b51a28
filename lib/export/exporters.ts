// Sends flow records to what the networks already run: IPFIX over UDP to one or more collectors,
// and RFC 5424 syslog over UDP, TCP (RFC 6587 octet counting) or TLS (RFC 5425). An exporter never
// blocks or crashes the agent: each destination has a bounded queue, and what cannot be queued or
// sent is dropped and counted (stats()); TCP and TLS reconnect with backoff.
//
// Use: parse the option text with parseCollector / parseSyslogUrl (they throw CrosslinkError
// 'config_invalid' naming the option), build the exporter, start(), export(records) as records
// come, close() on shutdown.
import { readFileSync } from 'node:fs';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Backoff, type BackoffOptions } from '../backoff.js';
import { systemClock, type Clock } from '../clock.js';
import { CrosslinkError } from '../errors.js';
import type { Logger } from '../logger.js';
import { realTimers, type Timers } from '../timers.js';
import { IpfixEncoder, DEFAULT_TEMPLATE_REFRESH_MS } from './ipfix.js';
import type { FlowRecord } from './record.js';
import { formatFlowSyslog, octetCountingFrame } from './syslog-format.js';

/** IANA's port for IPFIX, used when a collector is given without one. */
export const DEFAULT_IPFIX_PORT = 4739;
/** RFC 5426 (UDP), RFC 6587's usual syslog-conn port (TCP), RFC 5425 (TLS). */
export const DEFAULT_SYSLOG_PORTS = { udp: 514, tcp: 601, tls: 6514 } as const;
/** A looked-up collector address is used this long before it is looked up again. */
const RESOLVE_TTL_MS = 60_000;

export interface Endpoint {
  /** An IPv4 or IPv6 literal (without brackets) or a host name. */
  host: string;
  port: number;
}
export type SyslogTransport = keyof typeof DEFAULT_SYSLOG_PORTS;
export interface SyslogTarget extends Endpoint {
  transport: SyslogTransport;
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

function invalid(optionName: string, text: string, reason: string): CrosslinkError {
  return new CrosslinkError('config_invalid', `${optionName}: ${reason} (got "${text}")`, [
    { path: optionName, message: reason },
  ]);
}

/** HOST[:PORT] where HOST is an IPv4 literal, [IPv6 literal] or a host name. PURE. */
function parseHostPort(text: string, rest: string, optionName: string, defaultPort: number): Endpoint {
  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw invalid(optionName, text, 'an IPv6 address opened with "[" has no "]"');
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw invalid(optionName, text, 'expected ":PORT" after "]"');
    portText = after === '' ? undefined : after.slice(1);
    if (isIP(host) !== 6) throw invalid(optionName, text, `"${host}" is not an IPv6 address`);
  } else {
    const colons = rest.split(':').length - 1;
    if (colons > 1) throw invalid(optionName, text, 'put an IPv6 address in brackets, e.g. [2001:db8::1]:4739');
    [host, portText] = colons ? (rest.split(':') as [string, string]) : [rest, undefined];
    if (host === '') throw invalid(optionName, text, 'the host is missing');
    if (isIP(host) !== 4 && (/^[\d.]+$/.test(host) || !HOSTNAME.test(host))) {
      throw invalid(optionName, text, `"${host}" is neither an IPv4 address nor a host name`);
    }
  }
  if (portText === undefined) return { host, port: defaultPort };
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) throw invalid(optionName, text, `the port must be 1-65535, not "${portText}"`);
  return { host, port };
}

/** An IPFIX collector, "HOST:PORT" (PORT 4739 when left out). PURE. */
export function parseCollector(text: string, optionName = '--ipfix-collector'): Endpoint {
  return parseHostPort(text, text.trim(), optionName, DEFAULT_IPFIX_PORT);
}

/** A syslog destination: udp://HOST[:514], tcp://HOST[:601] or tls://HOST[:6514]. PURE. */
export function parseSyslogUrl(text: string, optionName = '--syslog'): SyslogTarget {
  const m = /^([a-z]+):\/\/([^/?#]*)\/?$/i.exec(text.trim());
  if (!m) throw invalid(optionName, text, 'expected udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT');
  const transport = m[1]!.toLowerCase();
  if (transport !== 'udp' && transport !== 'tcp' && transport !== 'tls') {
    throw invalid(optionName, text, `the scheme must be udp, tcp or tls, not "${m[1]}"`);
  }
  return { transport, ...parseHostPort(text, m[2]!, optionName, DEFAULT_SYSLOG_PORTS[transport]) };
}

export interface ExporterStats {
  /** Messages handed to the network (datagrams sent, or frames written to the stream). */
  sentMessages: number;
  /** Messages dropped: queue full, name lookup or send failed, or never delivered before close. */
  droppedMessages: number;
  /** Send, connect and lookup errors. */
  errors: number;
  /** Messages waiting now. */
  queuedMessages: number;
}

export interface ExporterDeps {
  clock?: Clock;
  timers?: Timers;
  log?: Logger;
  /** Name lookup (tests replace it); node:dns's lookup when absent. */
  lookup?: (host: string) => Promise<{ address: string; family: number }>;
}

/** A bounded FIFO of messages with the counters every destination keeps. */
class Outbox {
  readonly queue: Buffer[] = [];
  sent = 0;
  dropped = 0;
  errors = 0;
  private lastWarnMs = -Infinity;
  constructor(
    private readonly limit: number,
    private readonly what: string,
    private readonly clock: Clock,
    private readonly log: Logger | undefined,
  ) {}
  push(message: Buffer): void {
    if (this.queue.length >= this.limit) this.dropped++;
    else this.queue.push(message);
  }
  dropAll(): void {
    this.dropped += this.queue.length;
    this.queue.length = 0;
  }
  /** Counts an error; warns at most once a minute per destination so an outage is not a log flood. */
  fail(err: unknown, doing: string): void {
    this.errors++;
    const now = this.clock.nowMs();
    if (now - this.lastWarnMs < 60_000) return;
    this.lastWarnMs = now;
    this.log?.warn({ err, destination: this.what, dropped: this.dropped }, `flow export: ${doing} failed`);
  }
  stats(): ExporterStats {
    return {
      sentMessages: this.sent,
      droppedMessages: this.dropped,
      errors: this.errors,
      queuedMessages: this.queue.length,
    };
  }
}

/** Datagrams to one destination: looks a host name up (cached), one socket per address family. */
class DatagramSender {
  readonly outbox: Outbox;
  private sockets = new Map<number, UdpSocket>();
  private resolved: { address: string; family: number; atMs: number } | null = null;
  private pumping = false;
  private closed = false;
  constructor(
    readonly endpoint: Endpoint,
    limit: number,
    private readonly deps: Required<Pick<ExporterDeps, 'clock' | 'lookup'>> & ExporterDeps,
  ) {
    this.outbox = new Outbox(limit, `udp://${endpoint.host}:${endpoint.port}`, deps.clock, deps.log);
    const family = isIP(endpoint.host);
    if (family) this.resolved = { address: endpoint.host, family, atMs: Infinity };
  }
  send(message: Buffer): void {
    if (this.closed) return void this.outbox.dropped++;
    this.outbox.push(message);
    if (!this.pumping) void this.pump();
  }
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.outbox.queue.length && !this.closed) {
        const to = await this.resolve();
        if (!to) {
          this.outbox.dropAll();
          break;
        }
        const message = this.outbox.queue.shift()!;
        const err = await new Promise<Error | null>((done) => {
          this.socket(to.family).send(message, this.endpoint.port, to.address, (e) => done(e ?? null));
        });
        if (err) {
          this.outbox.dropped++;
          this.outbox.fail(err, 'send');
        } else this.outbox.sent++;
      }
    } finally {
      this.pumping = false;
    }
  }
  private async resolve(): Promise<{ address: string; family: number } | null> {
    const now = this.deps.clock.nowMs();
    if (this.resolved && now - this.resolved.atMs < RESOLVE_TTL_MS) return this.resolved;
    try {
      const { address, family } = await this.deps.lookup(this.endpoint.host);
      this.resolved = { address, family, atMs: now };
      return this.resolved;
    } catch (err) {
      this.outbox.fail(err, `looking up ${this.endpoint.host}`);
      // Keep the last good address, if any, rather than going silent because DNS is away.
      return this.resolved;
    }
  }
  private socket(family: number): UdpSocket {
    let s = this.sockets.get(family);
    if (!s) {
      const created = createSocket(family === 6 ? 'udp6' : 'udp4');
      created.on('error', (err) => {
        this.outbox.fail(err, 'socket');
        created.close();
        if (this.sockets.get(family) === created) this.sockets.delete(family);
      });
      created.unref();
      this.sockets.set(family, created);
      s = created;
    }
    return s;
  }
  close(): void {
    this.closed = true;
    this.outbox.dropAll();
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }
}

const defaultLookup = (host: string) => lookup(host);

export interface IpfixExporterOptions extends ExporterDeps {
  collectors: readonly Endpoint[];
  observationDomainId: number;
  templateRefreshMs?: number;
  maxMessageBytes?: number;
  /** Messages waiting per collector beyond which new ones are dropped (default 1024). */
  maxQueuedMessages?: number;
}

/**
 * IPFIX to each collector over UDP. All collectors get the same messages from one encoder (the same
 * sequence numbers, the same template timing). While started, the templates also go on a timer, so
 * a restarted collector learns them without waiting for a flow.
 */
export class IpfixExporter {
  private readonly encoder: IpfixEncoder;
  private readonly senders: DatagramSender[];
  private readonly clock: Clock;
  private readonly timers: Timers;
  private timer: unknown = null;
  private started = false;
  private failed = 0;

  constructor(private readonly opts: IpfixExporterOptions) {
    this.encoder = new IpfixEncoder(opts);
    this.clock = opts.clock ?? systemClock;
    this.timers = opts.timers ?? realTimers;
    const deps = { ...opts, clock: this.clock, lookup: opts.lookup ?? defaultLookup };
    this.senders = opts.collectors.map((c) => new DatagramSender(c, opts.maxQueuedMessages ?? 1024, deps));
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.export([]);
    this.schedule();
  }

  private schedule(): void {
    const every = this.opts.templateRefreshMs ?? DEFAULT_TEMPLATE_REFRESH_MS;
    this.timer = this.timers.setTimeout(() => {
      if (!this.started) return;
      this.export([]);
      this.schedule();
    }, every);
  }

  /** Encodes and queues the records for every collector; never throws. */
  export(records: readonly FlowRecord[]): void {
    let messages: Buffer[];
    try {
      messages = this.encoder.encode(records, this.clock.nowMs());
    } catch (err) {
      this.failed += records.length;
      this.opts.log?.error({ err }, 'flow export: IPFIX encoding failed');
      return;
    }
    for (const m of messages) for (const s of this.senders) s.send(m);
  }

  /** Per collector ("host:port") counters, plus records the encoder could not encode. */
  stats(): { collectors: Record<string, ExporterStats>; recordsEncoded: number; recordsSkipped: number } {
    const collectors: Record<string, ExporterStats> = {};
    for (const s of this.senders) collectors[`${s.endpoint.host}:${s.endpoint.port}`] = s.outbox.stats();
    return {
      collectors,
      recordsEncoded: this.encoder.sequenceNumber,
      recordsSkipped: this.encoder.skippedRecords + this.failed,
    };
  }

  close(): void {
    this.started = false;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    for (const s of this.senders) s.close();
  }
}

export interface SyslogExporterOptions extends ExporterDeps {
  target: SyslogTarget;
  /** PEM file of the CA(s) that sign the receiver's certificate (tls); the system's CAs when absent. */
  caFile?: string;
  /** Option name for errors about caFile (default --syslog-ca). */
  caFileOption?: string;
  /** The HOSTNAME field; each record's box when absent. */
  hostname?: string;
  appName?: string;
  /** Messages waiting beyond which new ones are dropped (default 10,000). */
  maxQueuedMessages?: number;
  backoff?: BackoffOptions;
  connectTimeoutMs?: number;
}

/** RFC 5424 syslog of flow records (or any formatted message, see send()). */
export class SyslogExporter {
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly outbox: Outbox;
  private readonly udp: DatagramSender | null;
  private readonly ca: Buffer | undefined;
  private readonly backoff: Backoff;
  private socket: Socket | null = null;
  private isConnected = false;
  private reconnectTimer: unknown = null;
  private started = false;

  constructor(private readonly opts: SyslogExporterOptions) {
    this.clock = opts.clock ?? systemClock;
    this.timers = opts.timers ?? realTimers;
    const limit = opts.maxQueuedMessages ?? 10_000;
    const { transport, host, port } = opts.target;
    this.udp =
      transport === 'udp'
        ? new DatagramSender(opts.target, limit, { ...opts, clock: this.clock, lookup: opts.lookup ?? defaultLookup })
        : null;
    this.outbox = this.udp?.outbox ?? new Outbox(limit, `${transport}://${host}:${port}`, this.clock, opts.log);
    this.backoff = new Backoff(opts.backoff ?? { initialMs: 500, maxMs: 30_000 });
    if (opts.caFile !== undefined) {
      try {
        this.ca = readFileSync(opts.caFile);
      } catch (err) {
        throw new CrosslinkError(
          'config_invalid',
          `${opts.caFileOption ?? '--syslog-ca'}: cannot read ${opts.caFile}`,
          [{ path: opts.caFileOption ?? '--syslog-ca', message: 'unreadable file' }],
          { cause: err },
        );
      }
    }
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    if (!this.udp) this.connect();
  }

  /** Formats and queues one message per record; never throws. */
  export(records: readonly FlowRecord[]): void {
    const nowMs = this.clock.nowMs();
    for (const r of records) {
      let line: string;
      try {
        line = formatFlowSyslog(r, { nowMs, hostname: this.opts.hostname, appName: this.opts.appName });
      } catch (err) {
        this.outbox.dropped++;
        this.outbox.fail(err, 'formatting a record');
        continue;
      }
      this.send(line);
    }
  }

  /** Queues one formatted RFC 5424 message (formatSyslog), e.g. an audit event. */
  send(message: string): void {
    if (this.udp) return this.udp.send(Buffer.from(message, 'utf8'));
    if (!this.started) return void this.outbox.dropped++;
    this.outbox.push(octetCountingFrame(message));
    this.drain();
  }

  stats(): ExporterStats {
    return this.outbox.stats();
  }

  get connected(): boolean {
    return this.udp ? true : this.isConnected;
  }

  /** Resolves true once everything queued has been written (or sent), false after timeoutMs. */
  async flushed(timeoutMs: number): Promise<boolean> {
    const deadline = this.clock.nowMs() + timeoutMs;
    while (this.clock.nowMs() < deadline) {
      if (this.outbox.queue.length === 0 && (this.udp || !this.socket || this.socket.writableLength === 0)) return true;
      await new Promise<void>((r) => setTimeout(r, 20));
    }
    return false;
  }

  close(): void {
    this.started = false;
    if (this.reconnectTimer !== null) this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.udp?.close();
    this.socket?.end();
    this.socket = null;
    this.isConnected = false;
    this.outbox.dropAll();
  }

  private connect(): void {
    const { transport, host, port } = this.opts.target;
    const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
    const s =
      transport === 'tls'
        ? tlsConnect({ host, port, ca: this.ca, servername: isIP(host) ? undefined : host })
        : netConnect({ host, port });
    this.socket = s;
    s.setTimeout(timeoutMs, () => s.destroy(new Error(`no connection within ${timeoutMs} ms`)));
    s.setKeepAlive(true, 30_000);
    s.on(transport === 'tls' ? 'secureConnect' : 'connect', () => {
      s.setTimeout(0);
      this.isConnected = true;
      this.backoff.reset();
      this.opts.log?.info({ destination: `${transport}://${host}:${port}` }, 'flow export: syslog connected');
      this.drain();
    });
    s.on('drain', () => this.drain());
    // A receiver sends nothing back; read and discard so a chatty one cannot fill our buffers.
    s.on('data', () => undefined);
    s.on('end', () => s.destroy());
    s.on('error', (err) => this.outbox.fail(err, 'syslog connection'));
    s.on('close', () => {
      if (this.socket !== s) return;
      this.socket = null;
      this.isConnected = false;
      if (!this.started) return;
      // Frames already written to a socket that broke may be lost: TCP syslog has no acknowledgements.
      this.reconnectTimer = this.timers.setTimeout(() => {
        this.reconnectTimer = null;
        if (this.started) this.connect();
      }, this.backoff.next());
    });
  }

  /** Writes queued frames while the socket takes them; waits for 'drain' when its buffer is full. */
  private drain(): void {
    const s = this.socket;
    while (s && this.isConnected && !s.writableNeedDrain && this.outbox.queue.length) {
      s.write(this.outbox.queue.shift()!);
      this.outbox.sent++;
    }
  }
}
