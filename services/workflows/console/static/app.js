// The console's shell: session start-up, the hash router and the page frame.
import { html, render, useEffect, useState } from './vendor/htm-preact-standalone-3.1.1.js';
import { logOut, restore, setSignedOutHandler, signedIn } from './api.js';
import { Loading, NotFound, Problem } from './components.js';
import { AllRunsPage } from './views/all-runs.js';
import { CredentialsPage } from './views/credentials.js';
import { EditorPage } from './views/editor.js';
import { LoginPage, RegisterPage } from './views/login.js';
import { RunPage } from './views/run.js';
import { RunsPage } from './views/runs.js';
import { WorkflowPage } from './views/workflow.js';
import { WorkflowsPage } from './views/workflows.js';

// "#/runs/ID?status=x" -> { parts: ['runs', 'ID'], query: URLSearchParams }
function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const [path, search = ''] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(search) };
}

function useRoute() {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const update = () => setRoute(parseHash());
    window.addEventListener('hashchange', update);
    return () => window.removeEventListener('hashchange', update);
  }, []);
  return route;
}

function page({ parts, query }) {
  const [first, id, sub] = parts;
  if (!first) return html`<${WorkflowsPage} />`;
  if (first === 'workflows' && id === 'new' && !sub) return html`<${EditorPage} key="new" />`;
  if (first === 'workflows' && id && !sub) return html`<${WorkflowPage} key=${id} id=${id} />`;
  if (first === 'workflows' && id && sub === 'edit' && parts.length === 3) {
    return html`<${EditorPage} key=${`edit-${id}`} id=${id} />`;
  }
  if (first === 'runs' && !id) return html`<${AllRunsPage} key=${query.toString()} query=${query} />`;
  if (first === 'credentials' && !id) return html`<${CredentialsPage} />`;
  if (first === 'workflows' && id && sub === 'runs' && parts.length === 3) {
    return html`<${RunsPage} key=${id} workflowId=${id} query=${query} />`;
  }
  if (first === 'runs' && id && parts.length === 2) return html`<${RunPage} key=${id} id=${id} />`;
  return html`<${NotFound} what="Page" />`;
}

function App() {
  const route = useRoute();
  const [state, setState] = useState('starting');
  const [problem, setProblem] = useState(null);

  useEffect(() => {
    setSignedOutHandler(() => setState('signed-out'));
    restore()
      .then((ok) => setState(ok ? 'signed-in' : 'signed-out'))
      .catch((error) => { setProblem(error); setState('signed-out'); });
  }, []);

  const leave = async () => {
    await logOut();
    setState('signed-out');
    window.location.hash = '#/';
  };

  let main;
  if (state === 'starting') main = html`<${Loading} />`;
  else if (state === 'signed-out' || !signedIn()) {
    const done = () => { setProblem(null); setState('signed-in'); };
    main = route.parts[0] === 'register'
      ? html`<${RegisterPage} onDone=${() => { done(); window.location.hash = '#/'; }} />`
      : html`<${LoginPage} onDone=${done} />`;
  } else if (route.parts[0] === 'register') {
    main = html`<p>You are logged in. <a href="#/">Your workflows</a></p>`;
  } else main = page(route);

  return html`
    <header class="topbar">
      <a class="brand" href="#/">AutomateOS</a>
      ${state === 'signed-in' && html`<nav aria-label="Main">
        <a href="#/">Workflows</a>
        <a href="#/runs">Runs</a>
        <a href="#/credentials">Credentials</a>
        <button type="button" class="link" onClick=${leave}>Log out</button>
      </nav>`}
    </header>
    <main id="main"><${Problem} error=${problem} />${main}</main>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the static "Loading" placeholder: render() would keep it beside the app
render(html`<${App} />`, root);
