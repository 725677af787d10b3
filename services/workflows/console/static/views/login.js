import { html, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import { logIn } from '../api.js';
import { Problem } from '../components.js';

export function LoginPage({ onDone }) {
  const [problem, setProblem] = useState(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    setBusy(true);
    setProblem(null);
    try {
      await logIn(String(form.get('email')), String(form.get('password')));
      onDone();
    } catch (error) {
      setProblem(error);
    } finally {
      setBusy(false);
    }
  };

  return html`<section class="login">
    <h1>Log in</h1>
    <form onSubmit=${submit}>
      <label>Email <input name="email" type="email" autocomplete="username" required autofocus /></label>
      <label>Password <input name="password" type="password" autocomplete="current-password" required /></label>
      <button type="submit" disabled=${busy}>${busy ? 'Logging in…' : 'Log in'}</button>
    </form>
    <${Problem} error=${problem} />
    <p class="hint">No account yet? Register with <code>POST /auth/register</code> (see the README).</p>
  </section>`;
}
