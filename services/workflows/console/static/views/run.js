import { html, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import { api } from '../api.js';
import {
  ACTIVE_STATUSES, Json, Loading, NotFound, Problem, Status, Waiting, duration, runLink, usePolling, when,
} from '../components.js';
import { Steps } from './steps.js';

const LIVE_MS = 1000;

export function RunPage({ id }) {
  const [run, setRun] = useState(null);
  const [missing, setMissing] = useState(false);
  const [problem, setProblem] = useState(null);
  const path = `/runs/${encodeURIComponent(id)}`;

  const load = async () => {
    try {
      setRun(await api(path));
    } catch (error) {
      if (error.status === 404) setMissing(true);
      else setProblem(error);
    }
  };
  const live = run === null || ACTIVE_STATUSES.includes(run.status);
  usePolling(load, LIVE_MS, live && !missing, [id]);

  const act = async (action) => {
    setProblem(null);
    try {
      const answer = await api(`${path}/${action}`, { method: 'POST' });
      if (action === 'retry') window.location.hash = `#/runs/${encodeURIComponent(answer.run_id)}`;
      else await load();
    } catch (error) {
      setProblem(error);
    }
  };

  if (missing) return html`<${NotFound} what="Run" />`;
  if (run === null) return problem ? html`<${Problem} error=${problem} />` : html`<${Loading} />`;
  const workflow = `#/workflows/${encodeURIComponent(run.workflow_id)}`;
  const trigger = run.trigger || {};
  return html`<section>
    <p class="crumbs"><a href="#/">Workflows</a> / <a href=${workflow}>workflow</a> / <a href=${`${workflow}/runs`}>runs</a> /</p>
    <div class="row"><h1>Run</h1><span data-testid="run-status"><${Status} value=${run.status} /></span>
      ${live && html`<span class="muted" aria-live="polite">updating live</span>`}</div>
    <code class="run-id">${run.id}</code>
    <dl class="facts">
      <div><dt>Accepted</dt><dd>${when(run.accepted_at)}</dd></div>
      <div><dt>Started</dt><dd>${when(run.started_at)}</dd></div>
      <div><dt>Finished</dt><dd>${when(run.finished_at)}</dd></div>
      <div><dt>Duration</dt><dd>${duration(run.duration_ms)}</dd></div>
      <div><dt>Version</dt><dd>${run.workflow_version}</dd></div>
      <div><dt>Attempt</dt><dd>${run.attempt}</dd></div>
      ${run.resume_at && html`<div><dt>Resumes</dt><dd>${when(run.resume_at)}</dd></div>`}
      ${run.retry_of && html`<div><dt>Retry of</dt><dd><a href=${runLink(run.retry_of)}>${run.retry_of}</a></dd></div>`}
      ${run.replay_of && html`<div><dt>Replay of</dt><dd><a href=${runLink(run.replay_of)} data-testid="replay-of">${run.replay_of}</a></dd></div>`}
      ${run.parent_run_id && html`<div><dt>Parent run</dt><dd><a href=${runLink(run.parent_run_id)} data-testid="parent-run">${run.parent_run_id}</a></dd></div>`}
      ${run.waiting_reason && html`<div><dt>Waiting</dt><dd><${Waiting} run=${run} /></dd></div>`}
    </dl>
    ${run.error && html`<pre class="error-text run-error" role="alert" tabindex="0">${run.error}</pre>`}
    <div class="actions">
      <button type="button" onClick=${() => act('retry')}>Retry</button>
      ${ACTIVE_STATUSES.includes(run.status) && html`<button type="button" class="danger" onClick=${() => act('cancel')}>Cancel run</button>`}
    </div>
    <${Problem} error=${problem} />
    <h2>Steps</h2>
    ${run.steps.length === 0 && html`<p class="muted">No step has finished yet.</p>`}
    <${Steps} run=${run} />
    <h2>Trigger</h2>
    <p class="muted">${trigger.method || ''} received ${when(trigger.received_at)}</p>
    <${Json} label="body" value=${trigger.body} open=${true} />
    <${Json} label="headers" value=${trigger.headers} />
    ${trigger.query && Object.keys(trigger.query).length > 0 && html`<${Json} label="query" value=${trigger.query} />`}
  </section>`;
}
