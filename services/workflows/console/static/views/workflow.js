import { html, useEffect, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import { api } from '../api.js';
import { CopyButton, Json, Loading, NotFound, Problem, when } from '../components.js';

const SETTINGS = ['if', 'retry', 'timeout_s', 'continue_on_fail'];

function NodeItem({ node, index }) {
  const settings = Object.fromEntries(SETTINGS.filter((k) => k in node).map((k) => [k, node[k]]));
  return html`<li class="card node">
    <div class="row"><span class="step-no">${index + 1}</span><strong>${node.id}</strong>
      <span class="pill">${node.type}</span></div>
    <${Json} label="params" value=${node.params || {}} open=${true} />
    ${Object.keys(settings).length > 0 && html`<${Json} label="settings" value=${settings} />`}
  </li>`;
}

function Rotate({ workflow, onChanged }) {
  const [asking, setAsking] = useState(false);
  const [problem, setProblem] = useState(null);
  const rotate = async () => {
    try {
      onChanged(await api(`/workflows/${encodeURIComponent(workflow.id)}/webhook/rotate`, { method: 'POST' }));
      setAsking(false);
    } catch (error) {
      setProblem(error);
    }
  };
  if (!asking) return html`<button type="button" onClick=${() => setAsking(true)}>Rotate webhook URL…</button>`;
  return html`<div class="confirm" role="group" aria-label="Confirm rotation">
    <p>The current URL stops working at once; every sender needs the new one.</p>
    <button type="button" class="danger" onClick=${rotate}>Rotate now</button>
    <button type="button" onClick=${() => setAsking(false)}>Keep the current URL</button>
    <${Problem} error=${problem} />
  </div>`;
}

function Versions({ id, current }) {
  const [versions, setVersions] = useState(null);
  const [problem, setProblem] = useState(null);
  useEffect(() => {
    api(`/workflows/${encodeURIComponent(id)}/versions?limit=20`)
      .then((page) => setVersions(page.items)).catch(setProblem);
  }, [id, current]);
  if (problem) return html`<${Problem} error=${problem} />`;
  if (versions === null) return html`<${Loading} />`;
  return html`<ol class="versions" reversed>
    ${versions.map((v) => html`<li key=${v.version}>
      <${Json} label=${`version ${v.version} · ${when(v.created_at)}${v.version === current ? ' (current)' : ''}`} value=${v.nodes} />
    </li>`)}
  </ol>`;
}

export function WorkflowPage({ id }) {
  const [workflow, setWorkflow] = useState(null);
  const [problem, setProblem] = useState(null);
  const [missing, setMissing] = useState(false);
  const path = `/workflows/${encodeURIComponent(id)}`;

  useEffect(() => {
    api(path).then(setWorkflow).catch((error) => (error.status === 404 ? setMissing(true) : setProblem(error)));
  }, [id]);

  const act = async (fn) => {
    setProblem(null);
    try { await fn(); } catch (error) { setProblem(error); }
  };
  const toggle = () => act(async () => setWorkflow(await api(path, { method: 'PATCH', body: { active: !workflow.active } })));
  const runNow = () => act(async () => {
    const accepted = await api(`${path}/run`, { method: 'POST', body: {} });
    window.location.hash = `#/runs/${encodeURIComponent(accepted.run_id)}`;
  });

  if (missing) return html`<${NotFound} what="Workflow" />`;
  if (workflow === null) return problem ? html`<${Problem} error=${problem} />` : html`<${Loading} />`;
  return html`<section>
    <p class="crumbs"><a href="#/">Workflows</a> /</p>
    <div class="row"><h1>${workflow.name}</h1>
      <span class=${workflow.active ? 'pill on' : 'pill off'}>${workflow.active ? 'active' : 'inactive'}</span>
      <span class="muted">version ${workflow.version}</span></div>
    ${workflow.description && html`<p>${workflow.description}</p>`}
    <div class="row hook"><code class="url">${workflow.webhook_url}</code>
      <${CopyButton} text=${workflow.webhook_url} label="Copy URL" /></div>
    <div class="actions">
      <a class="button" href=${`#/workflows/${encodeURIComponent(id)}/edit`}>Edit</a>
      <a class="button" href=${`#/workflows/${encodeURIComponent(id)}/runs`}>Runs</a>
      <button type="button" onClick=${runNow}>Run now</button>
      <button type="button" onClick=${toggle}>${workflow.active ? 'Deactivate' : 'Activate'}</button>
      <${Rotate} workflow=${workflow} onChanged=${setWorkflow} />
    </div>
    <${Problem} error=${problem} />
    <h2>Nodes</h2>
    <ol class="nodes">${workflow.nodes.map((node, i) => html`<${NodeItem} key=${node.id} node=${node} index=${i} />`)}</ol>
    <h2>Versions</h2>
    <${Versions} id=${id} current=${workflow.version} />
    <p class="muted">Created ${when(workflow.created_at)} · changed ${when(workflow.updated_at)}</p>
  </section>`;
}
