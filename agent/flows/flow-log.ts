// The box's own flow log: one JSON line per finished flow in STATE_DIR/flows.jsonl, bounded: when
// the file passes half the limit it becomes flows.jsonl.1 (replacing the older one), so the two
// together never hold more than the limit. `crosslink agent flows` reads them back.
import { appendFile, open, rename, stat } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import type { FlowSink } from './collector.js';
import type { FlowRecord } from '../../lib/export/record.js';

export const FLOW_LOG_FILE = 'flows.jsonl';
export const DEFAULT_FLOW_LOG_MAX_BYTES = 32 * 1024 * 1024;

/** A record as one line of the file: its times also as ISO 8601, for people reading it raw. */
export function flowLine(r: FlowRecord): string {
  return `${JSON.stringify({
    start: new Date(r.startMs).toISOString(),
    end: r.endMs === null ? null : new Date(r.endMs).toISOString(),
    ...r,
  })}\n`;
}

export class FlowLogFile implements FlowSink {
  private buffer = '';
  private writing: Promise<void> = Promise.resolve();
  private size = -1;
  private flushTimer: NodeJS.Timeout | null = null;
  readonly counters = { lines: 0, rotations: 0, errors: 0 };

  constructor(
    private readonly path: string,
    private readonly maxBytes = DEFAULT_FLOW_LOG_MAX_BYTES,
    private readonly onError: (err: Error) => void = () => undefined,
  ) {}

  /** Queues the record; lines are written in batches (every 200 ms, or at 64 KB). */
  write(record: FlowRecord): void {
    this.buffer += flowLine(record);
    this.counters.lines++;
    if (this.buffer.length >= 64 * 1024) void this.flush();
    else this.flushTimer ??= setTimeout(() => void this.flush(), 200);
  }

  /** Writes what is queued; resolves when it is on disk (the file's, not fsync'd). */
  flush(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const chunk = this.buffer;
    this.buffer = '';
    if (chunk === '') return this.writing;
    this.writing = this.writing.then(() => this.append(chunk));
    return this.writing;
  }

  private async append(chunk: string): Promise<void> {
    try {
      if (this.size < 0) this.size = existsSync(this.path) ? (await stat(this.path)).size : 0;
      if (this.size > 0 && this.size + chunk.length > this.maxBytes / 2) {
        await rename(this.path, `${this.path}.1`);
        this.size = 0;
        this.counters.rotations++;
      }
      await appendFile(this.path, chunk, { mode: 0o640 });
      this.size += Buffer.byteLength(chunk);
    } catch (err) {
      this.counters.errors++;
      this.onError(err as Error);
    }
  }
}

/** Every record in the log, oldest first (the rotated file, then the current one). Lines that do not
 *  parse (a torn last line) are skipped. */
export function readFlowLog(path: string): FlowRecord[] {
  const out: FlowRecord[] = [];
  for (const file of [`${path}.1`, path]) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const r = parseFlowLine(line);
      if (r) out.push(r);
    }
  }
  return out;
}

export function parseFlowLine(line: string): FlowRecord | null {
  if (line.trim() === '') return null;
  try {
    const v = JSON.parse(line) as FlowRecord;
    return typeof v.startMs === 'number' && typeof v.srcAddress === 'string' ? v : null;
  } catch {
    return null;
  }
}

/**
 * Follows the log like `tail -F`: calls `onRecord` for each line added after `fromOffset` of the
 * current file, and starts again at 0 when the file was rotated. Returns a stop function.
 */
export function followFlowLog(path: string, onRecord: (r: FlowRecord) => void, pollMs = 250): () => void {
  let offset = existsSync(path) ? -1 : 0;
  let partial = '';
  let isBusy = false;
  const tick = async () => {
    if (isBusy) return;
    isBusy = true;
    try {
      if (!existsSync(path)) return;
      const size = (await stat(path)).size;
      if (offset < 0) offset = size; // start at the end: only new flows
      if (size < offset) {
        offset = 0; // rotated
        partial = '';
      }
      if (size === offset) return;
      const fh = await open(path, 'r');
      try {
        const buf = Buffer.alloc(size - offset);
        await fh.read(buf, 0, buf.length, offset);
        offset = size;
        const lines = (partial + buf.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const r = parseFlowLine(line);
          if (r) onRecord(r);
        }
      } finally {
        await fh.close();
      }
    } finally {
      isBusy = false;
    }
  };
  const timer = setInterval(() => void tick(), pollMs);
  void tick();
  return () => clearInterval(timer);
}
