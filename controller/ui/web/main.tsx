// The web view's entry: who is logged in (GET /ui/session), three pages (map, policy, audit) by the
// URL's hash, and one Server-Sent Events stream per tab (/ui/events) that says when health or the
// policy changed; the page then refetches what it shows, at most once a second — no polling.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { DiagramModel } from '../../diagram/types.js';
import { get, when, type Session } from './api.js';
import { AuditView } from './audit.js';
import { Details } from './details.js';
import { MapView, type Selection } from './map.js';
import { PolicyView } from './policy.js';

type Page = 'map' | 'policy' | 'audit';
const pageOf = (hash: string): Page => (hash === '#/policy' ? 'policy' : hash === '#/audit' ? 'audit' : 'map');
const REFRESH_MIN_INTERVAL_MS = 1000;

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [model, setModel] = useState<DiagramModel | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [page, setPage] = useState<Page>(pageOf(location.hash));
  const [selection, setSelection] = useState<Selection>(null);
  const [tick, setTick] = useState(0);
  // The policy and audit pages refetch on a policy change (and when opened), not on every health change.
  const [policyTick, setPolicyTick] = useState(0);
  const [live, setLive] = useState<'connecting' | 'live' | 'lost'>('connecting');
  const lastRefresh = useRef(0);
  const pending = useRef<number | null>(null);

  const refresh = () => {
    get<DiagramModel>('/v1/diagram').then(
      (m) => {
        setModel(m);
        setError(null);
        setTick((t) => t + 1);
      },
      (e: Error) => setError(e.message),
    );
  };
  // At most one refetch a second however many events arrive.
  const scheduleRefresh = () => {
    if (pending.current !== null) return;
    const wait = Math.max(0, lastRefresh.current + REFRESH_MIN_INTERVAL_MS - Date.now());
    pending.current = window.setTimeout(() => {
      pending.current = null;
      lastRefresh.current = Date.now();
      refresh();
    }, wait);
  };

  useEffect(() => {
    get<Session>('/ui/session').then(setSession, (e: Error) => setError(e.message));
    refresh();
    const onHash = () => setPage(pageOf(location.hash));
    window.addEventListener('hashchange', onHash);
    const events = new EventSource('/ui/events');
    events.addEventListener('open', () => setLive('live'));
    events.addEventListener('error', () => setLive('lost'));
    events.addEventListener('health', scheduleRefresh);
    events.addEventListener('policy', () => {
      setPolicyTick((t) => t + 1);
      scheduleRefresh();
    });
    return () => {
      window.removeEventListener('hashchange', onHash);
      events.close();
    };
  }, []);

  // First frame with the map on screen, in ms since navigation began (page, bundle, /v1/diagram,
  // render): the figure bench/ui-render.ts reports (docs/performance.md).
  useEffect(() => {
    if (model && document.body.dataset.firstRenderMs === undefined)
      requestAnimationFrame(() => {
        document.body.dataset.firstRenderMs = String(Math.round(performance.now()));
      });
  }, [model]);

  const counts = model
    ? (['ok', 'degraded', 'down', 'unknown'] as const).map(
        (s) => [s, model.boxes.filter((b) => b.state === s).length] as const,
      )
    : [];
  return (
    <>
      <header>
        <h1>Crosslink</h1>
        <nav aria-label="Pages">
          {(['map', 'policy', 'audit'] as const).map((p) => (
            <a key={p} href={`#/${p}`} aria-current={page === p ? 'page' : undefined}>
              {p === 'map' ? 'Map' : p === 'policy' ? 'Policy' : 'Audit'}
            </a>
          ))}
        </nav>
        <span class="spacer" />
        <span class={`live ${live}`} role="status" aria-live="polite">
          {live === 'live' ? 'live' : live === 'lost' ? 'live updates lost: reconnecting' : 'connecting'}
        </span>
        {session && (
          <span class="who">
            {session.name} ({session.role})
          </span>
        )}
        <form method="post" action="/ui/logout">
          <button type="submit">Log out</button>
        </form>
      </header>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <main>
        {page === 'map' && model && (
          <>
            <div class="summary" aria-label="Summary">
              <span>
                Policy version {model.policyVersion ?? '—'} · {model.boxes.length} boxes · {model.links.length} links ·
                as of {when(model.atMs)}
              </span>
              {counts.map(([s, n]) => (
                <span key={s} class={`badge state-${s}`} data-count={s}>
                  {n} {s}
                </span>
              ))}
            </div>
            {model.unserved.length > 0 && (
              <div class="unserved" role="status">
                <strong>Unserved subnets:</strong>
                <ul>
                  {model.unserved.map((u) => (
                    <li key={u.subnet}>
                      {u.subnet}: {u.reason}
                    </li>
                  ))}
                </ul>
              </div>
            )}
            <div class="map-page">
              <MapView model={model} selection={selection} onSelect={setSelection} />
              <Details model={model} selection={selection} onSelect={setSelection} tick={tick} />
            </div>
          </>
        )}
        {page === 'policy' && session && <PolicyView session={session} tick={policyTick} />}
        {page === 'audit' && session && <AuditView session={session} tick={policyTick} />}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
