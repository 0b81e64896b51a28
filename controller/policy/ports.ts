// The `ports` mini-language: "tcp/443", "udp/53", "tcp/8000-8100", "tcp" (all tcp ports), "icmp", "any".
import type { PortSpec } from './types.js';

export type PortParse = { ok: true; spec: PortSpec } | { ok: false; message: string };

const PORT = /^\d{1,5}$/;

function portNumber(text: string): number | undefined {
  if (!PORT.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

export function parsePortSpec(raw: unknown): PortParse {
  if (typeof raw === 'number') {
    return { ok: false, message: `port ${raw} needs a protocol: write tcp/${raw} or udp/${raw}` };
  }
  if (typeof raw !== 'string')
    return { ok: false, message: 'must be a string such as tcp/443, udp/53, tcp/8000-8100, icmp or any' };
  const text = raw.trim().toLowerCase();
  if (text === 'any') return { ok: true, spec: { protocol: 'any' } };
  if (text === 'icmp') return { ok: true, spec: { protocol: 'icmp' } };
  if (text === 'tcp' || text === 'udp') return { ok: true, spec: { protocol: text } };
  if (/^(icmp|any)\//.test(text)) return { ok: false, message: `"${raw}": ${text.split('/')[0]} takes no port` };
  const m = /^(tcp|udp)\/(.+)$/.exec(text);
  if (!m)
    return { ok: false, message: `"${raw}" is not a port: use tcp/443, udp/53, tcp/8000-8100, tcp, udp, icmp or any` };
  const protocol = m[1] as 'tcp' | 'udp';
  const [firstText = '', lastText, ...rest] = (m[2] ?? '').split('-');
  if (lastText === undefined) {
    const p = portNumber(firstText);
    if (p === undefined) return { ok: false, message: `"${raw}": port must be a number 1-65535` };
    return { ok: true, spec: { protocol, first: p, last: p } };
  }
  if (rest.length === 0) {
    const first = portNumber(firstText);
    const last = portNumber(lastText);
    if (first === undefined || last === undefined)
      return { ok: false, message: `"${raw}": ports must be numbers 1-65535` };
    if (first > last)
      return { ok: false, message: `"${raw}": range is backwards (write ${protocol}/${last}-${first})` };
    return { ok: true, spec: { protocol, first, last } };
  }
  return { ok: false, message: `"${raw}" is not a port range: use ${protocol}/FIRST-LAST` };
}

export function formatPortSpec(spec: PortSpec): string {
  if (spec.protocol === 'any' || spec.protocol === 'icmp') return spec.protocol;
  if (spec.first === undefined || spec.last === undefined) return spec.protocol;
  return spec.first === spec.last ? `${spec.protocol}/${spec.first}` : `${spec.protocol}/${spec.first}-${spec.last}`;
}

/** Does `spec` admit `proto`/`port`? proto 'any' asks whether the spec admits any traffic at all. */
export function portSpecMatches(spec: PortSpec, proto: 'tcp' | 'udp' | 'icmp' | 'any', port?: number): boolean {
  if (proto === 'any' || spec.protocol === 'any') return true;
  if (spec.protocol !== proto) return false;
  if (proto === 'icmp') return true;
  if (spec.first === undefined || spec.last === undefined) return true;
  if (port === undefined) return true;
  return spec.first <= port && port <= spec.last;
}

export interface NormalizedPorts {
  protocol: 'tcp' | 'udp' | 'icmp' | 'any';
  /** Sorted, merged inclusive ranges; empty means all ports (tcp/udp). */
  ranges: Array<{ first: number; last: number }>;
}

/**
 * Normalizes a rule's ports into one entry per protocol: "any" swallows everything, a bare
 * "tcp" swallows tcp ranges, ranges are sorted and merged. Sorted by protocol.
 */
export function normalizePorts(specs: readonly PortSpec[]): NormalizedPorts[] {
  if (specs.some((s) => s.protocol === 'any')) return [{ protocol: 'any', ranges: [] }];
  const out: NormalizedPorts[] = [];
  for (const protocol of ['icmp', 'tcp', 'udp'] as const) {
    const mine = specs.filter((s) => s.protocol === protocol);
    if (mine.length === 0) continue;
    if (protocol === 'icmp' || mine.some((s) => s.first === undefined)) {
      out.push({ protocol, ranges: [] });
      continue;
    }
    const ranges = mine
      .map((s) => ({ first: s.first as number, last: s.last as number }))
      .sort((a, b) => a.first - b.first || a.last - b.last);
    const merged: Array<{ first: number; last: number }> = [];
    for (const r of ranges) {
      const top = merged[merged.length - 1];
      if (top && r.first <= top.last + 1) top.last = Math.max(top.last, r.last);
      else merged.push({ ...r });
    }
    out.push({ protocol, ranges: merged });
  }
  return out;
}
