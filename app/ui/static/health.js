// The Health page: projection lag (with an inline SVG chart of the last minutes), streams, consumer
// pending counts, snapshots, rebuild and snapshot runs (running + recent, with progress), dead letters.
// Refreshed every few seconds while visible.

import { getJSON, setIndicator } from "./api.js";
import { badge, errorBox, fill, formatTime, h, svg, tableWrap, time } from "./dom.js";

const REFRESH_MS = 2000;
const COLORS = ["#1f6feb", "#b35900", "#2f7d32", "#8e3ab5", "#c62828"];

function lagChart(history, windowSeconds, now) {
  const names = Object.keys(history);
  const width = 640, height = 170, left = 44, right = 10, top = 10, bottom = 26;
  const all = names.flatMap((n) => history[n]);
  const max = Math.max(10, ...all.map(([, lag]) => lag));
  const x = (t) => left + ((t - (now - windowSeconds)) / windowSeconds) * (width - left - right);
  const y = (lag) => top + (1 - lag / max) * (height - top - bottom);
  const minutes = Math.round(windowSeconds / 60);
  const latest = names.map((n) => `${n}: ${history[n].length ? history[n][history[n].length - 1][1] : 0} events behind`);
  const label = `Projection lag over the last ${minutes} minutes, peak ${max > 10 ? max : Math.max(0, ...all.map(([, l]) => l))}. Now ${latest.join(", ") || "no data"}.`;
  const grid = [0, 0.5, 1].map((f) => [
    svg("line", { x1: left, x2: width - right, y1: y(max * f), y2: y(max * f), class: "grid" }),
    svg("text", { x: left - 6, y: y(max * f) + 4, "text-anchor": "end", class: "axis" }, document.createTextNode(String(Math.round(max * f)))),
  ]);
  const ticks = [0, 0.5, 1].map((f) => svg("text", { x: left + f * (width - left - right), y: height - 6,
    "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle", class: "axis" },
  document.createTextNode(f === 1 ? "now" : `-${Math.round(minutes * (1 - f))} min`)));
  const lines = names.map((n, i) => {
    const points = history[n].filter(([t]) => t >= now - windowSeconds).map(([t, lag]) => `${x(t).toFixed(1)},${y(lag).toFixed(1)}`);
    if (!points.length) return null;
    const [lx, ly] = points[points.length - 1].split(",");
    return [
      svg("polyline", { points: points.join(" "), fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 2 }),
      svg("circle", { cx: lx, cy: ly, r: 3.5, fill: COLORS[i % COLORS.length] }),
    ];
  });
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": label },
    svg("title", {}, document.createTextNode(label)), grid, ticks, lines);
  const legend = h("ul", { class: "legend", "aria-hidden": "true" },
    names.map((n, i) => h("li", {}, h("span", { class: `swatch swatch-${i % COLORS.length}` }), n)));
  return h("figure", { class: "chart-figure" }, chart, legend,
    h("figcaption", {}, "Lag = events not yet applied to the read model (sampled while this page is open)."));
}

function simpleTable(label, columns, rows) {
  if (!rows.length) return h("p", { class: "empty" }, `No ${label.toLowerCase()}.`);
  return tableWrap(`${label} table`, h("table", {},
    h("caption", { class: "visually-hidden" }, label),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => (i === 0 ? h("th", { scope: "row" }, c) : h("td", {}, c))))))));
}

function unavailable(part) {
  return h("p", { class: "muted" }, part.note || "Not available.");
}

function rebuildLocks(part) {
  if (!part.available) return unavailable(part);
  return [
    part.locked_projections.length ? h("p", {}, `Rebuild lock held for: ${part.locked_projections.join(", ")}`) : null,
    part.running.length ? h("p", { class: "muted" }, "Shadow schemas: ",
      part.running.map((r, i) => [i ? ", " : "", h("code", {}, r.shadow_schema)])) : null,
    h("p", { class: "muted" }, part.note),
  ];
}

function seconds(value) {
  if (value === null || value === undefined) return "—";
  return value < 90 ? `${Math.round(value)} s` : `${Math.round(value / 60)} min`;
}

function runSource(r) {
  if (r.source !== "operator") return r.source;
  return r.k8s_name ? `operator (${r.k8s_namespace || "?"}/${r.k8s_name})` : "operator";
}

function runProgress(r) {
  const p = r.progress || {};
  const percent = Number.isFinite(p.percent) ? Math.max(0, Math.min(100, p.percent)) : null;
  const label = `${r.kind} ${r.target} progress`;
  const bar = percent === null
    ? h("span", { class: "muted" }, "—")
    : h("span", { class: "run-progress" },
      h("progress", { max: "100", value: String(percent), "aria-label": label }, `${percent}%`),
      h("span", { class: "run-percent" }, `${percent}%`));
  const detail = r.kind === "snapshot"
    ? (p.scanned === undefined ? "" : `${p.scanned}/${p.candidates ?? "?"} scanned, ${p.written} written`)
    : (p.events_replayed === undefined ? "" : `${p.events_replayed} events (target seq ${p.target_sequence})`);
  return [bar, detail ? h("div", { class: "help" }, detail) : null];
}

function runRows(list) {
  return list.map((r) => [
    r.kind, h("code", {}, r.target), runSource(r),
    [badge(r.status), " ", h("span", { class: "muted" }, r.phase)],
    runProgress(r),
    r.progress && r.progress.events_per_second !== undefined ? String(r.progress.events_per_second) : "—",
    r.status === "running" ? seconds(r.progress && r.progress.eta_seconds) : "—",
    time(r.started_at), time(r.finished_at),
    r.status === "stalled" ? `no update since ${formatTime(new Date(r.updated_at))} (process gone?)` : (r.message || ""),
  ]);
}

function runs(part, locks) {
  if (!part.available) return [unavailable(part), rebuildLocks(locks)];
  const columns = ["Kind", "Target", "Source", "Status", "Progress", "Events/s", "ETA", "Started", "Finished", "Message"];
  return [
    h("h3", {}, "Running"),
    part.running.length ? simpleTable("Running maintenance runs", columns, runRows(part.running))
      : h("p", { class: "empty" }, "No rebuild or snapshot is running."),
    h("h3", {}, "Recently finished"),
    part.finished.length ? simpleTable("Finished maintenance runs", columns, runRows(part.finished))
      : h("p", { class: "empty" }, "No rebuild or snapshot run recorded yet."),
    h("p", { class: "help" }, `Recorded by eda rebuild / eda snapshot and the operator; a run not updated for ${part.stale_after_s} s is shown as stalled.`),
    rebuildLocks(locks),
  ];
}

function section(id, title, ...content) {
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), content);
}

function render(target, data) {
  const projections = simpleTable("Projections", ["Projection", "Checkpoint", "Stream last sequence", "Lag", "Measured by", "Updated"],
    data.projections.map((p) => [p.projection, String(p.checkpoint), String(p.stream_last_sequence),
      h("strong", { class: p.lag > 0 ? "warn" : "ok" }, String(p.lag)), p.lag_source, time(p.updated_at)]));
  const consumers = simpleTable("Consumers", ["Consumer", "Stream", "Filter", "Pending", "Ack pending", "Redelivered", "Waiting pulls"],
    data.consumers.map((c) => [c.durable ? c.name : `${c.name} (ephemeral)`, c.stream, h("code", {}, c.filter),
      String(c.num_pending), String(c.num_ack_pending), String(c.num_redelivered), String(c.num_waiting)]));
  const streams = simpleTable("Streams", ["Stream", "Messages", "Bytes", "Last sequence", "Consumers"],
    data.streams.map((s) => [s.name, String(s.messages), String(s.bytes), String(s.last_sequence), String(s.consumers)]));
  const snap = data.snapshots.available
    ? h("p", {}, `Bucket “${data.snapshots.bucket}”: ${data.snapshots.revisions} snapshot revisions, ${data.snapshots.bytes} bytes.`)
    : unavailable(data.snapshots);
  const dead = data.dead_letters.available
    ? simpleTable("Dead-lettered messages", ["Sequence", "Stream", "Subject", "Time", "Details"],
      data.dead_letters.messages.map((m) => [String(m.sequence), m.stream, h("code", {}, m.subject), time(m.time),
        h("details", {}, h("summary", {}, "show"), h("pre", { class: "payload" },
          JSON.stringify(m.headers, null, 2) + "\n" + m.preview))]))
    : unavailable(data.dead_letters);
  fill(target,
    data.notes.length ? errorBox(data.notes.join("; ")) : null,
    section("h-proj", "Projection lag", lagChart(data.lag_history, data.history_window_s, data.now), projections),
    section("h-cons", "Consumers", consumers),
    section("h-streams", "Streams", streams),
    section("h-snap", "Snapshots", snap),
    section("h-rebuilds", "Rebuilds and snapshots", runs(data.runs, data.rebuilds)),
    section("h-dlq", "Dead letters", dead));
}

export function renderHealth(main) {
  const target = h("div", { "aria-busy": "true" }, h("p", {}, "Loading…"));
  fill(main, h("h1", {}, "Health"), target);
  let timer = null;
  let stopped = false;

  async function tick() {
    if (!document.hidden) {
      try {
        render(target, await getJSON("/ui/api/health"));
        setIndicator("live", `Refreshing every ${REFRESH_MS / 1000} s`);
      } catch (err) {
        fill(target, errorBox(`Could not load health: ${err.message}`));
      }
      target.setAttribute("aria-busy", "false");
    }
    if (!stopped) timer = window.setTimeout(tick, REFRESH_MS);
  }
  tick();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
    setIndicator("off", "Offline");
  };
}
