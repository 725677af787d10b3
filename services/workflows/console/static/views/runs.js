import { html, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import { api } from '../api.js';
import {
  Loading, NotFound, Problem, STATUSES, Status, Waiting, duration, usePolling, when,
} from '../components.js';

const PAGE = 25;
const REFRESH_MS = 5000;

function RunRow({ run }) {
  return html`<li class="run-row">
    <a href=${`#/runs/${encodeURIComponent(run.id)}`}><${Status} value=${run.status} />
      <code>${run.id}</code></a>
    <span>${when(run.accepted_at)}</span>
    <span>${duration(run.duration_ms)}</span>
    <span class="muted">v${run.workflow_version}${run.retry_of ? ' · retry' : ''}${run.replay_of ? ' · replay' : ''}</span>
    <${Waiting} run=${run} />
    ${run.error && html`<span class="error-text">${run.error}</span>`}
  </li>`;
}

export function RunsPage({ workflowId, query }) {
  const status = query.get('status') || '';
  // Cursors of the pages before this one, so "Newer" goes back without server support.
  const [cursors, setCursors] = useState([]);
  const cursor = cursors.length ? cursors[cursors.length - 1] : null;
  const [page, setPage] = useState(null);
  const [missing, setMissing] = useState(false);
  const [problem, setProblem] = useState(null);
  const [live, setLive] = useState(true);

  const load = async () => {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (status) params.set('status', status);
    if (cursor) params.set('cursor', cursor);
    try {
      setPage(await api(`/workflows/${encodeURIComponent(workflowId)}/runs?${params}`));
      setProblem(null);
    } catch (error) {
      if (error.status === 404) setMissing(true);
      else setProblem(error);
    }
  };
  // Only the newest page refreshes by itself: older pages do not change under the reader.
  usePolling(load, REFRESH_MS, live && cursor === null, [status, cursor]);

  const filter = (event) => {
    setCursors([]);
    const value = event.target.value;
    const base = `#/workflows/${encodeURIComponent(workflowId)}/runs`;
    window.location.hash = value ? `${base}?status=${encodeURIComponent(value)}` : base;
  };

  if (missing) return html`<${NotFound} what="Workflow" />`;
  return html`<section>
    <p class="crumbs"><a href="#/">Workflows</a> / <a href=${`#/workflows/${encodeURIComponent(workflowId)}`}>workflow</a> /</p>
    <h1>Runs</h1>
    <div class="actions">
      <label>Status <select onChange=${filter} value=${status}>
        <option value="">all</option>
        ${STATUSES.map((s) => html`<option key=${s} value=${s}>${s}</option>`)}
      </select></label>
      <label class="check"><input type="checkbox" checked=${live} onChange=${(e) => setLive(e.target.checked)} />
        Refresh every ${REFRESH_MS / 1000} s</label>
    </div>
    <${Problem} error=${problem} />
    ${page === null ? html`<${Loading} />` : html`
      ${page.items.length === 0 && html`<p class="muted">No runs${status ? ` with status ${status}` : ''} yet.</p>`}
      <ul class="runs" aria-live="polite">${page.items.map((run) => html`<${RunRow} key=${run.id} run=${run} />`)}</ul>
      <div class="actions">
        ${cursors.length > 0 && html`<button type="button" onClick=${() => setCursors([])}>Newest</button>
          <button type="button" onClick=${() => setCursors(cursors.slice(0, -1))}>Newer</button>`}
        ${page.next_cursor && html`<button type="button" onClick=${() => setCursors([...cursors, page.next_cursor])}>Older</button>`}
      </div>`}
  </section>`;
}
