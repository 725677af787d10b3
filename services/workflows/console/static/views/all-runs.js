// Every run of the user's workflows (GET /runs), filtered by status, workflow and time range.
// The filter lives in the address (#/runs?status=failed&workflow_id=…&since=…&until=…), so a
// filtered view can be bookmarked, shared and reloaded; the page cursor does not (a page of a
// moving list is not worth keeping).
import { html, useEffect, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import { api } from '../api.js';
import {
  Loading, Problem, STATUSES, Status, Waiting, duration, runLink, usePolling, when,
} from '../components.js';

const PAGE = 25;
const REFRESH_MS = 5000;
const FILTERS = ['status', 'workflow_id', 'since', 'until'];

// ISO (the URL) <-> the local "YYYY-MM-DDTHH:MM" a datetime-local input shows.
function toLocalInput(iso) {
  const t = iso ? new Date(iso) : null;
  if (!t || Number.isNaN(t.getTime())) return '';
  return new Date(t.getTime() - t.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function fromLocalInput(value) {
  const t = value ? new Date(value) : null;
  return t && !Number.isNaN(t.getTime()) ? t.toISOString() : '';
}

function go(filter) {
  const query = new URLSearchParams(FILTERS.filter((k) => filter[k]).map((k) => [k, filter[k]]));
  const search = query.toString();
  window.location.hash = search ? `#/runs?${search}` : '#/runs';
}

function RunRow({ run, names }) {
  const name = names[run.workflow_id];
  return html`<li class="run-row">
    <a href=${runLink(run.id)}><${Status} value=${run.status} /><code>${run.id}</code></a>
    <a href=${`#/workflows/${encodeURIComponent(run.workflow_id)}`}>${name || 'workflow'}</a>
    <span>${when(run.accepted_at)}</span>
    <span>${duration(run.duration_ms)}</span>
    <span class="muted">v${run.workflow_version}${run.retry_of ? ' · retry' : ''}${run.replay_of ? ' · replay' : ''}</span>
    <${Waiting} run=${run} />
    ${run.error && html`<span class="error-text">${run.error}</span>`}
  </li>`;
}

function Filters({ filter, workflows }) {
  const change = (key) => (event) => go({ ...filter, [key]: event.target.value });
  const range = (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    go({ ...filter, since: fromLocalInput(form.get('since')), until: fromLocalInput(form.get('until')) });
  };
  return html`<form class="filters" onSubmit=${range} aria-label="Filter runs">
    <label>Status <select name="status" value=${filter.status} onChange=${change('status')}>
      <option value="">all</option>
      ${STATUSES.map((s) => html`<option key=${s} value=${s}>${s}</option>`)}
    </select></label>
    <label>Workflow <select name="workflow_id" value=${filter.workflow_id} onChange=${change('workflow_id')}>
      <option value="">all</option>
      ${workflows.map((w) => html`<option key=${w.id} value=${w.id}>${w.name}</option>`)}
    </select></label>
    <label>From <input type="datetime-local" name="since" defaultValue=${toLocalInput(filter.since)} /></label>
    <label>To <input type="datetime-local" name="until" defaultValue=${toLocalInput(filter.until)} /></label>
    <button type="submit">Apply time range</button>
    ${FILTERS.some((k) => filter[k]) && html`<button type="button" class="link" onClick=${() => go({})}>Clear filters</button>`}
  </form>`;
}

export function AllRunsPage({ query }) {
  const filter = Object.fromEntries(FILTERS.map((k) => [k, query.get(k) || '']));
  const [cursors, setCursors] = useState([]);
  const cursor = cursors.length ? cursors[cursors.length - 1] : null;
  const [page, setPage] = useState(null);
  const [workflows, setWorkflows] = useState([]);
  const [problem, setProblem] = useState(null);

  useEffect(() => {
    api('/workflows?limit=100').then((found) => setWorkflows(found.items)).catch(() => setWorkflows([]));
  }, []);

  const load = async () => {
    const params = new URLSearchParams({ limit: String(PAGE) });
    FILTERS.forEach((k) => { if (filter[k]) params.set(k, filter[k]); });
    if (cursor) params.set('cursor', cursor);
    try {
      setPage(await api(`/runs?${params}`));
      setProblem(null);
    } catch (error) {
      setProblem(error);
    }
  };
  usePolling(load, REFRESH_MS, cursor === null, [cursor]);

  const names = Object.fromEntries(workflows.map((w) => [w.id, w.name]));
  return html`<section>
    <h1>Runs</h1>
    <${Filters} filter=${filter} workflows=${workflows} />
    <${Problem} error=${problem} />
    ${page === null ? html`<${Loading} />` : html`
      ${page.items.length === 0 && html`<p class="muted">No runs match.</p>`}
      <ul class="runs all-runs" aria-live="polite">${page.items.map((run) => html`<${RunRow} key=${run.id} run=${run} names=${names} />`)}</ul>
      <div class="actions">
        ${cursors.length > 0 && html`<button type="button" onClick=${() => setCursors([])}>Newest</button>
          <button type="button" onClick=${() => setCursors(cursors.slice(0, -1))}>Newer</button>`}
        ${page.next_cursor && html`<button type="button" onClick=${() => setCursors([...cursors, page.next_cursor])}>Older</button>`}
      </div>`}
  </section>`;
}
