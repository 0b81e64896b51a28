// The audit log for reviewers: who did what, when, before and after, newest first, filterable; and
// whether the hash chain verifies (an edit or deletion in the store breaks it).
import { useEffect, useState } from 'preact/hooks';
import { get, when, type Session } from './api.js';

interface AuditEntry {
  id: number;
  atMs: number;
  actor: { name: string; role: string; address: string };
  action: string;
  target: string;
  before: unknown;
  after: unknown;
}
interface Verify {
  isValid: boolean;
  count: number;
  brokenAtId?: number;
  reason?: string;
}

/** Pages through /v1/audit (1,000 per page) up to this many entries, newest kept. */
const MAX_ENTRIES = 20_000;

async function loadAll(): Promise<AuditEntry[]> {
  const all: AuditEntry[] = [];
  let after = 0;
  while (all.length < MAX_ENTRIES) {
    const page = await get<{ entries: AuditEntry[]; nextAfterId: number | null }>(
      `/v1/audit?afterId=${after}&limit=1000`,
    );
    all.push(...page.entries);
    if (page.nextAfterId === null) break;
    after = page.nextAfterId;
  }
  return all.reverse();
}

export function AuditView({ session, tick }: { session: Session; tick: number }) {
  const [entries, setEntries] = useState<AuditEntry[]>([]);
  const [verify, setVerify] = useState<Verify | null>(null);
  const [filter, setFilter] = useState('');
  const [action, setAction] = useState('');
  const [error, setError] = useState<string | null>(null);
  const mayRead = session.permissions.includes('audit.read');
  useEffect(() => {
    if (!mayRead) return;
    Promise.all([loadAll(), get<Verify>('/v1/audit/verify')]).then(
      ([e, v]) => {
        setEntries(e);
        setVerify(v);
      },
      (e: Error) => setError(e.message),
    );
  }, [tick, mayRead]);
  if (!mayRead)
    return (
      <section class="page">
        <h2>Audit log</h2>
        <p class="muted">An {session.role} token may not read the audit log (needs the auditor or admin role).</p>
      </section>
    );
  const actions = [...new Set(entries.map((e) => e.action))].sort();
  const needle = filter.trim().toLowerCase();
  const shown = entries.filter(
    (e) =>
      (action === '' || e.action === action) &&
      (needle === '' ||
        `${e.actor.name} ${e.actor.role} ${e.actor.address} ${e.action} ${e.target}`.toLowerCase().includes(needle)),
  );
  return (
    <section class="page" aria-label="Audit log">
      <h2>Audit log</h2>
      {verify && (
        <p class={verify.isValid ? 'ok' : 'error'} role="status">
          {verify.isValid
            ? `Chain verified: ${verify.count} entries, none edited or removed.`
            : `Chain BROKEN at entry ${verify.brokenAtId ?? '?'}: ${verify.reason ?? ''}`}
        </p>
      )}
      {error && <p class="error">{error}</p>}
      <div class="row">
        <label>
          Filter{' '}
          <input
            type="search"
            value={filter}
            placeholder="who, what, target"
            onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          Action{' '}
          <select value={action} onChange={(e) => setAction((e.target as HTMLSelectElement).value)}>
            <option value="">all</option>
            {actions.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <span class="muted">
          {shown.length} of {entries.length}
        </span>
      </div>
      <table class="audit">
        <thead>
          <tr>
            <th>#</th>
            <th>When</th>
            <th>Who</th>
            <th>What</th>
            <th>Target</th>
            <th>Before → after</th>
          </tr>
        </thead>
        <tbody>
          {shown.slice(0, 500).map((e) => (
            <tr key={e.id}>
              <td>{e.id}</td>
              <td>{when(e.atMs)}</td>
              <td>
                {e.actor.name} ({e.actor.role}, {e.actor.address})
              </td>
              <td>{e.action}</td>
              <td>{e.target}</td>
              <td>
                <details>
                  <summary>show</summary>
                  <pre>{`before: ${JSON.stringify(e.before, null, 2)}\nafter: ${JSON.stringify(e.after, null, 2)}`}</pre>
                </details>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {shown.length > 500 && <p class="muted">Showing the newest 500; narrow the filter to see others.</p>}
    </section>
  );
}
