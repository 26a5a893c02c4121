"use strict";
// The Hookline console: plain DOM, no framework, no outside request. Every call goes to the
// HTTP API of this origin with the key pasted by the person, kept in sessionStorage (this tab
// only). Data is always set as text (textContent), never parsed as HTML.
(function () {
  const KEY = "hookline.key";
  const PAGE = 25; // deliveries per page
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  const live = document.getElementById("status");

  class Stop extends Error {}

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  const enc = encodeURIComponent;
  const key = () => sessionStorage.getItem(KEY);
  const say = (text) => { live.textContent = ""; setTimeout(() => { live.textContent = text; }, 30); };
  const when = (t) => (t ? new Date(t).toLocaleString() : "—");
  const num = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"));
  const badge = (s) => h("span", { class: "badge " + s, text: s });
  const alertBox = (text) => h("div", { class: "alert", role: "alert", text });

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + key() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let r;
    try {
      r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      return { status: 0, ok: false, data: null, message: "Hookline did not answer (" + e.message + ")" };
    }
    let data = null;
    try { data = await r.json(); } catch (_) { /* not JSON */ }
    if (r.status === 401) {
      sessionStorage.removeItem(KEY);
      keyForm("That key was refused (unknown or revoked). Paste another one.");
      throw new Stop();
    }
    const message = data && data.error ? data.error.message : "HTTP " + r.status;
    return { status: r.status, ok: r.ok, data, message };
  }
  async function need(method, path, body) {
    const r = await api(method, path, body);
    if (!r.ok) throw new Error(r.message);
    return r.data;
  }

  function show(title, ...content) {
    document.title = title + " · Hookline console";
    main.replaceChildren(...content);
    window.scrollTo(0, 0);
  }
  function markNav(which) {
    for (const a of nav.querySelectorAll("a")) {
      if (a.getAttribute("href") === which) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  function keyForm(problem) {
    nav.hidden = true;
    const input = h("input", { id: "api-key", name: "api-key", type: "password", autocomplete: "off",
      spellcheck: "false", required: true, "aria-describedby": "key-help", placeholder: "hk_…" });
    const form = h("form", { class: "card key-form", "aria-labelledby": "key-title",
      onsubmit: (e) => {
        e.preventDefault();
        const value = input.value.trim();
        if (!value) return;
        sessionStorage.setItem(KEY, value);
        route();
      } },
      h("h1", { id: "key-title", text: "Open the console" }),
      problem ? alertBox(problem) : null,
      h("div", { class: "field" },
        h("label", { for: "api-key", text: "API key" }),
        input,
        h("p", { id: "key-help", class: "muted", text: "The key of your account (hookline keys create). It is kept for this browser tab only and sent to this Hookline alone." })),
      h("div", { class: "row" }, h("button", { type: "submit", class: "primary", text: "Open" })));
    show("API key", form);
    input.focus();
  }

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

  // ---- routing -----------------------------------------------------------------------------
  async function route() {
    if (!key()) return keyForm();
    nav.hidden = false;
    const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    try {
      if (parts[0] === "scenarios" && parts[1] && parts[2] === "steps" && parts[3]) await stepView(parts[1], parts[3]);
      else if (parts[0] === "scenarios" && parts[1]) await scenarioView(parts[1]);
      else if (parts[0] === "destinations") await destinationsView();
      else if (parts[0] === "placeholders") await placeholdersView();
      else if (parts[0].startsWith("step-")) return; // an in-page anchor
      else await scenariosView();
      main.focus({ preventScroll: true });
    } catch (e) {
      if (e instanceof Stop) return;
      show("Problem", h("h1", { text: "Something went wrong" }), alertBox(e.message), h("p", {}, h("a", { href: "#/", text: "Back to the scenarios" })));
    }
  }
  document.getElementById("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.hash = "#/";
    keyForm();
  });
  window.addEventListener("hashchange", route);
  route();
})();
