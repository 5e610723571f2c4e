// The saga as a step timeline (built server-side from the saga's stored events): each step's start,
// end, duration, attempts, outcome, and whether it compensates an earlier step.

import { badge, duration, h, time } from "./dom.js";

function step(s, index) {
  const retries = s.attempts > 1 ? `${s.attempts} attempts (${s.attempts - 1} ${s.attempts === 2 ? "retry" : "retries"})` : "1 attempt";
  const meta = [
    h("span", {}, "Started ", time(s.started_at)),
    s.finished_at ? h("span", {}, "Ended ", time(s.finished_at)) : h("span", {}, "In progress"),
    duration(s.started_at, s.finished_at) ? h("span", {}, `Took ${duration(s.started_at, s.finished_at)}`) : null,
    h("span", { class: "attempts" }, retries),
  ];
  return h("li", { class: `step${s.compensation ? " compensation" : ""}`, "data-step": s.name, "data-status": s.status },
    h("div", { class: "step-head" },
      h("span", { class: "step-index", "aria-hidden": "true" }, String(index + 1)),
      h("strong", { class: "step-name" }, s.name.replace(/_/g, " ")),
      s.compensation ? h("span", { class: "tag" }, "compensation") : null,
      badge(s.status)),
    h("div", { class: "step-meta" }, meta),
    s.outcome ? h("p", { class: "step-detail" }, "Outcome: ", String(s.outcome)) : null);
}

export function sagaTimeline(saga) {
  if (!saga) return h("p", { class: "empty" }, "No saga has started for this order yet.");
  return h("div", {},
    h("p", { class: "saga-status" }, "Saga ", badge(saga.status),
      saga.reason ? h("span", { class: "saga-reason" }, ` — ${saga.reason}`) : null),
    saga.steps.length
      ? h("ol", { class: "steps", "aria-label": "Saga steps" }, saga.steps.map(step))
      : h("p", { class: "empty" }, "No steps yet."));
}
