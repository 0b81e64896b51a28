// The machine while section (e) measures: load, CPU busy share, CPU per namespace, netns clean-up.
import { readFileSync, readdirSync } from 'node:fs';
import { sh } from '../agent/host/linux/netns.fixture.js';

export const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** Jiffies busy and total over all cores. */
export function cpuJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = f[3]! + f[4]!; // idle + iowait
  return { busy: total - idle, total };
}
export const busyShare = (a: { busy: number; total: number }, b: { busy: number; total: number }) =>
  b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;

const CLK_TCK = 100;
/** utime+stime (ms) of each process in a namespace, keyed by PID (with its name). */
export function netnsCpu(ns: string): Map<number, { comm: string; ms: number }> {
  const out = new Map<number, { comm: string; ms: number }>();
  for (const p of sh(['ip', 'netns', 'pids', ns]).stdout.split('\n').filter(Boolean)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const f = stat.slice(close + 2).split(' ');
      out.set(Number(p), { comm, ms: ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
export function cpuDelta(
  before: Map<number, { comm: string; ms: number }>,
  after: Map<number, { comm: string; ms: number }>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [pid, a] of after) {
    const d = a.ms - (before.get(pid)?.ms ?? 0);
    out[a.comm] = (out[a.comm] ?? 0) + d;
  }
  return out;
}

/** Is the kernel's namespace clean-up running (a kworker executing the `netns` workqueue)? */
function isNetnsCleanupRunning(): boolean {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').includes('+netns')) return true;
    } catch {
      // gone
    }
  }
  return false;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until no namespace clean-up has run for 300 ms (at most 20 s), then 0.5 s more; ms waited. */
export async function settle(): Promise<number> {
  const t0 = Date.now();
  let quietSince = Date.now();
  while (Date.now() - quietSince < 300 && Date.now() - t0 < 20_000) {
    if (isNetnsCleanupRunning()) quietSince = Date.now();
    await sleep(20);
  }
  await sleep(500);
  return Date.now() - t0;
}
