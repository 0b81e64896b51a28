// The controller's audit events as RFC 5424 syslog (`--syslog URL`), for the SIEMs both networks
// run: every entry of the audit log, in order, once each. The log itself is read (not the code paths
// that write it), so nothing written by any path, or by another controller on the same database, is
// missed; entries from before this process started are not resent (the audit log keeps them).
import type { Logger } from '../../lib/logger.js';
import { formatSyslog, SYSLOG_SD_PEN } from '../../lib/export/syslog-format.js';
import type { AuditEntry, Store } from '../store/store.js';

/** RFC 5424 facility 13: "log audit". */
export const FACILITY_LOG_AUDIT = 13;
const SEVERITY_NOTICE = 5;
export const AUDIT_SD_ID = `audit@${SYSLOG_SD_PEN}`;

/** One audit entry as one syslog message. PURE. */
export function formatAuditSyslog(e: AuditEntry, hostname: string): string {
  return formatSyslog({
    facility: FACILITY_LOG_AUDIT,
    severity: SEVERITY_NOTICE,
    timestampMs: e.atMs,
    hostname,
    appName: 'crosslink-controller',
    msgId: e.action,
    structuredData: [
      {
        id: AUDIT_SD_ID,
        params: [
          ['id', String(e.id)],
          ['action', e.action],
          ['target', e.target],
          ['actor', e.actor.name],
          ['role', e.actor.role],
          ['address', e.actor.address],
          ['hash', e.hash],
        ],
      },
    ],
    message: `${e.actor.name} (${e.actor.role}${e.actor.address ? ` from ${e.actor.address}` : ''}): ${e.action} ${e.target}`,
  });
}

export class AuditSyslogForwarder {
  private cursor = 0;
  private timer: NodeJS.Timeout | null = null;
  private isBusy = false;
  sent = 0;

  constructor(
    private readonly opts: {
      store: Pick<Store, 'listAudit'>;
      send(message: string): void;
      hostname: string;
      log: Logger;
      intervalMs?: number;
    },
  ) {}

  /** Starts after the newest entry there is now, then sends each new one within intervalMs. */
  async start(): Promise<void> {
    for (;;) {
      const page = await this.opts.store.listAudit({ afterId: this.cursor, limit: 1000 });
      if (page.length === 0) break;
      this.cursor = page[page.length - 1]!.id;
    }
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs ?? 1000);
  }

  /** Sends the entries added since the last tick. */
  async tick(): Promise<void> {
    if (this.isBusy) return;
    this.isBusy = true;
    try {
      for (;;) {
        const page = await this.opts.store.listAudit({ afterId: this.cursor, limit: 500 });
        for (const e of page) {
          this.opts.send(formatAuditSyslog(e, this.opts.hostname));
          this.cursor = e.id;
          this.sent++;
        }
        if (page.length < 500) break;
      }
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'audit syslog: cannot read the audit log');
    } finally {
      this.isBusy = false;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
