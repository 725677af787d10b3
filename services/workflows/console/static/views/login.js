import { html, useState } from '../vendor/htm-preact-standalone-3.1.1.js';
import { logIn, register } from '../api.js';
import { Problem } from '../components.js';

// One form for both: logging in, or creating an account and logging in with it.
function SessionForm({ title, action, busyLabel, newPassword, onDone, children }) {
  const [problem, setProblem] = useState(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    setBusy(true);
    setProblem(null);
    try {
      await action(String(form.get('email')), String(form.get('password')));
      onDone();
    } catch (error) {
      setProblem(error);
    } finally {
      setBusy(false);
    }
  };

  return html`<section class="login">
    <h1>${title}</h1>
    <form onSubmit=${submit}>
      <label>Email <input name="email" type="email" autocomplete="username" required autofocus /></label>
      <label>Password <input name="password" type="password" required
        autocomplete=${newPassword ? 'new-password' : 'current-password'}
        minlength=${newPassword ? 8 : undefined} /></label>
      <button type="submit" disabled=${busy}>${busy ? busyLabel : title}</button>
    </form>
    <${Problem} error=${problem} />
    ${children}
  </section>`;
}

export function LoginPage({ onDone }) {
  return html`<${SessionForm} title="Log in" action=${logIn} busyLabel="Logging in…" onDone=${onDone}>
    <p class="hint">No account yet? <a href="#/register">Register</a>.</p>
  </${SessionForm}>`;
}

export function RegisterPage({ onDone }) {
  return html`<${SessionForm} title="Register" action=${register} busyLabel="Registering…" newPassword=${true}
    onDone=${onDone}>
    <p class="hint">At least 8 characters, not a common password. Already registered? <a href="#/">Log in</a>.</p>
  </${SessionForm}>`;
}
