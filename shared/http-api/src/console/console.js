"use strict";
// The Hookline console: plain DOM, no framework, no outside request. Every call goes to the
// HTTP API of this origin with the key pasted by the person, kept in sessionStorage (this tab
// only). Data is always set as text (textContent), never parsed as HTML.
//
// Three files, one script (console.rs puts them in the page in this order): this one (helpers,
// the API, the key form, the routes), scenarios.js (the list, a scenario drawn), step.js (a
// webhook step, destinations, placeholders). The last line of step.js starts the page.
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
