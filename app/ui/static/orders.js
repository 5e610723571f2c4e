// The Orders page: search, status/user filters, keyset pagination, live refresh over SSE.

import { debounce, follow, getJSON } from "./api.js";
import { announce, badge, errorBox, fill, h, tableWrap, time } from "./dom.js";

const STATUSES = ["created", "paid", "shipped", "completed", "cancelled"];

function filtersForm(params) {
  const statusSelect = h("select", { id: "f-status", name: "status" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s, selected: params.get("status") === s }, s)));
  return h("form", { class: "filters", role: "search", action: "/ui/orders", method: "get", "aria-label": "Filter orders" },
    h("div", { class: "field grow" },
      h("label", { for: "f-q" }, "Search"),
      h("input", { id: "f-q", name: "q", type: "search", value: params.get("q") || "",
        placeholder: "order id, user id, payment or tracking number", "aria-describedby": "f-q-help" }),
      h("span", { id: "f-q-help", class: "help" }, "A number matches an order id or a user id.")),
    h("div", { class: "field" }, h("label", { for: "f-status" }, "Status"), statusSelect),
    h("div", { class: "field" },
      h("label", { for: "f-user" }, "User id"),
      h("input", { id: "f-user", name: "user_id", type: "number", min: "0", inputmode: "numeric",
        value: params.get("user_id") || "" })),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Apply"),
      h("a", { href: "/ui/orders", "data-link": true, class: "button secondary" }, "Reset")));
}

function itemsText(items) {
  if (!items || !items.length) return "—";
  return items.map((i) => `${i.quantity}× #${i.product_id}`).join(", ");
}

function row(order, changed) {
  return h("tr", { "data-order-id": order.order_id, class: changed ? "flash" : null },
    h("th", { scope: "row" }, h("a", { href: `/ui/orders/${order.order_id}`, "data-link": true }, `#${order.order_id}`)),
    h("td", {}, String(order.user_id)),
    h("td", {}, badge(order.status)),
    h("td", { class: "num" }, `${order.amount} ${order.currency || ""}`.trim()),
    h("td", {}, itemsText(order.items)),
    h("td", { class: "num" }, String(order.version)),
    h("td", {}, time(order.updated_at)));
}

function table(items, previous) {
  if (!items.length) return h("p", { class: "empty" }, "No orders match these filters.");
  // A row is highlighted when it is new or its version moved since the last render.
  const changed = (o) => previous !== null && previous.get(o.order_id) !== o.version;
  const body = h("tbody", {}, items.map((o) => row(o, changed(o))));
  return tableWrap("Orders", h("table", { class: "orders" },
    h("caption", { class: "visually-hidden" }, "Orders, newest first"),
    h("thead", {}, h("tr", {}, ["Order", "User", "Status", "Amount", "Items", "Version", "Updated"]
      .map((c) => h("th", { scope: "col" }, c)))),
    body));
}

function pager(params, nextCursor) {
  const links = [];
  if (params.get("cursor")) {
    const first = new URLSearchParams(params);
    first.delete("cursor");
    links.push(h("a", { href: `/ui/orders?${first}`, "data-link": true, class: "button secondary" }, "← Newest"));
  }
  if (nextCursor) {
    const next = new URLSearchParams(params);
    next.set("cursor", nextCursor);
    links.push(h("a", { href: `/ui/orders?${next}`, "data-link": true, class: "button secondary", rel: "next" }, "Older →"));
  }
  return h("nav", { class: "pager", "aria-label": "Pages" }, links);
}

export function renderOrders(main, params) {
  const results = h("div", { id: "orders-results", "aria-busy": "true" }, h("p", {}, "Loading…"));
  fill(main, h("h1", {}, "Orders"), filtersForm(params), results);
  let known = null;
  let latestSequence = 0;

  async function load(minSequence) {
    const query = new URLSearchParams();
    for (const key of ["q", "status", "user_id", "cursor"]) if (params.get(key)) query.set(key, params.get(key));
    if (minSequence) query.set("min_sequence", String(minSequence));
    try {
      const page = await getJSON(`/ui/api/orders?${query}`);
      fill(results, table(page.items, known), pager(params, page.next_cursor));
      known = new Map(page.items.map((o) => [o.order_id, o.version]));
    } catch (err) {
      fill(results, errorBox(`Could not load orders: ${err.message}`));
    }
    results.setAttribute("aria-busy", "false");
  }

  const refresh = debounce(() => {
    load(latestSequence);
    announce("Orders updated");
  }, 150);
  load(0);
  return follow({}, {
    onEvent(event) {
      latestSequence = Math.max(latestSequence, event.sequence);
      refresh();
    },
    onResync: refresh,
  });
}
