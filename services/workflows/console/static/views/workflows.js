import { html, useEffect, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import { api } from '../api.js';
import { CopyButton, Loading, Problem, STATUSES, Status, when } from '../components.js';

const PAGE = 50;

async function loadPage(cursor) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (cursor) query.set('cursor', cursor);
  const page = await api(`/workflows?${query}`);
  let activity = [];
  if (page.items.length) {
    const ids = new URLSearchParams(page.items.map((w) => ['workflow_id', w.id]));
    activity = (await api(`/workflows/activity?${ids}`)).items;
  }
  const byId = Object.fromEntries(activity.map((a) => [a.workflow_id, a]));
  return { items: page.items.map((w) => ({ ...w, activity: byId[w.id] })), next: page.next_cursor };
}

function Counts({ activity }) {
  const counts = activity ? activity.runs_by_status : {};
  const shown = STATUSES.filter((s) => counts[s]);
  if (!shown.length) return html`<span class="muted">no runs in 24 h</span>`;
  return html`<ul class="counts" aria-label="Runs in the last 24 hours">
    ${shown.map((s) => html`<li key=${s}><${Status} value=${s} /> ${counts[s]}</li>`)}
  </ul>`;
}

function WorkflowCard({ workflow }) {
  const last = workflow.activity && workflow.activity.last_run;
  return html`<li class="card workflow">
    <div class="row">
      <h2><a href=${`#/workflows/${encodeURIComponent(workflow.id)}`}>${workflow.name}</a></h2>
      <span class=${workflow.active ? 'pill on' : 'pill off'}>${workflow.active ? 'active' : 'inactive'}</span>
      <span class="muted">v${workflow.version}</span>
    </div>
    <div class="row hook">
      <code class="url">${workflow.webhook_url}</code>
      <${CopyButton} text=${workflow.webhook_url} label="Copy URL" />
    </div>
    <dl class="facts">
      <div><dt>Last run</dt><dd>${last
        ? html`<a href=${`#/runs/${encodeURIComponent(last.id)}`}><${Status} value=${last.status} /></a> ${when(last.accepted_at)}`
        : html`<span class="muted">never</span>`}</dd></div>
      <div><dt>Last 24 h</dt><dd><${Counts} activity=${workflow.activity} /></dd></div>
    </dl>
    <a href=${`#/workflows/${encodeURIComponent(workflow.id)}/runs`}>Runs</a>
  </li>`;
}

export function WorkflowsPage() {
  const [items, setItems] = useState(null);
  const [next, setNext] = useState(null);
  const [problem, setProblem] = useState(null);

  const more = async (cursor) => {
    try {
      const page = await loadPage(cursor);
      setItems((old) => (cursor && old ? [...old, ...page.items] : page.items));
      setNext(page.next);
    } catch (error) {
      setProblem(error);
    }
  };
  useEffect(() => { more(null); }, []);

  if (problem) return html`<${Problem} error=${problem} />`;
  if (items === null) return html`<${Loading} />`;
  return html`<section>
    <div class="row"><h1>Workflows</h1><a class="button" href="#/workflows/new">New workflow</a></div>
    ${items.length === 0 && html`<p>No workflows yet. Create one here, or with <code>POST /workflows</code> (see the README).</p>`}
    <ul class="cards">${items.map((w) => html`<${WorkflowCard} key=${w.id} workflow=${w} />`)}</ul>
    ${next && html`<button type="button" onClick=${() => more(next)}>More workflows</button>`}
  </section>`;
}
