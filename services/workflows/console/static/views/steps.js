// A run's steps: the waterfall (one bar per step on the run's time axis), steps that ran at the
// same time side by side, a for-each step's items folded into counts per status, and links to
// child runs. Fields of newer APIs (`items`, `child_run_id`) are optional everywhere.
import { html, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import {
  CopyButton, Json, STATUSES, Status, duration, runLink,
} from '../components.js';

const ITEMS_PAGE = 100;

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

// Consecutive steps whose time spans overlap ran in parallel: [[index, …], …] in step order.
export function parallelGroups(steps) {
  const groups = [];
  let current = null;
  steps.forEach((step, index) => {
    const start = ms(step.started_at);
    const end = start === null ? null : start + (step.duration_ms || 0);
    if (current && start !== null && current.end !== null && start < current.end && current.start < end) {
      current.members.push(index);
      current.start = Math.min(current.start, start);
      current.end = Math.max(current.end, end);
      return;
    }
    current = { members: [index], start, end };
    groups.push(current);
  });
  return groups.map((g) => g.members);
}

function Items({ items }) {
  const [shown, setShown] = useState(ITEMS_PAGE);
  const counts = {};
  items.forEach((item) => { counts[item.status] = (counts[item.status] || 0) + 1; });
  const order = [...STATUSES, 'skipped', ...Object.keys(counts)].filter((s, i, all) => counts[s] && all.indexOf(s) === i);
  return html`<details class="items" data-testid="items">
    <summary>${items.length} item${items.length === 1 ? '' : 's'}:
      ${order.map((s) => html`<span key=${s} class="item-count"><${Status} value=${s} /> ${counts[s]}</span>`)}</summary>
    <ol class="item-list">${items.slice(0, shown).map((item) => html`<li key=${item.index}>
      <div class="row"><span class="step-no">#${item.index}</span><${Status} value=${item.status} />
        <span class="muted">${duration(item.duration_ms)}</span></div>
      ${item.error && html`<pre class="error-text" tabindex="0">${item.error}</pre>`}
      <${Json} label="output" value=${item.output} />
    </li>`)}</ol>
    ${items.length > shown && html`<button type="button" class="small" onClick=${() => setShown(shown + ITEMS_PAGE)}>
      Show ${Math.min(ITEMS_PAGE, items.length - shown)} more of ${items.length - shown}</button>`}
  </details>`;
}

function Step({ step, bar }) {
  const failed = step.status === 'failed';
  return html`<li class=${`step step-${failed ? 'failed' : 'ok'}`}>
    <div class="row">
      <strong>${step.node_id}</strong><span class="pill">${step.type}</span>
      <${Status} value=${step.status} />
      <span class="muted">${duration(step.duration_ms)}${step.attempt > 1 ? ` · attempt ${step.attempt}` : ''}</span>
      ${step.child_run_id && html`<a href=${runLink(step.child_run_id)} data-testid="child-run">child run</a>`}
    </div>
    ${bar && html`<div class="track" aria-hidden="true"><div class="bar"
      style=${{ marginLeft: `${(bar.left * 100).toFixed(2)}%`, width: `${(bar.width * 100).toFixed(2)}%` }}></div></div>`}
    ${step.error && html`<pre class="error-text" tabindex="0">${step.error}</pre>`}
    ${step.resume_url && html`<div class="row hook"><code class="url">${step.resume_url}</code>
      <${CopyButton} text=${step.resume_url} label="Copy resume URL" /></div>`}
    ${Array.isArray(step.items) && html`<${Items} items=${step.items} />`}
    <${Json} label="input" value=${step.input} />
    <${Json} label="output" value=${step.output} open=${false} />
  </li>`;
}

export function Steps({ run }) {
  const bars = timeline(run);
  const key = (i) => `${run.steps[i].node_id}-${i}`;
  const step = (i) => html`<${Step} key=${key(i)} step=${run.steps[i]} bar=${bars && bars[i]} />`;
  return html`<ol class="steps">${parallelGroups(run.steps).map((members) => (members.length === 1
    ? step(members[0])
    : html`<li key=${`group-${key(members[0])}`} class="parallel" data-testid="parallel">
        <p class="muted">${members.length} steps ran in parallel</p>
        <ol class="lanes">${members.map(step)}</ol></li>`))}</ol>`;
}
