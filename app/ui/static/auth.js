// Signing in: the page either logs in at the OIDC issuer itself (authorization code + PKCE, as the
// public client /ui/api/auth names) and keeps the access token in sessionStorage, or relies on an auth
// proxy that forwards the user's token (then it sends none). With a refresh token from the issuer, an
// access token about to expire is renewed before the request that would carry it. See docs/ui.md § Sign-in.

const TOKEN = "eda.console.token";
const REFRESH = "eda.console.refresh";
const PENDING = "eda.console.login";
const EARLY_MS = 60000;  // renew a minute ahead: a request (or a feed reconnect) must not carry a dying token
let config = null;
let refreshing = null;  // one renewal at a time, however many requests wait for it

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(size) {
  return b64url(crypto.getRandomValues(new Uint8Array(size)));
}

function claims(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return {};
  }
}

export async function loginConfig() {
  if (!config) {
    const response = await fetch("/ui/api/auth", { headers: { Accept: "application/json" }, credentials: "same-origin" });
    config = response.ok ? await response.json() : { mode: "proxy" };
  }
  return config;
}

function expiresAt(token) {
  const exp = claims(token).exp;
  return typeof exp === "number" ? exp * 1000 : Infinity;
}

// The stored access token, unless it has expired with nothing to renew it.
function stored() {
  const token = sessionStorage.getItem(TOKEN);
  if (!token) return null;
  if (expiresAt(token) < Date.now() + 5000 && !sessionStorage.getItem(REFRESH)) {
    sessionStorage.removeItem(TOKEN);
    return null;
  }
  return token;
}

function keep(answer) {
  if (answer.access_token) sessionStorage.setItem(TOKEN, answer.access_token);
  if (answer.refresh_token) sessionStorage.setItem(REFRESH, answer.refresh_token);  // rotated, if the issuer does
}

async function renew() {
  const cfg = await loginConfig();
  const refreshToken = sessionStorage.getItem(REFRESH);
  if (!refreshToken || cfg.mode !== "login") return;
  const body = new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: cfg.client_id });
  let response;
  try {
    response = await fetch(cfg.token_endpoint, { method: "POST", body, credentials: "omit" });
  } catch {
    return;  // the issuer is unreachable: the next request tries again
  }
  if (response.ok) keep(await response.json());
  else sessionStorage.removeItem(REFRESH);  // refused (expired, revoked): signing in again is the way
}

// The token to send, renewed first when it expires within EARLY_MS (display only: the API verifies it).
async function freshToken() {
  const token = stored();
  if (token && expiresAt(token) < Date.now() + EARLY_MS && sessionStorage.getItem(REFRESH)) {
    refreshing = refreshing || renew().finally(() => { refreshing = null; });
    await refreshing;
  }
  const now = stored();
  return now && expiresAt(now) > Date.now() + 5000 ? now : null;
}

export async function authHeaders() {
  const token = await freshToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export function subject() {
  const token = stored();
  return token ? claims(token).sub || "" : "";
}

function redirectUri() {
  return `${window.location.origin}/ui/`;
}

export async function login() {
  const cfg = await loginConfig();
  if (cfg.mode !== "login") return;
  const verifier = randomText(48);
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = randomText(16);
  const back = window.location.pathname + window.location.search;
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, back }));
  const params = new URLSearchParams({
    response_type: "code",
    client_id: cfg.client_id,
    redirect_uri: redirectUri(),
    scope: cfg.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  window.location.assign(`${cfg.authorization_endpoint}?${params}`);
}

export function logout() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(REFRESH);
  window.location.assign("/ui/");
}

// Back from the issuer with ?code=&state=: exchange the code (PKCE) for the access token.
export async function completeLogin() {
  const params = new URLSearchParams(window.location.search);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  if (!params.has("code") || !pending) return false;
  sessionStorage.removeItem(PENDING);
  const cfg = await loginConfig();
  if (params.get("state") !== pending.state || cfg.mode !== "login") return false;
  const body = new URLSearchParams({
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: redirectUri(),
    client_id: cfg.client_id,
    code_verifier: pending.verifier,
  });
  const response = await fetch(cfg.token_endpoint, { method: "POST", body, credentials: "omit" });
  if (!response.ok) return false;
  keep(await response.json());
  window.history.replaceState({}, "", pending.back || "/ui/");
  return true;
}
