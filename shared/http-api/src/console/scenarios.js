// The scenarios and a scenario drawn as its steps (see console.js).
// ---- scenarios -------------------------------------------------------------------------
function triggerText(t) {
  const parts = Object.entries(t || {}).filter(([k]) => k !== "type").map(([k, v]) => k + " " + v);
  return (t ? t.type : "?") + (parts.length ? " · " + parts.join(", ") : "");
}
async function scenariosView() {
  markNav("#/");
  const body = h("tbody");
  const table = h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "sr-only", text: "Scenarios" }),
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Name" }), h("th", { scope: "col", text: "Status" }),
      h("th", { scope: "col", class: "hide-narrow", text: "Trigger" }), h("th", { scope: "col", class: "hide-narrow", text: "Updated" }))),
    body));
  const more = h("div", { class: "more" });
  show("Scenarios", h("h1", { text: "Scenarios" }), table, more);
  let cursor = null;
  const load = async () => {
    const data = await need("GET", "/v1/scenarios?limit=50" + (cursor ? "&cursor=" + enc(cursor) : ""));
    for (const s of data.items) {
      body.append(h("tr", {},
        h("td", {}, h("a", { href: "#/scenarios/" + enc(s.id), text: s.name || s.id })),
        h("td", {}, badge(s.status)),
        h("td", { class: "hide-narrow", text: triggerText(s.trigger) }),
        h("td", { class: "hide-narrow", text: when(s.updatedAt) })));
    }
    if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 4, class: "muted", text: "No scenarios yet." })));
    cursor = data.nextCursor;
    more.replaceChildren(cursor ? h("button", { type: "button", text: "More scenarios", onclick: (e) => { e.target.disabled = true; load(); } }) : "");
  };
  await load();
}

function ruleText(r) {
  if (!r) return "";
  if (r.all) return "(" + r.all.map(ruleText).join(" and ") + ")";
  if (r.any) return "(" + r.any.map(ruleText).join(" or ") + ")";
  return [r.field, r.op, r.value === undefined ? "" : JSON.stringify(r.value)].join(" ").trim();
}
function stepDetail(s) {
  if (s.type === "send_webhook") return s.url;
  if (s.type === "condition") return "if " + ruleText(s.rule);
  if (s.type === "wait") return "wait " + s.duration;
  return "";
}
const KIND = { send_webhook: "Send a webhook", condition: "Condition", wait: "Wait" };

function flow(scenario, stats) {
  const steps = new Map(scenario.steps.map((s) => [s.id, s]));
  const counts = new Map(stats.map((e) => [e.stepId, e]));
  const drawn = new Set();
  const card = (s) => {
    const c = counts.get(s.id) || { passes: 0 };
    const label = num(c.passes) + (c.passes === 1 ? " pass" : " passes");
    const passes = s.type === "send_webhook"
      ? h("a", { class: "passes", href: "#/scenarios/" + enc(scenario.id) + "/steps/" + enc(s.id),
          "aria-label": label + " through " + s.id + ": open its statistics", text: num(c.passes) })
      : h("span", { class: "passes", "aria-label": label + " through " + s.id, text: num(c.passes) });
    return [passes, h("div", { class: "step " + s.type, id: "step-" + s.id },
      h("div", { class: "kind", text: KIND[s.type] || s.type }),
      h("div", { class: "name", text: s.id }),
      h("div", { class: "detail", text: stepDetail(s) }),
      s.type === "send_webhook" ? h("div", { class: "counts" },
        h("span", { class: "ok", text: num(c.accepted) + " accepted" }),
        h("span", { class: "warn", text: num(c.pending) + " pending" }),
        h("span", { class: "bad", text: num(c.failed) + " failed" })) : null)];
  };
  const chain = (id) => {
    const ol = h("ol", { class: "flow" });
    for (;;) {
      if (id === null || id === undefined) { ol.append(h("li", {}, h("span", { class: "end", text: "End" }))); break; }
      const s = steps.get(id);
      if (!s) break;
      if (drawn.has(id)) {
        ol.append(h("li", {}, h("a", { class: "end", href: "#step-" + id, text: "continues at " + id,
          onclick: (e) => { e.preventDefault(); document.getElementById("step-" + id).scrollIntoView({ block: "center" }); } })));
        break;
      }
      drawn.add(id);
      const li = h("li", {}, card(s));
      ol.append(li);
      if (s.type === "condition" && (s.yes == null) !== (s.no == null)) {
        // one branch ends here: it is marked on the step, and the other goes on below it
        const on = s.yes != null ? "yes" : "no";
        const off = on === "yes" ? "no" : "yes";
        li.append(h("span", { class: "branch-label side " + off, text: (off === "yes" ? "Yes" : "No") + " → End" }));
        ol.append(h("li", {}, h("span", { class: "branch-label " + on, text: on === "yes" ? "Yes" : "No" })));
        id = s[on];
        continue;
      }
      if (s.type === "condition") {
        li.append(h("div", { class: "branches" },
          h("div", { class: "branch" }, h("span", { class: "branch-label yes", text: "Yes" }), chain(s.yes)),
          h("div", { class: "branch" }, h("span", { class: "branch-label no", text: "No" }), chain(s.no))));
        break;
      }
      id = s.next;
    }
    return ol;
  };
  const top = chain(scenario.start);
  top.prepend(h("li", {}, h("div", { class: "step trigger" },
    h("div", { class: "kind", text: "Trigger" }), h("div", { class: "name", text: triggerText(scenario.trigger) }))));
  return h("div", { class: "flow-wrap" }, top);
}

async function scenarioView(id) {
  markNav("#/");
  const [scenario, stats] = await Promise.all([
    need("GET", "/v1/scenarios/" + enc(id)),
    need("GET", "/v1/scenarios/" + enc(id) + "/stats"),
  ]);
  const entries = Array.isArray(stats) ? stats : stats.items || stats.steps || [];
  show(scenario.name || id,
    h("p", { class: "crumbs" }, h("a", { href: "#/", text: "Scenarios" }), " / "),
    h("h1", {}, scenario.name || id, " ", badge(scenario.status)),
    h("p", { class: "muted", text: "The number above each step is how many times contacts passed through it. Select a webhook step's number for its statistics and deliveries." }),
    flow(scenario, entries));
}
