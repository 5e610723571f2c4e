// Signing in: the page either logs in at the OIDC issuer itself (authorization code + PKCE, as the
// public client /ui/api/auth names) and keeps the access token in sessionStorage, or relies on an auth
// proxy that forwards the user's token (then it sends none). See docs/ui.md § Sign-in.

const TOKEN = "eda.console.token";
const PENDING = "eda.console.login";
let config = null;

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

// The token to send, if the page holds a valid one (display only: the API verifies it).
export function currentToken() {
  const token = sessionStorage.getItem(TOKEN);
  if (!token) return null;
  const exp = claims(token).exp;
  if (typeof exp === "number" && exp * 1000 < Date.now() + 5000) {
    sessionStorage.removeItem(TOKEN);
    return null;
  }
  return token;
}

export function authHeaders() {
  const token = currentToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export function subject() {
  const token = currentToken();
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
  const answer = await response.json();
  if (answer.access_token) sessionStorage.setItem(TOKEN, answer.access_token);
  window.history.replaceState({}, "", pending.back || "/ui/");
  return true;
}
