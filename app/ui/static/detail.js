// The Order detail page: summary, saga step timeline, event timeline with payloads on demand, Jaeger link,
// refreshed live by the order's own SSE feed.

import { HttpError, debounce, follow, getJSON } from "./api.js";
import { announce, badge, errorBox, fill, h, shortId, tableWrap, time } from "./dom.js";
import { sagaTimeline } from "./saga.js";

function summary(detail) {
  const o = detail.order;
  const rows = o ? [
    ["User", String(o.user_id)],
    ["Amount", `${o.amount} ${o.currency || ""}`.trim()],
    ["Items", o.items && o.items.length ? o.items.map((i) => `${i.quantity}× product ${i.product_id}`).join(", ") : "none"],
    ["Version", String(o.version)],
    ["Created", time(o.created_at)],
    ["Updated", time(o.updated_at)],
    ["Payment", o.payment_id || "—"],
    ["Tracking number", o.tracking_number || "—"],
    ["Cancel reason", o.cancel_reason || "—"],
  ] : [["Read model", "not projected yet"]];
  return h("dl", { class: "summary" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function payloadToggle(event, expanded) {
  const id = `payload-${event.event_id}`;
  const open = expanded.has(event.event_id);
  const pre = h("pre", { id, class: "payload", hidden: !open }, JSON.stringify(event.data, null, 2));
  const button = h("button", { type: "button", class: "link-button", "aria-expanded": String(open), "aria-controls": id,
    onclick: () => {
      const show = pre.hidden;
      pre.hidden = !show;
      button.setAttribute("aria-expanded", String(show));
      button.textContent = show ? "Hide payload" : "Show payload";
      if (show) expanded.add(event.event_id); else expanded.delete(event.event_id);
    } }, open ? "Hide payload" : "Show payload");
  return [button, pre];
}

function eventsTable(events, expanded, seen, label) {
  if (!events.length) return h("p", { class: "empty" }, "No events.");
  const rows = events.map((e) => {
    const [button, pre] = payloadToggle(e, expanded);
    return h("tr", { "data-event-type": e.type, "data-version": e.version, class: seen && !seen.has(e.event_id) ? "flash" : null },
      h("td", { class: "num" }, String(e.version)),
      h("th", { scope: "row" }, e.type, e.schema_version > 1 ? h("span", { class: "muted" }, ` v${e.schema_version}`) : null),
      h("td", {}, time(e.occurred_at)),
      h("td", { class: "num" }, String(e.sequence)),
      h("td", {}, shortId(e.correlation_id)),
      h("td", {}, shortId(e.causation_id)),
      h("td", {}, e.trace_url ? h("a", { href: e.trace_url, target: "_blank", rel: "noopener noreferrer" }, "trace")
        : shortId(e.trace_id)),
      h("td", { class: "payload-cell" }, button, pre));
  });
  return tableWrap(label, h("table", { class: "events" },
    h("caption", { class: "visually-hidden" }, label),
    h("thead", {}, h("tr", {}, ["Version", "Type", "Time", "Sequence", "Correlation", "Causation", "Trace", "Payload"]
      .map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows)));
}

export function renderDetail(main, orderId) {
  const heading = h("h1", { tabindex: "-1" }, `Order #${orderId}`);
  const head = h("div", { class: "detail-head" });
  const body = h("div", { "aria-busy": "true" }, h("p", {}, "Loading…"));
  fill(main, h("p", { class: "crumbs" }, h("a", { href: "/ui/orders", "data-link": true }, "← All orders")),
    heading, head, body);
  const expanded = new Set();
  let seen = null;
  let sagaOpen = false;

  async function load() {
    try {
      const detail = await getJSON(`/ui/api/orders/${orderId}`);
      fill(head,
        detail.order ? badge(detail.order.status) : null,
        detail.trace_url ? h("a", { class: "button secondary", href: detail.trace_url, target: "_blank",
          rel: "noopener noreferrer" }, "View trace in Jaeger") : null);
      fill(body,
        h("section", { "aria-labelledby": "h-summary" }, h("h2", { id: "h-summary" }, "Summary"), summary(detail)),
        h("section", { "aria-labelledby": "h-saga", id: "saga" }, h("h2", { id: "h-saga" }, "Saga"), sagaTimeline(detail.saga)),
        h("section", { "aria-labelledby": "h-events", id: "events" }, h("h2", { id: "h-events" }, "Event timeline"),
          eventsTable(detail.events, expanded, seen, "Order events")),
        detail.saga_events.length ? h("details", { class: "saga-events", open: sagaOpen,
          ontoggle: (e) => { sagaOpen = e.target.open; } },
          h("summary", {}, `Saga stream events (${detail.saga_events.length})`),
          eventsTable(detail.saga_events, expanded, seen, "Saga events")) : null);
      seen = new Set([...detail.events, ...detail.saga_events].map((e) => e.event_id));
    } catch (err) {
      fill(body, errorBox(err instanceof HttpError && err.status === 404
        ? `Order #${orderId} does not exist.` : `Could not load order #${orderId}: ${err.message}`));
    }
    body.setAttribute("aria-busy", "false");
  }

  const refresh = debounce(load, 120);
  load();
  return follow({ order_id: orderId }, {
    onEvent(event) {
      announce(`New ${event.aggregate_type} event: ${event.type}`);
      refresh();
    },
    onResync: refresh,
  });
}
