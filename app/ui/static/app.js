// Entry point: a tiny client-side router over /ui/orders, /ui/orders/{id} and /ui/health.

import { completeLogin, loginConfig, login, logout, subject } from "./auth.js";
import { renderDetail } from "./detail.js";
import { renderHealth } from "./health.js";
import { renderOrders } from "./orders.js";

let stopCurrent = null;

function route() {
  if (stopCurrent) stopCurrent();
  stopCurrent = null;
  const main = document.getElementById("main");
  const path = window.location.pathname.replace(/\/+$/, "");
  const detail = path.match(/^\/ui\/orders\/(\d+)$/);
  let section = "orders";
  if (detail) {
    stopCurrent = renderDetail(main, Number(detail[1]));
    document.title = `Order #${detail[1]} · eda console`;
  } else if (path === "/ui/health") {
    section = "health";
    stopCurrent = renderHealth(main);
    document.title = "Health · eda console";
  } else {
    stopCurrent = renderOrders(main, new URLSearchParams(window.location.search));
    document.title = "Orders · eda console";
  }
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function navigate(url) {
  window.history.pushState({}, "", url);
  route();
  const heading = document.querySelector("main h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  navigate(link.href);
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches("form.filters")) return;
  event.preventDefault();
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) if (String(value).trim()) params.set(key, String(value).trim());
  navigate(`/ui/orders${params.toString() ? `?${params}` : ""}`);
});

// The sign-in area of the header: who is signed in, or a button to sign in at the issuer.
async function renderSession(unauthorized = false) {
  const area = document.getElementById("session");
  if (!area) return;
  const cfg = await loginConfig();
  area.replaceChildren();
  const who = subject();
  const text = document.createElement("span");
  const button = document.createElement("button");
  button.type = "button";
  if (who) {
    text.textContent = `Signed in as ${who}`;
    button.textContent = "Sign out";
    button.addEventListener("click", logout);
  } else if (cfg.mode === "login") {
    text.textContent = unauthorized ? "Sign in to see this console" : "";
    button.textContent = "Sign in";
    button.addEventListener("click", login);
  } else {
    text.textContent = unauthorized ? "Not authorized: sign in through your auth proxy" : "";
    area.append(text);
    return;
  }
  area.append(text, button);
}

document.addEventListener("eda:unauthorized", () => renderSession(true));
window.addEventListener("popstate", route);
window.addEventListener("pagehide", () => stopCurrent && stopCurrent());
completeLogin().finally(() => {
  renderSession();
  route();
});
