// Fetching JSON from the console API and following its Server-Sent Events feed, with the page's token
// (auth.js) when it holds one. The feed is read with fetch: EventSource cannot send a header.

import { authHeaders } from "./auth.js";

export class HttpError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

export async function getJSON(url, { signal } = {}) {
  const headers = { Accept: "application/json", ...(await authHeaders()) };
  const response = await fetch(url, { headers, signal, credentials: "same-origin" });
  if (response.status === 401 || response.status === 403) document.dispatchEvent(new CustomEvent("eda:unauthorized"));
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

// Parse one SSE message block ("id: 1\nevent: x\ndata: {...}") into {id, event, data}.
function parseMessage(block) {
  const message = { id: null, event: "message", data: "" };
  for (const line of block.split("\n")) {
    const at = line.indexOf(":");
    if (at <= 0) continue;
    const field = line.slice(0, at);
    const value = line.slice(at + 1).replace(/^ /, "");
    if (field === "id") message.id = value;
    else if (field === "event") message.event = value;
    else if (field === "data") message.data += value;
  }
  return message;
}

// Follow /ui/api/stream; onEvent(summary) for each stored event, onResync() when events were dropped.
// Reconnects (resuming after the last id seen) until the returned function is called.
export function follow(params, { onEvent, onResync }) {
  const query = new URLSearchParams(params).toString();
  const url = `/ui/api/stream${query ? `?${query}` : ""}`;
  const stop = new AbortController();
  let lastId = null;
  const handle = (message) => {
    if (message.id) lastId = message.id;
    if (message.event === "hello") setIndicator("live", "Live");
    else if (message.event === "event") {
      setIndicator("live", "Live");
      onEvent(JSON.parse(message.data));
    } else if (message.event === "resync" && onResync) onResync();
  };
  const run = async () => {
    while (!stop.signal.aborted) {
      setIndicator("connecting", "Connecting…");
      try {
        const headers = { Accept: "text/event-stream", ...(await authHeaders()), ...(lastId ? { "Last-Event-ID": lastId } : {}) };
        const response = await fetch(url, { headers, signal: stop.signal, credentials: "same-origin", cache: "no-store" });
        if (response.status === 401 || response.status === 403) {
          document.dispatchEvent(new CustomEvent("eda:unauthorized"));
          break;
        }
        if (!response.ok) {  // 429/503: this server's stream or rate limit; come back when it says
          const seconds = Math.min(Number(response.headers.get("Retry-After")) || 5, 60);
          setIndicator("connecting", "Server busy, retrying…");
          await new Promise((resolve) => window.setTimeout(resolve, seconds * 1000));
          continue;
        }
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            handle(parseMessage(buffer.slice(0, cut)));
            buffer = buffer.slice(cut + 2);
          }
        }
      } catch { /* aborted or dropped: reconnect below */ }
      if (stop.signal.aborted) break;
      setIndicator("connecting", "Reconnecting…");
      await new Promise((resolve) => window.setTimeout(resolve, 2000));
    }
    setIndicator("off", "Offline");
  };
  run();
  return () => stop.abort();
}

// Run fn at most once per `wait` ms, always with the latest call honoured.
export function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => fn(...args), wait);
  };
}
