// The workflow editor: the whole workflow as JSON or YAML, the node catalogue beside it, the
// API's 422 entries shown at the node and field they name. Saving an existing workflow is a
// PUT: a new version. Activate, deactivate and run-now sit beside the save.
import { html, useEffect, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import { api } from '../api.js';
import { Loading, NotFound, Problem } from '../components.js';
import { Catalogue, skeleton } from './catalogue.js';
import { RunNow } from './run-now.js';
import {
  FORMATS, STARTER, editable, lineOf, nodesOf, parse, problemsAt, serialise,
} from '../workflow-doc.js';

function tryParse(text, format) {
  try {
    return { doc: parse(text, format), problem: null };
  } catch (error) {
    return { doc: null, problem: error };
  }
}

function Field({ issue }) {
  return html`<li>${issue.field ? html`<code>${issue.field}</code>: ` : ''}${issue.msg}</li>`;
}

// The nodes of the text as it stands, each with the problems the last save got for it.
function Outline({ doc, text, problems }) {
  const nodes = nodesOf(doc);
  const known = new Set(nodes.map((_, i) => i));
  const stray = problems ? [...problems.byNode.entries()].filter(([k]) => !known.has(k)) : [];
  return html`<ol class="outline" aria-label="Nodes">
    ${nodes.map((node, i) => {
      const issues = (problems && problems.byNode.get(i)) || [];
      const id = node && typeof node.id === 'string' ? node.id : `#${i + 1}`;
      const line = lineOf(text, node && node.id);
      return html`<li key=${i} class=${issues.length ? 'outline-node has-problem' : 'outline-node'}
        data-node=${id}>
        <div class="row"><strong>${id}</strong><span class="pill">${(node && node.type) || '?'}</span>
          ${line && html`<span class="muted">line ${line}</span>`}</div>
        ${issues.length > 0 && html`<ul class="field-problems" role="alert">${issues.map((issue, j) => html`<${Field} key=${j} issue=${issue} />`)}</ul>`}
      </li>`;
    })}
    ${stray.map(([key, issues]) => html`<li key=${`stray-${key}`} class="outline-node has-problem" data-node=${String(key)}>
      <strong>${String(key)}</strong>
      <ul class="field-problems" role="alert">${issues.map((issue, j) => html`<${Field} key=${j} issue=${issue} />`)}</ul></li>`)}
  </ol>`;
}

function Toolbar({ workflow, onToggle }) {
  if (!workflow) return null;
  return html`<div class="row">
    <span class=${workflow.active ? 'pill on' : 'pill off'}>${workflow.active ? 'active' : 'inactive'}</span>
    <span class="muted">version ${workflow.version}</span>
    <button type="button" onClick=${onToggle}>${workflow.active ? 'Deactivate' : 'Activate'}</button>
  </div>`;
}

export function EditorPage({ id }) {
  const creating = !id;
  const path = creating ? '/workflows' : `/workflows/${encodeURIComponent(id)}`;
  const [workflow, setWorkflow] = useState(null);
  const [format, setFormat] = useState('yaml');
  const [text, setText] = useState(creating ? serialise(STARTER, 'yaml') : '');
  const [problems, setProblems] = useState(null);
  const [problem, setProblem] = useState(null);
  const [saved, setSaved] = useState(null);
  const [missing, setMissing] = useState(false);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (creating) return;
    api(path).then((found) => {
      setWorkflow(found);
      setText(serialise(editable(found), format));
    }).catch((error) => (error.status === 404 ? setMissing(true) : setProblem(error)));
  }, [id]);

  const parsed = tryParse(text, format);

  const switchTo = (next) => {
    if (next === format) return;
    if (parsed.problem) { setProblem(parsed.problem); return; }
    setProblem(null);
    setText(serialise(parsed.doc, next));
    setFormat(next);
  };

  const add = (node) => {
    if (parsed.problem) { setProblem(parsed.problem); return; }
    const doc = { ...parsed.doc };
    const nodes = nodesOf(doc);
    doc.nodes = [...nodes, skeleton(node, new Set(nodes.map((n) => n && n.id)))];
    setText(serialise(doc, format));
  };

  const save = async (event) => {
    event.preventDefault();
    setProblem(null);
    setProblems(null);
    setSaved(null);
    if (parsed.problem) { setProblem(parsed.problem); return; }
    setBusy(true);
    try {
      if (creating) {
        const made = await api('/workflows', { method: 'POST', body: parsed.doc });
        window.location.hash = `#/workflows/${encodeURIComponent(made.id)}`;
        return;
      }
      // A PUT replaces everything it is given: keep the active flag its own button sets.
      const body = { active: workflow.active, ...parsed.doc };
      const updated = await api(path, { method: 'PUT', body });
      setWorkflow(updated);
      setSaved(`Saved as version ${updated.version}.`);
    } catch (error) {
      if (error.status === 422) setProblems(problemsAt(error.detail, parsed.doc));
      setProblem(error);
    } finally {
      setBusy(false);
    }
  };

  const toggle = async () => {
    setProblem(null);
    try {
      setWorkflow(await api(path, { method: 'PATCH', body: { active: !workflow.active } }));
    } catch (error) {
      setProblem(error);
    }
  };

  if (missing) return html`<${NotFound} what="Workflow" />`;
  if (!creating && workflow === null) return problem ? html`<${Problem} error=${problem} />` : html`<${Loading} />`;
  const crumbs = creating ? html`<a href="#/">Workflows</a> /`
    : html`<a href="#/">Workflows</a> / <a href=${`#/workflows/${encodeURIComponent(id)}`}>${workflow.name}</a> /`;
  return html`<section class="editor-page">
    <p class="crumbs">${crumbs}</p>
    <div class="row"><h1>${creating ? 'New workflow' : `Edit ${workflow.name}`}</h1></div>
    <${Toolbar} workflow=${workflow} onToggle=${toggle} />
    <div class="editor-grid">
      <form class="editor" onSubmit=${save} aria-label="Workflow editor">
        <div class="row" role="group" aria-label="Format">
          ${FORMATS.map((f) => html`<label key=${f} class="check"><input type="radio" name="format" value=${f}
            checked=${format === f} onChange=${() => switchTo(f)} />${f.toUpperCase()}</label>`)}
        </div>
        <label class="block">Definition
          <textarea name="definition" spellcheck=${false} rows="22" value=${text}
            onInput=${(e) => { setText(e.target.value); setSaved(null); }}></textarea></label>
        ${parsed.problem && html`<p class="error-text" data-testid="parse-problem">${parsed.problem.message}</p>`}
        <div class="actions">
          <button type="submit" disabled=${busy}>${creating ? 'Create workflow' : 'Save as new version'}</button>
          ${saved && html`<span class="ok-text" role="status">${saved}</span>`}
        </div>
        <${Problem} error=${problem} />
        ${problems && problems.other.length > 0 && html`<ul class="field-problems" role="alert">
          ${problems.other.map((issue, j) => html`<${Field} key=${j} issue=${issue} />`)}</ul>`}
        <h2>Nodes</h2>
        <${Outline} doc=${parsed.doc} text=${text} problems=${problems} />
      </form>
      <${Catalogue} onAdd=${add} />
    </div>
    ${!creating && html`<${RunNow} workflowId=${id} />`}
  </section>`;
}
