// A workflow as the text the editor holds (JSON or YAML), and the API's 422 entries mapped to
// the node and field they name. js-yaml runs with its CORE schema: plain JSON types only (no
// timestamps, no custom tags), so YAML and JSON describe exactly the same documents.
import { CORE_SCHEMA, dump, load } from './vendor/js-yaml-4.1.0.js';

// What GET /workflows/{id} returns that a save does not take (or takes through its own button).
const READ_ONLY = ['id', 'version', 'webhook_url', 'next_run_at', 'created_at', 'updated_at', 'active'];

export const FORMATS = ['yaml', 'json'];

export const STARTER = {
  name: 'my workflow',
  description: '',
  nodes: [{ id: 'note', type: 'log', params: { message: 'received {{ trigger.body }}' } }],
};

export class ParseProblem extends Error {
  constructor(message, line) {
    super(line ? `line ${line}: ${message}` : message);
    this.line = line;
  }
}

// The saveable part of a workflow; fields this page does not know (added by newer API
// versions, e.g. concurrency or on_error) pass through untouched.
export function editable(workflow) {
  const doc = Object.fromEntries(Object.entries(workflow).filter(([k]) => !READ_ONLY.includes(k)));
  const signature = doc.trigger && doc.trigger.signature;
  if (signature) {
    // Secrets are write-only: `secret_set` is the API's answer, never something to send back.
    const { secret_set: _set, ...rest } = signature;
    doc.trigger = { ...doc.trigger, signature: rest };
  }
  return doc;
}

export function serialise(doc, format) {
  if (format === 'yaml') return dump(doc, { schema: CORE_SCHEMA, lineWidth: 100, noRefs: true });
  return `${JSON.stringify(doc, null, 2)}\n`;
}

function jsonLine(text, message) {
  const position = /position (\d+)/.exec(message);
  if (position) return text.slice(0, Number(position[1])).split('\n').length;
  const line = /line (\d+)/.exec(message);
  return line ? Number(line[1]) : null;
}

export function parse(text, format) {
  let doc;
  if (format === 'yaml') {
    try {
      doc = load(text, { schema: CORE_SCHEMA });
    } catch (error) {
      throw new ParseProblem(error.reason || error.message, error.mark ? error.mark.line + 1 : null);
    }
  } else {
    try {
      doc = JSON.parse(text);
    } catch (error) {
      throw new ParseProblem(error.message, jsonLine(text, error.message));
    }
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ParseProblem('a workflow is an object with `name` and `nodes`', 1);
  }
  return doc;
}

export function nodesOf(doc) {
  return doc && Array.isArray(doc.nodes) ? doc.nodes : [];
}

// The line of the text where a node with this id is declared (1-based), or null.
export function lineOf(text, id) {
  if (typeof id !== 'string' || !id) return null;
  const lines = text.split('\n');
  const quoted = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`(^|[\\s{,-])["']?id["']?\\s*:\\s*["']?${quoted}["']?\\s*,?\\s*}?\\s*$`);
  const index = lines.findIndex((line) => pattern.test(line));
  return index < 0 ? null : index + 1;
}

// 422 `detail` -> { byNode: Map(node key -> [{field, msg}]), other: [{field, msg}] }. The API
// names a node by id, or by index when it has none; both map to the node's place in `nodes`.
export function problemsAt(detail, doc) {
  const byNode = new Map();
  const other = [];
  const entries = Array.isArray(detail) ? detail : [{ loc: [], msg: String(detail) }];
  const nodes = nodesOf(doc);
  for (const entry of entries) {
    const loc = Array.isArray(entry.loc) ? entry.loc.filter((p, i) => !(i === 0 && p === 'body')) : [];
    const msg = String(entry.msg ?? entry);
    if (loc[0] === 'nodes' && loc.length > 1) {
      const named = loc[1];
      const index = typeof named === 'number' ? named : nodes.findIndex((n) => n && n.id === named);
      const key = index >= 0 ? index : String(named);
      if (!byNode.has(key)) byNode.set(key, []);
      byNode.get(key).push({ field: loc.slice(2).join('.'), msg });
    } else {
      other.push({ field: loc.join('.'), msg });
    }
  }
  return { byNode, other };
}
