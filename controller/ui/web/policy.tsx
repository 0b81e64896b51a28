// The policy for reviewers: the current version and its rules (with tickets), a side-by-side diff of
// any two versions with the policy-level change list (`crosslink policy diff A B` prints the same
// lines), and a candidate pasted or uploaded, dry-run per box; applied only by a token that may.
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, get, when, type Session } from './api.js';
import { lineDiff } from './line-diff.js';

interface VersionInfo {
  version: number;
  createdAtMs: number;
  createdBy: string;
  comment: string;
}
interface RuleRow {
  name: string;
  from: string[];
  to: string[];
  ports: string[];
  ticket: string;
  description: string;
  notBefore: string | null;
  notAfter: string | null;
}
interface DryRunResult {
  baseVersion: number;
  testsRun: number;
  policy: string[];
  agents: Array<{ agent: string; changes: string[]; isConnected: boolean }>;
  notEnrolled: string[];
  unserved: Array<{ subnet: string; reason: string }>;
}

export function PolicyView({ session, tick }: { session: Session; tick: number }) {
  const [versions, setVersions] = useState<VersionInfo[]>([]);
  const [rules, setRules] = useState<{ version: number | null; rules: RuleRow[] }>({ version: null, rules: [] });
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    Promise.all([get<{ versions: VersionInfo[] }>('/v1/policy/versions'), get<typeof rules>('/v1/policy/rules')]).then(
      ([v, r]) => {
        setVersions(v.versions);
        setRules(r);
      },
      (e: Error) => setError(e.message),
    );
  }, [tick]);
  const current = versions.at(-1);
  return (
    <section class="page" aria-label="Policy">
      <h2>Policy {current ? `version ${current.version}` : '(none applied yet)'}</h2>
      {current && (
        <p>
          Applied {when(current.createdAtMs)} by {current.createdBy}
          {current.comment ? `: “${current.comment}”` : ''}
        </p>
      )}
      {error && <p class="error">{error}</p>}
      <h3>Rules</h3>
      <table class="rules">
        <thead>
          <tr>
            <th>Rule</th>
            <th>From</th>
            <th>To</th>
            <th>Ports</th>
            <th>Ticket</th>
            <th>Window</th>
            <th>Description</th>
          </tr>
        </thead>
        <tbody>
          {rules.rules.map((r) => (
            <tr key={r.name}>
              <td>{r.name}</td>
              <td>{r.from.join(', ')}</td>
              <td>{r.to.join(', ')}</td>
              <td>{r.ports.join(', ')}</td>
              <td>{r.ticket || '—'}</td>
              <td>{r.notBefore || r.notAfter ? `${r.notBefore ?? '…'} → ${r.notAfter ?? '…'}` : 'always'}</td>
              <td>{r.description}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {versions.length > 0 && <VersionDiff versions={versions} />}
      <Candidate session={session} />
    </section>
  );
}

function VersionDiff({ versions }: { versions: VersionInfo[] }) {
  const last = versions.at(-1)!.version;
  const [from, setFrom] = useState(versions.length > 1 ? versions.at(-2)!.version : last);
  const [to, setTo] = useState(last);
  const [result, setResult] = useState<{ changes: string[]; left: string; right: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const compare = () => {
    setError(null);
    Promise.all([
      get<{ changes: string[] }>(`/v1/policy/diff?from=${from}&to=${to}`),
      get<{ document: string }>(`/v1/policy/versions/${from}`),
      get<{ document: string }>(`/v1/policy/versions/${to}`),
    ]).then(
      ([d, a, b]) => setResult({ changes: d.changes, left: a.document, right: b.document }),
      (e: Error) => setError(e.message),
    );
  };
  const pick = (value: number, set: (v: number) => void, label: string) => (
    <label>
      {label}{' '}
      <select value={value} onChange={(e) => set(Number((e.target as HTMLSelectElement).value))}>
        {versions.map((v) => (
          <option key={v.version} value={v.version}>
            {v.version} — {when(v.createdAtMs)} {v.createdBy}
          </option>
        ))}
      </select>
    </label>
  );
  return (
    <>
      <h3>Compare two versions</h3>
      <div class="row">
        {pick(from, setFrom, 'From')}
        {pick(to, setTo, 'to')}
        <button type="button" onClick={compare}>
          Compare
        </button>
      </div>
      {error && <p class="error">{error}</p>}
      {result && (
        <div class="diff" aria-label={`Diff of versions ${from} and ${to}`}>
          <h4>Changes ({result.changes.length})</h4>
          {result.changes.length === 0 ? (
            <p class="muted">The same policy.</p>
          ) : (
            <ul class="changes">
              {result.changes.map((c, i) => (
                <li key={i} class={c.startsWith('+') ? 'added' : c.startsWith('-') ? 'removed' : 'changed'}>
                  {c}
                </li>
              ))}
            </ul>
          )}
          <SideBySide left={result.left} right={result.right} from={from} to={to} />
        </div>
      )}
    </>
  );
}

/** Unchanged lines kept around each change; longer unchanged runs fold into one row. */
const CONTEXT_LINES = 3;

function SideBySide({ left, right, from, to }: { left: string; right: string; from: number; to: number }) {
  const [isFolded, setFolded] = useState(true);
  const rows = lineDiff(left, right);
  const changed = rows.map((r) => r.kind !== 'same');
  const near = (i: number) => {
    for (let k = Math.max(0, i - CONTEXT_LINES); k <= Math.min(rows.length - 1, i + CONTEXT_LINES); k++)
      if (changed[k]) return true;
    return false;
  };
  const out: Array<{ fold: number } | { row: (typeof rows)[number]; i: number }> = [];
  for (let i = 0; i < rows.length; i++) {
    if (!isFolded || near(i)) out.push({ row: rows[i]!, i });
    else {
      const last = out.at(-1);
      if (last && 'fold' in last) last.fold++;
      else out.push({ fold: 1 });
    }
  }
  return (
    <table class="side-by-side">
      <colgroup>
        <col class="ln" />
        <col />
        <col class="ln" />
        <col />
      </colgroup>
      <thead>
        <tr>
          <th colSpan={2}>version {from}</th>
          <th colSpan={2}>version {to}</th>
        </tr>
      </thead>
      <tbody>
        {out.map((o) =>
          'fold' in o ? (
            <tr class="fold">
              <td colSpan={4}>
                <button type="button" class="linklike" onClick={() => setFolded(false)}>
                  ⋯ {o.fold} unchanged line{o.fold === 1 ? '' : 's'} (show all)
                </button>
              </td>
            </tr>
          ) : (
            <tr key={o.i} class={o.row.kind}>
              <td class="ln">{o.row.left?.line ?? ''}</td>
              <td class="code left">{o.row.left?.text ?? ''}</td>
              <td class="ln">{o.row.right?.line ?? ''}</td>
              <td class="code right">{o.row.right?.text ?? ''}</td>
            </tr>
          ),
        )}
      </tbody>
    </table>
  );
}

function Candidate({ session }: { session: Session }) {
  const [text, setText] = useState('');
  const [comment, setComment] = useState('');
  const [dry, setDry] = useState<DryRunResult | null>(null);
  const [error, setError] = useState<ApiError | Error | null>(null);
  const [applied, setApplied] = useState<string | null>(null);
  const mayDryRun = session.permissions.includes('policy.dryRun');
  const mayApply = session.permissions.includes('policy.write');
  if (!mayDryRun)
    return (
      <>
        <h3>Candidate policy</h3>
        <p class="muted">
          A {session.role} token may read the policy but not dry-run or apply one (needs the operator or admin role).
        </p>
      </>
    );
  const run = () => {
    setError(null);
    setApplied(null);
    api<DryRunResult>('POST', '/v1/policy/dry-run', text, 'application/yaml').then(setDry, (e: Error) => {
      setDry(null);
      setError(e);
    });
  };
  const apply = () => {
    if (!dry) return;
    setError(null);
    const body = JSON.stringify({ document: text, comment });
    fetch('/v1/policy', {
      method: 'PUT',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'if-match': `"${dry.baseVersion}"`, 'x-crosslink-ui': '1' },
      body,
    })
      .then(async (res) => {
        const j = (await res.json()) as {
          version?: number;
          message?: string;
          code?: string;
          details?: ApiError['details'];
        };
        if (!res.ok) throw new ApiError(res.status, j.code ?? '', j.message ?? res.statusText, j.details ?? []);
        setApplied(`Applied as version ${j.version ?? '?'}.`);
        setDry(null);
      })
      .catch((e: Error) => setError(e));
  };
  return (
    <>
      <h3>Candidate policy</h3>
      <p class="muted">
        Paste or upload a policy file; the dry run validates it, runs its tests and shows what each box would change.
        Nothing is changed.
      </p>
      <label for="candidate">Policy (YAML)</label>
      <textarea
        id="candidate"
        rows={14}
        value={text}
        spellcheck={false}
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
      />
      <div class="row">
        <label>
          Upload{' '}
          <input
            type="file"
            accept=".yaml,.yml,.json,text/yaml,application/json"
            onChange={(e) => {
              const f = (e.target as HTMLInputElement).files?.[0];
              if (f) void f.text().then(setText);
            }}
          />
        </label>
        <button type="button" onClick={run} disabled={text.trim() === ''}>
          Dry run
        </button>
      </div>
      {error && <ErrorBox error={error} />}
      {applied && <p class="ok">{applied}</p>}
      {dry && (
        <div class="dry-run" aria-label="Dry run">
          <p>
            Against version {dry.baseVersion}; {dry.testsRun} policy test(s) passed.
          </p>
          <h4>Policy changes</h4>
          <ul class="changes">
            {dry.policy.map((c, i) => (
              <li key={i}>{c}</li>
            ))}
          </ul>
          <h4>Per box</h4>
          {dry.agents.length === 0 ? (
            <p class="muted">No box’s configuration changes.</p>
          ) : (
            dry.agents.map((a) => (
              <details key={a.agent} open>
                <summary>
                  {a.agent} ({a.changes.length} change{a.changes.length === 1 ? '' : 's'}
                  {a.isConnected ? '' : ', not connected: gets it when it reconnects'})
                </summary>
                <ul>
                  {a.changes.map((c, i) => (
                    <li key={i}>{c}</li>
                  ))}
                </ul>
              </details>
            ))
          )}
          {dry.unserved.length > 0 && (
            <>
              <h4>Would be unserved</h4>
              <ul>
                {dry.unserved.map((u) => (
                  <li key={u.subnet}>
                    {u.subnet}: {u.reason}
                  </li>
                ))}
              </ul>
            </>
          )}
          {mayApply ? (
            <div class="row">
              <label>
                Comment (why){' '}
                <input type="text" value={comment} onInput={(e) => setComment((e.target as HTMLInputElement).value)} />
              </label>
              <button type="button" class="primary" onClick={apply}>
                Apply as version {dry.baseVersion + 1}
              </button>
            </div>
          ) : (
            <p class="muted">A {session.role} token may not apply a policy (needs the admin role).</p>
          )}
        </div>
      )}
    </>
  );
}

export function ErrorBox({ error }: { error: Error }) {
  const details = error instanceof ApiError ? error.details : [];
  return (
    <div class="error" role="alert">
      <p>{error.message}</p>
      {details.length > 0 && (
        <ul>
          {details.map((d, i) => (
            <li key={i}>
              {d.line !== undefined ? `line ${d.line}: ` : ''}
              {d.path ? `${d.path}: ` : ''}
              {d.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
