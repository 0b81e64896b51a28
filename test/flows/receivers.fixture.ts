// Real receivers for the flow exporters' tests: a daemon in its own process group, stopped by PID,
// and nfacctd (Debian's pmacct) set up to print every IPFIX flow it decodes as a JSON line.
import type { Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CROSSLINK_PEN,
  DESTINATION_ZONE_ELEMENT_ID,
  REVERSE_PEN,
  RULE_NAME_ELEMENT_ID,
  SOURCE_ZONE_ELEMENT_ID,
} from '../../lib/export/ipfix.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined || Date.now() > deadline) return v;
    await sleep(100);
  }
}

export async function freePort(type: 'udp' | 'tcp'): Promise<number> {
  if (type === 'udp') {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    const { port } = s.address();
    s.close();
    return port;
  }
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/** Starts a daemon in its own process group; teardown ends that group (TERM, then KILL). */
export function daemon(t: Test, argv: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  t.teardown(async () => {
    const pid = child.pid!;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      return;
    }
    // nfacctd's core can sit in recvfrom() after SIGTERM: give it a second, then SIGKILL the group.
    if ((await Promise.race([exited.then(() => true), sleep(1000).then(() => false)])) === false) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
      await exited;
    }
  });
  return { child, output: () => out };
}

export const hasNfacctd = existsSync('/usr/sbin/nfacctd');

export type NfacctdRow = Record<string, string | number>;

/**
 * nfacctd on 127.0.0.1:PORT printing each decoded flow as JSON (true addresses, ports, times, the
 * rule name, reverse counts, firewall event, direction). null when it did not come up (its output
 * is then a test comment).
 */
export async function startNfacctd(
  t: Test,
  port?: number,
): Promise<{ port: number; rows(): Promise<NfacctdRow[]>; output(): string } | null> {
  const dir = await mkdtemp(join(tmpdir(), 'crosslink-nfacctd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  port ??= await freePort('udp');
  // nfacctd 1.7.7 knows neither RFC 5103 reverse elements nor ours: custom primitives read them.
  await writeFile(
    join(dir, 'primitives.lst'),
    [
      `name=rule\tfield_type=${CROSSLINK_PEN}:${RULE_NAME_ELEMENT_ID}\tlen=vlen\tsemantics=str`,
      `name=src_zone\tfield_type=${CROSSLINK_PEN}:${SOURCE_ZONE_ELEMENT_ID}\tlen=vlen\tsemantics=str`,
      `name=dst_zone\tfield_type=${CROSSLINK_PEN}:${DESTINATION_ZONE_ELEMENT_ID}\tlen=vlen\tsemantics=str`,
      `name=rev_bytes\tfield_type=${REVERSE_PEN}:1\tlen=8\tsemantics=u_int`,
      `name=rev_pkts\tfield_type=${REVERSE_PEN}:2\tlen=8\tsemantics=u_int`,
      // Not "fw_event": nfacctd has that name already, for natEvent(230).
      'name=firewall_event\tfield_type=233\tlen=1\tsemantics=u_int',
      'name=flow_dir\tfield_type=61\tlen=1\tsemantics=u_int',
      '',
    ].join('\n'),
  );
  const out = join(dir, 'flows.json');
  await writeFile(
    join(dir, 'nfacctd.conf'),
    [
      'daemonize: false',
      'nfacctd_ip: 127.0.0.1',
      `nfacctd_port: ${port}`,
      'nfacctd_time_new: false',
      `aggregate_primitives: ${join(dir, 'primitives.lst')}`,
      'plugins: print',
      'print_output: json',
      `print_output_file: ${out}`,
      'print_output_file_append: true',
      'print_refresh_time: 1',
      'aggregate: src_host, dst_host, proto, src_port, dst_port, timestamp_start, timestamp_end, rule, src_zone, dst_zone, rev_bytes, rev_pkts, firewall_event, flow_dir',
      '',
    ].join('\n'),
  );
  const nf = daemon(t, ['/usr/sbin/nfacctd', '-f', join(dir, 'nfacctd.conf')]);
  const ready = await until(() => (nf.output().includes('waiting for NetFlow/IPFIX data') ? true : undefined), 10_000);
  if (!ready) {
    t.comment(nf.output());
    return null;
  }
  const listening = port;
  return {
    port: listening,
    output: nf.output,
    async rows() {
      const text = existsSync(out) ? await readFile(out, 'utf8') : '';
      return text
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as NfacctdRow);
    },
  };
}
