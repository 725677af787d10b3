// The node catalogue beside the editor: every node type from GET /nodes with its params (type,
// required, default, help) read from the params' JSON Schema.
import { html, useEffect, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import { api } from '../api.js';
import { Loading, Problem } from '../components.js';

function typeOf(schema) {
  if (!schema || typeof schema !== 'object') return '';
  if (schema.type) return Array.isArray(schema.type) ? schema.type.join(' | ') : schema.type;
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.$ref) return schema.$ref.split('/').pop();
  const options = schema.anyOf || schema.oneOf;
  if (options) return options.map(typeOf).filter(Boolean).join(' | ');
  return 'any';
}

export function paramsOf(schema) {
  const properties = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  return Object.entries(properties).map(([name, field]) => ({
    name,
    type: typeOf(field),
    required: required.has(name),
    default: field.default,
    help: field.description || field.title || '',
  }));
}

function Params({ schema, label }) {
  const params = paramsOf(schema);
  if (!params.length) return html`<p class="muted">No ${label}.</p>`;
  return html`<dl class="params">${params.map((p) => html`<div key=${p.name}>
    <dt><code>${p.name}</code> <span class="muted">${p.type}${p.required ? ' · required' : ''}${
      p.default !== undefined ? ` · default ${JSON.stringify(p.default)}` : ''}</span></dt>
    <dd>${p.help}</dd></div>`)}</dl>`;
}

function NodeType({ node, onAdd }) {
  return html`<li><details class="node-type">
    <summary><code>${node.type}</code> <span class="muted">${node.description.split('\n')[0]}</span></summary>
    ${node.description.includes('\n') && html`<p class="help">${node.description}</p>`}
    <${Params} schema=${node.params_schema} label="params" />
    ${onAdd && html`<button type="button" class="small" onClick=${() => onAdd(node)}>Add a ${node.type} node</button>`}
  </details></li>`;
}

export function Catalogue({ onAdd }) {
  const [items, setItems] = useState(null);
  const [problem, setProblem] = useState(null);
  const [filter, setFilter] = useState('');
  useEffect(() => { api('/nodes').then((page) => setItems(page.items)).catch(setProblem); }, []);
  if (problem) return html`<${Problem} error=${problem} />`;
  if (items === null) return html`<${Loading} />`;
  const wanted = filter.trim().toLowerCase();
  const shown = items.filter((n) => !wanted || `${n.type} ${n.description}`.toLowerCase().includes(wanted));
  return html`<aside class="catalogue" aria-label="Node catalogue">
    <h2>Nodes</h2>
    <label>Find <input type="search" value=${filter} onInput=${(e) => setFilter(e.target.value)} /></label>
    <ul class="node-types">${shown.map((n) => html`<${NodeType} key=${n.type} node=${n} onAdd=${onAdd} />`)}</ul>
    ${items[0] && html`<details class="node-type"><summary>Settings every node takes</summary>
      <${Params} schema=${items[0].settings_schema} label="settings" /></details>`}
  </aside>`;
}

// An empty value of a param's type, for the user to fill in.
function blank(type) {
  const first = type.split(' | ')[0];
  return { object: {}, array: [], integer: 0, number: 0, boolean: false }[first] ?? '';
}

// A new node of this type: a fresh id and its required params, with their defaults if any.
export function skeleton(node, takenIds) {
  let n = 1;
  while (takenIds.has(`${node.type}_${n}`)) n += 1;
  const params = Object.fromEntries(paramsOf(node.params_schema).filter((p) => p.required)
    .map((p) => [p.name, p.default !== undefined ? p.default : blank(p.type)]));
  return { id: `${node.type}_${n}`, type: node.type, params };
}
