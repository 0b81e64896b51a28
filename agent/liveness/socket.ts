// The liveness UDP port (default 51821): the echo through the tunnel (echo.ts) and the LAN
// advertisements (advert.ts), told apart by their magic. One udp4 socket on 0.0.0.0 (with
// SO_BROADCAST, for the adverts' directed broadcast) and one udp6 socket on [::] (v6 only).
//
// Made for 1,000 peers x 5 packets/s: large socket buffers, an address lookup that answers at once
// (an IP literal needs none; dgram's default defers every send by a dns.lookup and a tick), no
// per-send callback, and the received buffer handed on as it is.
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../../lib/logger.js';
import { decodeAdvert, encodeAdvert, isAdvertPacket, type Advert } from './advert.js';
import { isEchoPacket } from './echo.js';
import { DEFAULT_LIVENESS_PORT } from './settings.js';

/** Receive and send buffer asked for (the kernel caps it at net.core.rmem_max / wmem_max). */
const BUFFER_BYTES = 4 * 1024 * 1024;

export type EchoListener = (address: string, packet: Uint8Array) => void;
export type AdvertListener = (address: string, advert: Advert) => void;

/** The directed broadcast of `cidr` ("10.20.1.2/24" -> "10.20.1.255"); null for v6 or bad text. */
export function directedBroadcast(cidr: string): string | null {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) return null;
  const octets = m.slice(1, 5).map(Number);
  const len = Number(m[5]);
  if (octets.some((o) => o > 255) || len > 32) return null;
  const addr = octets.reduce((a, o) => ((a << 8) | o) >>> 0, 0);
  const host = len === 32 ? 0 : (0xffffffff >>> len) >>> 0;
  // /31 and /32 have no broadcast address: send to the other end (/31) or to ourselves (/32).
  const bcast = len >= 31 ? (len === 31 ? (addr ^ 1) >>> 0 : addr) : (addr | host) >>> 0;
  return [bcast >>> 24, (bcast >>> 16) & 255, (bcast >>> 8) & 255, bcast & 255].join('.');
}

// dgram calls lookup(address, family, callback); an IP literal is its own answer.
const literalLookup =
  (family: 4 | 6) =>
  (address: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void =>
    cb(null, address, family);

/** Log each distinct socket problem once until the socket works again (no line per packet). */
class ProblemLog {
  private last = '';
  constructor(private readonly log: Logger | undefined) {}
  report(what: string, e: NodeJS.ErrnoException, extra: Record<string, unknown>): void {
    const key = `${what}:${e.code ?? e.message}`;
    if (key === this.last) return;
    this.last = key;
    this.log?.error({ ...extra, code: e.code, err: e.message }, `liveness: ${what} failed (${e.code ?? e.message})`);
  }
  clear(): void {
    this.last = '';
  }
}

export class LivenessSocket {
  private v4: dgram.Socket | null = null;
  private v6: dgram.Socket | null = null;
  private port: number;
  private readonly echoListeners: EchoListener[] = [];
  private readonly advertListeners: AdvertListener[] = [];
  private readonly problems: ProblemLog;
  /** Datagrams with neither magic, or adverts that did not decode. */
  readonly counters = { rx: 0, tx: 0, ignored: 0 };

  constructor(private readonly opts: { port?: number; log?: Logger; bindAddress4?: string; bindAddress6?: string }) {
    this.port = opts.port ?? DEFAULT_LIVENESS_PORT;
    this.problems = new ProblemLog(opts.log);
    this.open();
  }

  get boundPort(): number {
    return this.port;
  }

  /** Resolves once both sockets are bound (or have failed to: that is logged, not thrown). */
  async ready(): Promise<{ v4: boolean; v6: boolean }> {
    const one = (s: dgram.Socket | null) =>
      new Promise<boolean>((resolve) => {
        if (s === null) return resolve(false);
        try {
          s.address();
          return resolve(true);
        } catch {
          /* not bound yet */
        }
        s.once('listening', () => resolve(true));
        s.once('close', () => resolve(false));
      });
    const [v4, v6] = await Promise.all([one(this.v4), one(this.v6)]);
    return { v4, v6 };
  }

  onEcho(cb: EchoListener): void {
    this.echoListeners.push(cb);
  }

  onAdvert(cb: AdvertListener): void {
    this.advertListeners.push(cb);
  }

  /** One echo packet to `address` (an IP literal) at the liveness port. Never throws. */
  sendEcho(address: string, packet: Uint8Array): void {
    const s = address.includes(':') ? this.v6 : this.v4;
    if (s === null) return;
    try {
      s.send(packet, this.port, address);
      this.counters.tx++;
    } catch (e) {
      this.problems.report('echo send', e as NodeJS.ErrnoException, { address });
    }
  }

  /** One advert on the LAN of `lanCidr` (this box's own LAN address with prefix length):
   *  IPv4 to the network's directed broadcast, IPv6 to ff02::1 on `ifname`. Our own adverts come
   *  back to us (broadcast and multicast loop); receivers drop their own agent name. */
  sendAdvert(lanCidr: string, ifname: string, advert: Advert): void {
    const bytes = encodeAdvert(advert);
    let to: string | null;
    let s: dgram.Socket | null;
    if (lanCidr.includes(':')) {
      to = /^[A-Za-z0-9_.-]{1,15}$/.test(ifname) ? `ff02::1%${ifname}` : null;
      s = this.v6;
    } else {
      to = directedBroadcast(lanCidr);
      s = this.v4;
    }
    if (to === null) {
      this.problems.report('advert send', new Error(`no LAN destination for ${lanCidr} on "${ifname}"`), {});
      return;
    }
    if (s === null) return;
    try {
      s.send(bytes, this.port, to);
      this.counters.tx++;
    } catch (e) {
      this.problems.report('advert send', e as NodeJS.ErrnoException, { to });
    }
  }

  /** Moves to another port: both sockets are closed and bound again. */
  setPort(port: number): void {
    if (port === this.port && (this.v4 !== null || this.v6 !== null)) return;
    this.closeSockets();
    this.port = port;
    this.open();
  }

  close(): void {
    this.closeSockets();
  }

  private open(): void {
    this.problems.clear();
    this.v4 = this.bind('udp4', this.opts.bindAddress4 ?? '0.0.0.0');
    this.v6 = this.bind('udp6', this.opts.bindAddress6 ?? '::');
  }

  private bind(type: 'udp4' | 'udp6', address: string): dgram.Socket {
    const s = dgram.createSocket({
      type,
      ipv6Only: type === 'udp6',
      recvBufferSize: BUFFER_BYTES,
      sendBufferSize: BUFFER_BYTES,
      lookup: literalLookup(type === 'udp4' ? 4 : 6),
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      this.problems.report(`${type} socket on ${net.isIPv6(address) ? `[${address}]` : address}:${this.port}`, e, {});
      // A socket that failed to bind is useless: close it, the other family keeps working.
      if (e.syscall === 'bind') this.drop(s);
    });
    s.on('listening', () => {
      if (type === 'udp4') s.setBroadcast(true);
      else s.setMulticastLoopback(true);
    });
    s.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => this.dispatch(msg, rinfo.address));
    s.bind({ port: this.port, address, exclusive: true });
    return s;
  }

  private dispatch(msg: Buffer, address: string): void {
    this.counters.rx++;
    if (isEchoPacket(msg)) {
      for (const cb of this.echoListeners) cb(address, msg);
      return;
    }
    if (isAdvertPacket(msg)) {
      const a = decodeAdvert(msg);
      if (a !== null) {
        for (const cb of this.advertListeners) cb(address, a);
        return;
      }
    }
    this.counters.ignored++;
  }

  private drop(s: dgram.Socket): void {
    if (this.v4 === s) this.v4 = null;
    if (this.v6 === s) this.v6 = null;
    try {
      s.close();
    } catch {
      /* already closed */
    }
  }

  private closeSockets(): void {
    for (const s of [this.v4, this.v6]) if (s !== null) this.drop(s);
  }
}
