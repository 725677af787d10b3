// Credentials: named secrets nodes use. Values are write-only: the API never returns them and
// this page never shows one; the inputs are password fields, emptied after every save.
import { html, useEffect, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import { api } from '../api.js';
import { Loading, Problem, when } from '../components.js';

// The data fields each type takes (shared/credentials.py FIELDS); `name` of a header is no secret.
const FIELDS = {
  bearer: ['token'], basic: ['username', 'password'], header: ['name', 'value'], secret: ['value'],
};
const VISIBLE = new Set(['username', 'name']);
const path = (name) => `/credentials/${encodeURIComponent(name)}`;

function Values({ type }) {
  return FIELDS[type].map((field) => html`<label key=${`${type}-${field}`}>${field}
    <input name=${`data.${field}`} type=${VISIBLE.has(field) ? 'text' : 'password'} autocomplete="off"
      required spellcheck=${false} /></label>`);
}

function dataOf(form, type) {
  const values = new FormData(form);
  return Object.fromEntries(FIELDS[type].map((f) => [f, String(values.get(`data.${f}`) || '')]));
}

function TypeSelect({ type, onChange }) {
  return html`<label>Type <select name="type" value=${type} onChange=${(e) => onChange(e.target.value)}>
    ${Object.keys(FIELDS).map((t) => html`<option key=${t} value=${t}>${t}</option>`)}
  </select></label>`;
}

function CreateForm({ onSaved }) {
  const [type, setType] = useState('bearer');
  const [problem, setProblem] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    const form = event.target;
    setProblem(null);
    try {
      const name = String(new FormData(form).get('name'));
      await api('/credentials', { method: 'POST', body: { name, type, data: dataOf(form, type) } });
      form.reset();
      onSaved();
    } catch (error) {
      setProblem(error);
    }
  };
  return html`<form class="card stack" onSubmit=${submit} aria-label="New credential">
    <h2>New credential</h2>
    <label>Name <input name="name" required pattern="[A-Za-z_][A-Za-z0-9_]{0,63}" autocomplete="off"
      spellcheck=${false} /></label>
    <${TypeSelect} type=${type} onChange=${setType} />
    <${Values} type=${type} />
    <div class="actions"><button type="submit">Create</button></div>
    <${Problem} error=${problem} />
  </form>`;
}

function Rotate({ credential, onSaved, onClose }) {
  const [type, setType] = useState(credential.type);
  const [problem, setProblem] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    setProblem(null);
    try {
      await api(path(credential.name), { method: 'PUT', body: { type, data: dataOf(event.target, type) } });
      onSaved();
      onClose();
    } catch (error) {
      setProblem(error);
    }
  };
  return html`<form class="stack" onSubmit=${submit} aria-label=${`Rotate ${credential.name}`}>
    <p class="muted">New values replace the old ones at once; workflows naming it use them from their next step.</p>
    <${TypeSelect} type=${type} onChange=${setType} />
    <${Values} type=${type} />
    <div class="actions"><button type="submit">Save new values</button>
      <button type="button" onClick=${onClose}>Keep the current values</button></div>
    <${Problem} error=${problem} />
  </form>`;
}

function CredentialRow({ credential, onChanged }) {
  const [mode, setMode] = useState(null); // null | 'rotate' | 'delete'
  const [problem, setProblem] = useState(null);
  const remove = async () => {
    setProblem(null);
    try {
      await api(path(credential.name), { method: 'DELETE' });
      onChanged();
    } catch (error) {
      setProblem(error);
    }
  };
  return html`<li class="card credential">
    <div class="row"><strong>${credential.name}</strong><span class="pill">${credential.type}</span>
      <span class="muted">fields set: ${credential.fields_set.join(', ')} · changed ${when(credential.updated_at)}</span></div>
    <div class="actions">
      <button type="button" onClick=${() => setMode('rotate')}>Rotate…</button>
      <button type="button" class="danger" onClick=${() => setMode('delete')}>Delete…</button>
    </div>
    ${mode === 'rotate' && html`<${Rotate} credential=${credential} onSaved=${onChanged} onClose=${() => setMode(null)} />`}
    ${mode === 'delete' && html`<div class="confirm" role="group" aria-label="Confirm deletion">
      <p>Workflows naming ${credential.name} must stop naming it first (the API refuses otherwise).</p>
      <button type="button" class="danger" onClick=${remove}>Delete now</button>
      <button type="button" onClick=${() => setMode(null)}>Keep it</button></div>`}
    <${Problem} error=${problem} />
  </li>`;
}

export function CredentialsPage() {
  const [items, setItems] = useState(null);
  const [problem, setProblem] = useState(null);
  const load = () => api('/credentials').then((page) => { setItems(page.items); setProblem(null); }).catch(setProblem);
  useEffect(() => { load(); }, []);
  return html`<section>
    <h1>Credentials</h1>
    <p class="muted">Secrets your nodes use by name (<code>params.credential</code>). Values are write-only:
      nobody, you included, can read one back; rotate it instead.</p>
    <${Problem} error=${problem} />
    ${items === null ? html`<${Loading} />` : html`
      ${items.length === 0 && html`<p>No credentials yet.</p>`}
      <ul class="cards credentials">${items.map((c) => html`<${CredentialRow} key=${c.name} credential=${c} onChanged=${load} />`)}</ul>`}
    <${CreateForm} onSaved=${load} />
  </section>`;
}
