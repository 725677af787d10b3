// Talks to the API of this origin. The access token lives in this module only (memory): a
// reload restores it through the HttpOnly refresh cookie, which no script can read.
const CONSOLE_HEADER = { 'x-automateos-console': '1' };
// Refresh this long before the access token expires, so a request never races its expiry.
const REFRESH_MARGIN_S = 60;

let accessToken = null;
let refreshTimer = null;
let onSignedOut = () => {};

// FastAPI's 422 entries as one readable line: "nodes.fetch.params.url: field required".
function describe(detail) {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => {
      const where = Array.isArray(e.loc) ? e.loc.filter((p) => p !== 'body').join('.') : '';
      return where ? `${where}: ${e.msg}` : String(e.msg ?? JSON.stringify(e));
    }).join('; ');
  }
  return JSON.stringify(detail);
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(describe(detail));
    this.status = status;
    this.detail = detail;
  }
}

export function setSignedOutHandler(handler) {
  onSignedOut = handler;
}

export function signedIn() {
  return accessToken !== null;
}

function keep(tokens) {
  accessToken = tokens.access_token;
  clearTimeout(refreshTimer);
  const seconds = Math.max(5, tokens.expires_in - REFRESH_MARGIN_S);
  refreshTimer = setTimeout(() => { restore().catch(() => {}); }, seconds * 1000);
}

function forget() {
  accessToken = null;
  clearTimeout(refreshTimer);
  refreshTimer = null;
}

async function detailOf(response) {
  try {
    const body = await response.json();
    return body && body.detail !== undefined ? body.detail : response.statusText;
  } catch {
    return response.statusText || `HTTP ${response.status}`;
  }
}

export function logIn(email, password) {
  return startSession('/console/session', email, password);
}

// Creates the account (through this origin, like login) and logs in with it.
export function register(email, password) {
  return startSession('/console/register', email, password);
}

async function startSession(path, email, password) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { ...CONSOLE_HEADER, 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
    credentials: 'same-origin',
  });
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  keep(await response.json());
}

// Restores or renews the session from the cookie; false when there is none.
export async function restore() {
  const response = await fetch('/console/session/refresh', {
    method: 'POST', headers: CONSOLE_HEADER, credentials: 'same-origin',
  });
  if (response.status === 204) { forget(); return false; }
  if (!response.ok) {
    forget();
    if (response.status === 401) { onSignedOut(); return false; }
    throw new ApiError(response.status, await detailOf(response));
  }
  keep(await response.json());
  return true;
}

export async function logOut() {
  forget();
  await fetch('/console/session', {
    method: 'DELETE', headers: CONSOLE_HEADER, credentials: 'same-origin',
  });
}

// A JSON request with the bearer token; one silent refresh on a 401, then sign-out.
export async function api(path, { method = 'GET', body } = {}) {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const headers = { authorization: `Bearer ${accessToken}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
    });
    if (response.status === 401 && attempt === 0 && await restore()) continue;
    if (response.status === 401) { forget(); onSignedOut(); }
    if (!response.ok) throw new ApiError(response.status, await detailOf(response));
    return response.status === 204 ? null : response.json();
  }
  throw new ApiError(401, 'signed out');
}
