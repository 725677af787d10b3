// "Run now" with a body typed here or copied from one of the workflow's past runs. The past
// run's trigger body is fetched and shown before it is sent, so what runs is always visible.
import { html, useEffect, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import { api } from '../api.js';
import { Problem, pretty, when } from '../components.js';

const PAST = 20;

export function RunNow({ workflowId }) {
  const path = `/workflows/${encodeURIComponent(workflowId)}`;
  const [body, setBody] = useState('{}\n');
  const [past, setPast] = useState([]);
  const [problem, setProblem] = useState(null);

  useEffect(() => {
    api(`${path}/runs?limit=${PAST}`).then((page) => setPast(page.items)).catch(() => setPast([]));
  }, [workflowId]);

  const usePast = async (runId) => {
    if (!runId) return;
    setProblem(null);
    try {
      const run = await api(`/runs/${encodeURIComponent(runId)}`);
      setBody(`${pretty((run.trigger || {}).body ?? null)}\n`);
    } catch (error) {
      setProblem(error);
    }
  };

  const run = async (event) => {
    event.preventDefault();
    setProblem(null);
    let value;
    try {
      value = body.trim() ? JSON.parse(body) : null;
    } catch (error) {
      setProblem(`The body is not JSON: ${error.message}`);
      return;
    }
    try {
      const accepted = await api(`${path}/run`, { method: 'POST', body: value });
      window.location.hash = `#/runs/${encodeURIComponent(accepted.run_id)}`;
    } catch (error) {
      setProblem(error);
    }
  };

  return html`<form class="card stack run-now" onSubmit=${run} aria-label="Run now">
    <h2>Run now</h2>
    ${past.length > 0 && html`<label>Body of a past run <select onChange=${(e) => usePast(e.target.value)}>
      <option value="">choose a run…</option>
      ${past.map((r) => html`<option key=${r.id} value=${r.id}>${when(r.accepted_at)} · ${r.status} · ${r.id.slice(-8)}</option>`)}
    </select></label>`}
    <label class="block">Body (JSON; becomes <code>trigger.body</code>)
      <textarea name="body" rows="5" spellcheck=${false} value=${body} onInput=${(e) => setBody(e.target.value)}></textarea></label>
    <div class="actions"><button type="submit">Run now</button></div>
    <${Problem} error=${problem} />
  </form>`;
}
