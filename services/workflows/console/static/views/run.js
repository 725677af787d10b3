import { html, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import { api } from '../api.js';
import {
  ACTIVE_STATUSES, CopyButton, Json, Loading, NotFound, Problem, Status, duration, usePolling, when,
} from '../components.js';

const LIVE_MS = 1000;

function ms(iso) {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? null : t;
}

// Where each step sits on one time axis: offsets and widths as fractions of the whole run.
function timeline(run) {
  const starts = run.steps.map((s) => ms(s.started_at)).filter((t) => t !== null);
  const origin = ms(run.started_at) ?? (starts.length ? Math.min(...starts) : null);
  if (origin === null) return null;
  const ends = run.steps.map((s) => (ms(s.started_at) ?? origin) + (s.duration_ms || 0));
  const finished = ms(run.finished_at);
  const end = Math.max(finished ?? Date.now(), ...ends, origin + 1);
  const total = end - origin;
  return run.steps.map((s) => {
    const start = (ms(s.started_at) ?? origin) - origin;
    return { left: start / total, width: Math.max((s.duration_ms || 0) / total, 0.004) };
  });
}

function Step({ step, bar }) {
  const failed = step.status === 'failed';
  return html`<li class=${`step step-${failed ? 'failed' : 'ok'}`}>
    <div class="row">
      <strong>${step.node_id}</strong><span class="pill">${step.type}</span>
      <${Status} value=${step.status} />
      <span class="muted">${duration(step.duration_ms)}${step.attempt > 1 ? ` · attempt ${step.attempt}` : ''}</span>
    </div>
    ${bar && html`<div class="track" aria-hidden="true"><div class="bar"
      style=${{ marginLeft: `${(bar.left * 100).toFixed(2)}%`, width: `${(bar.width * 100).toFixed(2)}%` }}></div></div>`}
    ${step.error && html`<pre class="error-text" tabindex="0">${step.error}</pre>`}
    ${step.resume_url && html`<div class="row hook"><code class="url">${step.resume_url}</code>
      <${CopyButton} text=${step.resume_url} label="Copy resume URL" /></div>`}
    <${Json} label="input" value=${step.input} />
    <${Json} label="output" value=${step.output} open=${false} />
  </li>`;
}

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
  const bars = timeline(run);
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
      ${run.retry_of && html`<div><dt>Retry of</dt><dd><a href=${`#/runs/${encodeURIComponent(run.retry_of)}`}>${run.retry_of}</a></dd></div>`}
    </dl>
    ${run.error && html`<pre class="error-text run-error" role="alert" tabindex="0">${run.error}</pre>`}
    <div class="actions">
      <button type="button" onClick=${() => act('retry')}>Retry</button>
      ${ACTIVE_STATUSES.includes(run.status) && html`<button type="button" class="danger" onClick=${() => act('cancel')}>Cancel run</button>`}
    </div>
    <${Problem} error=${problem} />
    <h2>Steps</h2>
    ${run.steps.length === 0 && html`<p class="muted">No step has finished yet.</p>`}
    <ol class="steps">${run.steps.map((step, i) => html`<${Step} key=${`${step.node_id}-${i}`} step=${step} bar=${bars && bars[i]} />`)}</ol>
    <h2>Trigger</h2>
    <p class="muted">${trigger.method || ''} received ${when(trigger.received_at)}</p>
    <${Json} label="body" value=${trigger.body} open=${true} />
    <${Json} label="headers" value=${trigger.headers} />
    ${trigger.query && Object.keys(trigger.query).length > 0 && html`<${Json} label="query" value=${trigger.query} />`}
  </section>`;
}
