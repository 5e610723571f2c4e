// Fetching JSON from the console API and following its Server-Sent Events feed.

export class HttpError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

export async function getJSON(url, { signal } = {}) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, signal, credentials: "same-origin" });
  if (!response.ok) {
    let detail = "";
    try { detail = (await response.json()).detail || ""; } catch { /* not JSON */ }
    throw new HttpError(response.status, detail);
  }
  return response.json();
}

export function setIndicator(state, text) {
  const el = document.getElementById("live-indicator");
  if (!el) return;
  el.dataset.state = state;
  el.querySelector(".live-text").textContent = text;
}

// Follow /ui/api/stream; onEvent(summary) for each stored event, onResync() when events were dropped.
// Returns a function that closes the feed.
export function follow(params, { onEvent, onResync }) {
  const query = new URLSearchParams(params).toString();
  const source = new EventSource(`/ui/api/stream${query ? `?${query}` : ""}`);
  setIndicator("connecting", "Connecting…");
  source.addEventListener("hello", () => setIndicator("live", "Live"));
  source.addEventListener("event", (message) => {
    setIndicator("live", "Live");
    onEvent(JSON.parse(message.data));
  });
  source.addEventListener("resync", () => onResync && onResync());
  source.addEventListener("error", () => {
    setIndicator(source.readyState === EventSource.CLOSED ? "off" : "connecting",
      source.readyState === EventSource.CLOSED ? "Offline" : "Reconnecting…");
  });
  return () => {
    source.close();
    setIndicator("off", "Offline");
  };
}

// Run fn at most once per `wait` ms, always with the latest call honoured.
export function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => fn(...args), wait);
  };
}
