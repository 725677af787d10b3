// Small pieces every page uses. Everything here renders data as text nodes: preact escapes
// strings, and nothing in the console uses dangerouslySetInnerHTML or builds URLs from data.
import { html, useEffect, useRef, useState } from './vendor/htm-preact-standalone-3.1.1.js';

export const ACTIVE_STATUSES = ['queued', 'running', 'waiting'];
export const STATUSES = ['queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled'];

export function Status({ value }) {
  const known = STATUSES.includes(value) || value === 'skipped' ? value : 'other';
  return html`<span class=${`status status-${known}`}>${value}</span>`;
}

export function when(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function pretty(value) {
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

// Pretty JSON behind a disclosure: <details> is keyboard-usable with no script of ours.
export function Json({ label, value, open = false }) {
  return html`<details class="json" open=${open}>
    <summary>${label}</summary>
    <pre tabindex="0">${pretty(value)}</pre>
  </details>`;
}

export function Problem({ error }) {
  if (!error) return null;
  const text = typeof error === 'string' ? error : error.message;
  return html`<p class="problem" role="alert">${text}</p>`;
}

export function CopyButton({ text, label = 'Copy' }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    } catch {
      window.prompt('Copy this URL:', text);
    }
  };
  return html`<button type="button" class="small" onClick=${copy}>${done ? 'Copied' : label}</button>`;
}

// Calls `tick` now and every `ms` while `enabled`; the latest `tick` is always used.
export function usePolling(tick, ms, enabled, deps) {
  const latest = useRef(tick);
  latest.current = tick;
  useEffect(() => {
    latest.current();
    if (!enabled) return undefined;
    const id = setInterval(() => latest.current(), ms);
    return () => clearInterval(id);
  }, [ms, enabled, ...deps]);
}

export function Loading() {
  return html`<p class="loading" aria-live="polite">Loading…</p>`;
}

export function NotFound({ what }) {
  return html`<section class="not-found"><h1>${what} not found</h1>
    <p>It does not exist, or it is not yours.</p><p><a href="#/">Back to workflows</a></p></section>`;
}

// Why a queued or waiting run is not running (`waiting_reason`, `waiting_detail`), in words.
// Older APIs do not send the fields: then there is nothing to say.
const REASONS = {
  queue: 'in the queue',
  concurrency_limit: 'concurrency limit reached',
  throttled: 'throttled',
  debounced: 'debounced',
  delay: 'delayed',
  callback: 'waiting for its callback',
  child_run: 'waiting for a child run',
  no_worker: 'no worker is taking jobs',
};

export function waitingText(run) {
  const reason = run && run.waiting_reason;
  if (!reason) return null;
  const detail = run.waiting_detail && typeof run.waiting_detail === 'object' ? run.waiting_detail : {};
  const parts = [REASONS[reason] || String(reason)];
  if (typeof detail.ahead === 'number') parts.push(`${detail.ahead} ahead`);
  if (detail.key !== undefined) parts.push(`key ${String(detail.key)}`);
  if (typeof detail.limit === 'number') parts.push(`limit ${detail.limit}`);
  if (detail.resume_at) parts.push(`until ${when(detail.resume_at)}`);
  if (detail.recovered) parts.push('recovered from a stopped worker');
  return parts.join(' · ');
}

export function Waiting({ run }) {
  const text = waitingText(run);
  return text ? html`<span class="waiting" data-testid="waiting-reason">${text}</span>` : null;
}

export function runLink(id) {
  return `#/runs/${encodeURIComponent(id)}`;
}
