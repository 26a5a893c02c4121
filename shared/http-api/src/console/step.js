// A webhook step, the destinations and the placeholders (see console.js).
// ---- a webhook step ----------------------------------------------------------------------
function tiles(s) {
  const tile = (cls, n, l) => h("div", { class: "tile " + cls }, h("div", { class: "n", text: num(n) }), h("div", { class: "l", text: l }));
  return h("div", { class: "tiles", role: "group", "aria-label": "Statistics" },
    tile("reached", s.uniqueContacts, "Unique contacts reached"),
    tile("accepted", s.accepted, "Accepted"),
    tile("pending", s.pending, "Pending"),
    tile("failed", s.failed, "Failed"),
    tile("all", s.passes, "Passes"));
}

function errorToggle(lines, name) {
  const box = h("div", { class: "error-box", hidden: true });
  for (const [label, text] of lines) {
    if (text === null || text === undefined || text === "") continue;
    box.append(h("div", {}, h("strong", { text: label + ": " })), h("pre", { text: String(text) }));
  }
  const btn = h("button", { type: "button", class: "link", "aria-expanded": "false", text: "See error code",
    "aria-label": "See error code" + (name ? " of " + name : ""),
    onclick: () => {
      box.hidden = !box.hidden;
      btn.setAttribute("aria-expanded", String(!box.hidden));
      btn.textContent = box.hidden ? "See error code" : "Hide error code";
    } });
  return [btn, box];
}

function attemptRows(d) {
  const rows = d.attempts.map((a, i) => {
    const ok = a.status !== null && a.status >= 200 && a.status < 300;
    const result = a.status !== null ? "HTTP " + a.status : (a.error || "error");
    return h("tr", {},
      h("td", { text: when(a.at) }),
      h("td", {}, h("span", { class: ok ? "ok" : "bad", text: result }),
        ok ? null : [" ", ...errorToggle([["Status code", a.status], ["Error", a.error], ["Response", a.responseSnippet]], "attempt " + (i + 1) + " of " + d.id)]),
      h("td", { text: a.durationMs + " ms" }));
  });
  return h("div", { class: "table-wrap attempts" }, h("table", {},
    h("caption", { class: "sr-only", text: "Attempts of delivery " + d.id }),
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Time" }), h("th", { scope: "col", text: "Status code or error" }), h("th", { scope: "col", text: "Duration" }))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 3, class: "muted", text: "No attempt yet." })))));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A resend is made by the workers, not inside the call: the delivery is read again (from
// the newest page) until its new attempt shows.
async function followResend(base, d, fill, li, changed) {
  const before = d.attemptCount !== undefined ? d.attemptCount : d.attempts.length;
  for (let i = 0; i < 20; i++) {
    await sleep(500);
    const r = await api("GET", base + "/deliveries?limit=100");
    if (!r.ok) return;
    const now = r.data.items.find((x) => x.id === d.id);
    if (!now) return;
    if (now.attemptCount > before) {
      fill(now);
      const last = now.attempts[now.attempts.length - 1] || {};
      li.append(h("p", { class: "note", role: "status", text: now.status === "accepted"
        ? "Resent: the receiver accepted it (HTTP " + last.status + ")."
        : "Resent: not accepted this time (" + (last.error || "HTTP " + last.status) + ")." }));
      say("Resent: " + now.status);
      changed();
      return;
    }
  }
}

function deliveryItem(base, d, changed) {
  const li = h("li", { class: "delivery", "data-id": d.id });
  const fill = (d) => {
    const count = d.attemptCount !== undefined ? d.attemptCount : d.attempts.length;
    const resend = d.status === "failed"
      ? h("button", { type: "button", text: "Resend", "aria-label": "Resend delivery " + d.id,
          onclick: async (e) => {
            e.target.disabled = true;
            const r = await api("POST", base + "/deliveries/" + enc(d.id) + "/resend");
            if (r.status === 202) {
              li.append(h("p", { class: "note", role: "status", text: "Resend accepted: one new attempt is being made…" }));
              say("Resend accepted");
              followResend(base, r.data, fill, li, changed);
            } else {
              e.target.disabled = false;
              li.append(alertBox("Resend refused: " + r.message));
            }
          } })
      : null;
    li.replaceChildren(
      h("header", {}, badge(d.status), h("strong", { text: "Contact " + d.contactId }),
        h("span", { class: "meta", text: "created " + when(d.createdAt) }),
        h("span", { class: "meta", text: count + (count === 1 ? " attempt" : " attempts") }),
        d.nextAttemptAt ? h("span", { class: "meta", text: "next attempt " + when(d.nextAttemptAt) }) : null,
        resend),
      h("div", { class: "meta", text: "Delivery " + d.id + " · deadline " + when(d.deadline) }),
      attemptRows(d));
  };
  fill(d);
  return li;
}

function deliveriesSection(base, changed) {
  const list = h("ol", { class: "deliveries", "aria-label": "Deliveries, newest first" });
  const more = h("div", { class: "more" });
  const filter = h("select", { id: "delivery-status", onchange: () => { cursor = null; list.replaceChildren(); load(); } },
    h("option", { value: "", text: "All" }), h("option", { value: "pending", text: "Pending" }),
    h("option", { value: "accepted", text: "Accepted" }), h("option", { value: "failed", text: "Failed" }));
  let cursor = null;
  const load = async () => {
    const q = "?limit=" + PAGE + (filter.value ? "&status=" + filter.value : "") + (cursor ? "&cursor=" + enc(cursor) : "");
    const r = await api("GET", base + "/deliveries" + q);
    if (!r.ok) { more.replaceChildren(alertBox(r.message)); return; }
    for (const d of r.data.items) list.append(deliveryItem(base, d, changed));
    if (!list.children.length) list.append(h("li", { class: "muted", text: "No deliveries." }));
    cursor = r.data.nextCursor;
    more.replaceChildren(cursor ? h("button", { type: "button", text: "More deliveries", onclick: (e) => { e.target.disabled = true; load(); } }) : "");
  };
  const since = h("input", { id: "resend-since", type: "datetime-local", required: true });
  const sinceOut = h("div", { role: "status" });
  const resendFailed = h("form", { class: "row", "aria-label": "Resend failed since",
    onsubmit: async (e) => {
      e.preventDefault();
      if (!since.value) return;
      const r = await api("POST", base + "/resend-failed", { since: new Date(since.value).toISOString() });
      sinceOut.replaceChildren(r.ok
        ? h("p", { class: "note", text: num(r.data.queued) + " failed deliveries queued for one new attempt." })
        : alertBox(r.message));
    } },
    h("div", { class: "field" }, h("label", { for: "resend-since", text: "Resend failed since…" }), since),
    h("button", { type: "submit", text: "Resend failed" }));
  const section = h("section", { "aria-labelledby": "deliveries-title" },
    h("h2", { id: "deliveries-title", text: "Deliveries" }),
    h("div", { class: "row", style: "justify-content: space-between; margin-bottom: .6rem" },
      h("div", { class: "field" }, h("label", { for: "delivery-status", text: "Status" }), filter),
      resendFailed),
    sinceOut, list, more);
  return { section, load };
}

function placeholdersTable(items) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "sr-only", text: "Placeholders" }),
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Placeholder" }), h("th", { scope: "col", text: "Field" }), h("th", { scope: "col", text: "Group" }))),
    h("tbody", {}, items.map((p) => h("tr", {}, h("td", {}, h("code", { text: "{{" + p.key + "}}" })), h("td", { text: p.label }), h("td", { text: p.group }))))));
}

function settingsSection(step) {
  const dl = h("dl");
  const add = (k, v) => dl.append(h("dt", { text: k }), h("dd", {}, v));
  add("URL", h("span", { class: "url", text: step.url }));
  add("Fields", (step.fields || []).length ? step.fields.join(", ") : "—");
  const extra = Object.entries(step.additional || {});
  add("Additional", extra.length ? h("div", {}, extra.map(([k, v]) => h("div", {}, h("code", { text: k }), " = ", h("code", { text: v })))) : "—");
  const headers = Object.keys(step.headers || {});
  add("Headers", headers.length ? headers.join(", ") : "—");
  add("Signing", step.signing === false ? "off" : "on (Standard Webhooks)");
  add("Rate limit", step.rateLimit ? step.rateLimit + " requests/s" : "none");

  const url = h("input", { id: "test-url", type: "url", value: step.url, size: 40, "aria-describedby": "test-help" });
  const result = h("div", { class: "test-result", role: "status", "aria-live": "polite" });
  const test = h("form", { "aria-label": "Test the webhook",
    onsubmit: async (e) => {
      e.preventDefault();
      const btn = test.querySelector("button[type=submit]");
      btn.disabled = true;
      result.replaceChildren(h("span", { class: "muted", text: "Sending a test request…" }));
      const body = { url: url.value };
      if (step.headers && Object.keys(step.headers).length) body.headers = step.headers;
      const r = await api("POST", "/v1/webhooks/test", body);
      btn.disabled = false;
      if (r.ok && r.data.accepted) {
        result.replaceChildren(h("span", { class: "mark ok", "aria-hidden": "true", text: "✓" }),
          h("span", { class: "ok", "data-test": "accepted", text: "Accepted: HTTP " + r.data.status + " in " + r.data.durationMs + " ms" }));
        say("Test accepted");
      } else {
        const lines = r.ok ? [["Status code", r.data.status], ["Error", r.data.error]] : [["Error", r.message]];
        result.replaceChildren(h("span", { class: "mark bad", "aria-hidden": "true", text: "✗" }),
          h("span", { class: "bad", "data-test": "refused", text: r.ok ? "Not accepted" : "Not sent" }), ...errorToggle(lines, "the test"));
        say("Test not accepted");
      }
    } },
    h("div", { class: "field" }, h("label", { for: "test-url", text: "Test URL" }), url),
    h("p", { id: "test-help", class: "muted", text: "Sends a sample contact (John Doe) to this URL with the step's headers." }),
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary", text: "Test" })),
    result);
  const ph = h("div");
  const phButton = h("button", { type: "button", class: "link", "aria-expanded": "false", text: "Get placeholders",
    onclick: async () => {
      if (ph.children.length) { ph.replaceChildren(); phButton.setAttribute("aria-expanded", "false"); return; }
      const r = await api("GET", "/v1/placeholders");
      ph.replaceChildren(r.ok ? placeholdersTable(r.data.items) : alertBox(r.message));
      phButton.setAttribute("aria-expanded", "true");
    } });
  return h("section", { class: "settings", "aria-labelledby": "settings-title" },
    h("h2", { id: "settings-title", text: "Settings" }),
    h("div", { class: "card" }, dl, h("h3", { style: "margin-top:1rem", text: "Test" }), test,
      h("p", {}, phButton), ph));
}

async function stepView(id, stepId) {
  markNav("#/");
  const base = "/v1/scenarios/" + enc(id) + "/steps/" + enc(stepId);
  const [scenario, stats] = await Promise.all([need("GET", "/v1/scenarios/" + enc(id)), need("GET", base + "/stats")]);
  const step = scenario.steps.find((s) => s.id === stepId);
  let shown = tiles(stats);
  const deliveries = deliveriesSection(base, async () => {
    const r = await api("GET", base + "/stats");
    if (r.ok) { const t = tiles(r.data); shown.replaceWith(t); shown = t; }
  });
  show(stepId + " · " + (scenario.name || id),
    h("p", { class: "crumbs" }, h("a", { href: "#/", text: "Scenarios" }), " / ",
      h("a", { href: "#/scenarios/" + enc(id), text: scenario.name || id }), " /"),
    h("h1", { text: "Send a webhook: " + stepId }),
    shown,
    h("div", { class: "columns" }, deliveries.section, step ? settingsSection(step) : null));
  await deliveries.load();
}

// ---- destinations and placeholders ---------------------------------------------------------
async function destinationsView() {
  markNav("#/destinations");
  const filter = h("select", { id: "destination-status", onchange: () => { cursor = null; body.replaceChildren(); load(); } },
    h("option", { value: "", text: "All" }), h("option", { value: "healthy", text: "Healthy" }),
    h("option", { value: "throttled", text: "Throttled" }), h("option", { value: "failing", text: "Failing" }));
  const body = h("tbody");
  const area = h("div");
  const more = h("div", { class: "more" });
  show("Destinations", h("h1", { text: "Destinations" }),
    h("p", { class: "muted", text: "Each webhook URL of your steps is a destination with a pace and a health of its own." }),
    h("div", { class: "field", style: "max-width: 14rem; margin-bottom: .6rem" }, h("label", { for: "destination-status", text: "Status" }), filter),
    area, more);
  let cursor = null;
  const table = h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "sr-only", text: "Destinations" }),
    h("thead", {}, h("tr", {}, ["URL", "Status", "Pace", "In flight", "Waiting", "Last attempt", "Last error", "Failing since"]
      .map((t) => h("th", { scope: "col", text: t })))), body));
  const load = async () => {
    const q = "?limit=50" + (filter.value ? "&status=" + filter.value : "") + (cursor ? "&cursor=" + enc(cursor) : "");
    const r = await api("GET", "/v1/destinations" + q);
    if (r.status === 404) { area.replaceChildren(h("p", { class: "note", text: "No destinations yet." })); return; }
    if (!r.ok) { area.replaceChildren(alertBox(r.message)); return; }
    area.replaceChildren(table);
    for (const d of r.data.items) {
      body.append(h("tr", {},
        h("td", { class: "url", text: d.url }), h("td", {}, badge(d.status)),
        h("td", { text: d.pace === null ? "unpaced" : d.pace + "/s" + (d.rateLimit ? " (limit " + d.rateLimit + "/s)" : "") }),
        h("td", { text: num(d.inFlight) }), h("td", { text: num(d.waiting) }), h("td", { text: when(d.lastAttemptAt) }),
        h("td", { text: d.lastError || "—" }), h("td", { text: when(d.failingSince) })));
    }
    if (!body.children.length) area.replaceChildren(h("p", { class: "note", text: "No destinations yet." }));
    cursor = r.data.nextCursor;
    more.replaceChildren(cursor ? h("button", { type: "button", text: "More destinations", onclick: (e) => { e.target.disabled = true; load(); } }) : "");
  };
  await load();
}

async function placeholdersView() {
  markNav("#/placeholders");
  const data = await need("GET", "/v1/placeholders");
  show("Placeholders", h("h1", { text: "Placeholders" }),
    h("p", { class: "muted", text: "Use them in a webhook step's additional values, e.g. {{firstname}}." }),
    placeholdersTable(data.items));
}

route();
