// What the map shows of one box or one link when selected: its state and reason from the diagram,
// then (fetched on selection and on every live update) the controller's health detail — handshake
// age, RTT, loss per peer — the per-rule counters and the state history of the last day.
import { useEffect, useState } from 'preact/hooks';
import type { DiagramBox, DiagramLink, DiagramModel } from '../../diagram/types.js';
import { age, bytes, get, when } from './api.js';
import type { Selection } from './map.js';

interface PeerView {
  name: string;
  handshakeAgeSeconds: number | null;
  rxBytes: number;
  txBytes: number;
  isProbed: boolean;
  isReachable: boolean;
  rttMs: number | null;
  lossRatio: number;
}
interface LinkHealth {
  name: string;
  state: string;
  reason: string;
  handshakeAgeSeconds: number | null;
  rttMs: number | null;
  lossRatio: number | null;
}
interface AgentDetail {
  agent: {
    lastReportAgeSeconds: number | null;
    appliedGeneration: number | null;
    desiredGeneration: number;
    peers: PeerView[];
  };
  links: LinkHealth[];
}
interface HistoryEvent {
  subject: string;
  from: string | null;
  to: string | null;
  atMs: number;
  reason: string;
}
interface RuleStats {
  rule: string;
  connections: number;
  packets: number;
  bytes: number;
  boxes: Array<{ agent: string; direction: string; connections: number; bytes: number }>;
}

interface Props {
  model: DiagramModel;
  selection: Selection;
  onSelect: (s: Selection) => void;
  /** Changes on every live update: the details refetch. */
  tick: number;
}

export function Details({ model, selection, onSelect, tick }: Props) {
  if (!selection)
    return (
      <aside class="details" aria-label="Details">
        <p class="muted">Select a box or a link on the map.</p>
      </aside>
    );
  if (selection.kind === 'box') {
    const box = model.boxes.find((b) => b.name === selection.name);
    if (!box) return <aside class="details">Box {selection.name} is no longer in the overlay.</aside>;
    return <BoxDetails box={box} model={model} onSelect={onSelect} tick={tick} />;
  }
  const link = model.links.find((l) => l.name === selection.name);
  if (!link) return <aside class="details">Link {selection.name} is no longer in the overlay.</aside>;
  return <LinkDetails link={link} onSelect={onSelect} tick={tick} />;
}

function useFetch<T>(path: string | null, tick: number): { data: T | null; error: string | null } {
  const [state, setState] = useState<{ data: T | null; error: string | null }>({ data: null, error: null });
  useEffect(() => {
    if (path === null) return;
    let isCurrent = true;
    get<T>(path).then(
      (data) => isCurrent && setState({ data, error: null }),
      (e: Error) => isCurrent && setState({ data: null, error: e.message }),
    );
    return () => {
      isCurrent = false;
    };
  }, [path, tick]);
  return state;
}

const DAY_MS = 24 * 3600 * 1000;

function History({ subject, tick }: { subject: string; tick: number }) {
  // One day back, at most 50 changes: the newest matter most.
  const since = Math.floor((Date.now() - DAY_MS) / 60000) * 60000;
  const { data, error } = useFetch<{ events: HistoryEvent[] }>(
    `/v1/health/history?subject=${encodeURIComponent(subject)}&since=${since}`,
    tick,
  );
  if (error) return <p class="error">History: {error}</p>;
  const events = (data?.events ?? []).slice(-50).reverse();
  return (
    <>
      <h3>History (24 h)</h3>
      {events.length === 0 ? (
        <p class="muted">No change in the last day.</p>
      ) : (
        <table class="compact">
          <thead>
            <tr>
              <th>When</th>
              <th>Change</th>
              <th>Why</th>
            </tr>
          </thead>
          <tbody>
            {events.map((e, i) => (
              <tr key={i}>
                <td>{when(e.atMs)}</td>
                <td>{`${e.from ?? '—'} → ${e.to ?? 'gone'}`}</td>
                <td>{e.reason}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

function BoxDetails({
  box,
  model,
  onSelect,
  tick,
}: {
  box: DiagramBox;
  model: DiagramModel;
  onSelect: Props['onSelect'];
  tick: number;
}) {
  const { data, error } = useFetch<AgentDetail>(
    box.isEnrolled ? `/v1/health/agents/${encodeURIComponent(box.name)}` : null,
    tick,
  );
  const links = model.links.filter((l) => l.a === box.name || l.b === box.name);
  return (
    <aside class="details" aria-label={`Box ${box.name}`}>
      <h2>
        {box.name} <span class={`badge state-${box.state}`}>{box.state}</span>
      </h2>
      {box.site && <p>{box.site}</p>}
      <p class="reason">{box.reason}</p>
      <dl>
        <dt>Zones</dt>
        <dd>{box.zones.join(', ') || '—'}</dd>
        <dt>Underlays</dt>
        <dd>{box.underlays.join(', ') || '—'}</dd>
        <dt>Relay</dt>
        <dd>{box.isRelay ? 'yes: carries other boxes’ encrypted datagrams' : 'no'}</dd>
        <dt>Agent</dt>
        <dd>{!box.isEnrolled ? 'not enrolled yet' : box.isConnected ? 'connected' : 'not connected'}</dd>
        {data && (
          <>
            <dt>Last report</dt>
            <dd>{age(data.agent.lastReportAgeSeconds)} ago</dd>
            <dt>Config</dt>
            <dd>
              generation {data.agent.appliedGeneration ?? '—'} applied of {data.agent.desiredGeneration}
            </dd>
          </>
        )}
      </dl>
      <h3>Subnets</h3>
      {box.subnets.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ul>
          {box.subnets.map((s) => (
            <li key={s.name}>
              <strong>{s.name}</strong> {s.cidrs.join(', ')} ({s.zone}) — {s.role}
            </li>
          ))}
        </ul>
      )}
      {error && <p class="error">{error}</p>}
      <h3>Links</h3>
      {links.length === 0 ? (
        <p class="muted">No permitted flow with another box.</p>
      ) : (
        <table class="compact">
          <thead>
            <tr>
              <th>Peer</th>
              <th>State</th>
              <th>Path</th>
              <th>Handshake</th>
              <th>RTT</th>
              <th>Loss</th>
            </tr>
          </thead>
          <tbody>
            {links.map((l) => {
              const peer = l.a === box.name ? l.b : l.a;
              const pv = data?.agent.peers.find((p) => p.name === peer);
              return (
                <tr key={l.name}>
                  <td>
                    <button type="button" class="linklike" onClick={() => onSelect({ kind: 'link', name: l.name })}>
                      {peer}
                    </button>
                  </td>
                  <td>
                    <span class={`badge state-${l.state}`}>{l.state}</span>
                  </td>
                  <td>{l.path === 'relay' ? `via ${l.relays[0] ?? '?'}` : l.path}</td>
                  <td>{pv ? age(pv.handshakeAgeSeconds) : '—'}</td>
                  <td>{pv?.rttMs != null ? `${pv.rttMs.toFixed(1)} ms` : '—'}</td>
                  <td>{pv?.isProbed ? `${Math.round(pv.lossRatio * 100)} %` : '—'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <History subject={`agent:${box.name}`} tick={tick} />
    </aside>
  );
}

function LinkDetails({ link, onSelect, tick }: { link: DiagramLink; onSelect: Props['onSelect']; tick: number }) {
  const health = useFetch<AgentDetail>(`/v1/health/agents/${encodeURIComponent(link.a)}`, tick);
  const stats = useFetch<{ rules: RuleStats[] }>(`/v1/rules/stats`, tick);
  const lh = health.data?.links.find((l) => l.name === link.name);
  const rules = (stats.data?.rules ?? []).filter((r) => link.rules.includes(r.rule));
  const ends = new Set([link.a, link.b]);
  return (
    <aside class="details" aria-label={`Link ${link.name}`}>
      <h2>
        {link.a} ⇄ {link.b} <span class={`badge state-${link.state}`}>{link.state}</span>
      </h2>
      <p class="reason">{link.reason}</p>
      <dl>
        <dt>Path</dt>
        <dd>
          {link.path === 'relay'
            ? `relayed through ${link.relays.join(', then ')} (the relay forwards ciphertext; it holds no key)`
            : link.path === 'direct'
              ? `direct over ${link.underlays.join(', ')}`
              : 'no path: the boxes share no underlay and no relay joins them'}
        </dd>
        <dt>Underlays</dt>
        <dd>{link.underlays.join(' / ') || '—'}</dd>
        <dt>Handshake</dt>
        <dd>{lh ? `${age(lh.handshakeAgeSeconds)} ago` : '—'}</dd>
        <dt>RTT</dt>
        <dd>{lh?.rttMs != null ? `${lh.rttMs.toFixed(1)} ms` : '—'}</dd>
        <dt>Loss</dt>
        <dd>{lh?.lossRatio != null ? `${Math.round(lh.lossRatio * 100)} %` : '—'}</dd>
        <dt>Ends</dt>
        <dd>
          {[link.a, link.b].map((n) => (
            <button key={n} type="button" class="linklike" onClick={() => onSelect({ kind: 'box', name: n })}>
              {n}
            </button>
          ))}
        </dd>
      </dl>
      <h3>Rules and their counters</h3>
      {link.rules.length === 0 ? (
        <p class="muted">No rule.</p>
      ) : (
        <table class="compact">
          <thead>
            <tr>
              <th>Rule</th>
              <th>Connections (these two boxes)</th>
              <th>Bytes</th>
            </tr>
          </thead>
          <tbody>
            {link.rules.map((name) => {
              const r = rules.find((x) => x.rule === name);
              const mine = (r?.boxes ?? []).filter((b) => ends.has(b.agent));
              const conns = mine.reduce((s, b) => s + b.connections, 0);
              const by = mine.reduce((s, b) => s + b.bytes, 0);
              return (
                <tr key={name}>
                  <td>{name}</td>
                  <td>{r ? conns : '—'}</td>
                  <td>{r ? bytes(by) : '—'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {(health.error ?? stats.error) && <p class="error">{health.error ?? stats.error}</p>}
      <History subject={`link:${link.name}`} tick={tick} />
    </aside>
  );
}
