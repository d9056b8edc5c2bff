// The start screen: one fetch of the phone's state per change, rendered
// into the DOM. Changes arrive as server-sent events.
"use strict";

const $ = (sel) => document.querySelector(sel);
let phone = null;      // selected phone's name
let state = null;      // its last state
let lastToastId = null; // newest toast seen, so only new ones pop a banner
let events = null;
let bannerTimer = null;
let tick = 0;

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "style") el.setAttribute("style", v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function q(path) {
  return path + (path.includes("?") ? "&" : "?") + "phone=" + encodeURIComponent(phone);
}

// The page's key arrives in the address's fragment (#key=…), which the
// browser never sends anywhere; it is taken out of the address bar at once
// so that it is not shown, shared or bookmarked. With it the server starts
// a session (a cookie it signed); without one the page says how to get it.
let key = null;
function takeKey() {
  const m = /^#key=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (!m) return false;
  key = m[1];
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}
takeKey();
// The address with the key pasted over the page's own changes only the
// fragment, which loads nothing: start the session, then load the page
// anew with it.
window.addEventListener("hashchange", async () => {
  if (!takeKey()) return;
  try {
    await session();
    location.reload();
  } catch {
    // showNoKey said why
  }
});

// The session token every change carries: the server hands it only to a
// page of its own origin, so another site's page cannot act through the
// browser.
let token = null;
let sessionReq = null; // one request for the token at a time, so two never race for the cookie
function session() {
  if (!sessionReq) {
    sessionReq = (async () => {
      const headers = key ? { "X-Herald-Key": key } : {};
      const resp = await fetch("/api/session", { credentials: "same-origin", headers });
      const data = await resp.json().catch(() => ({}));
      if (!resp.ok) {
        if (resp.status === 401) showNoKey(data.error);
        throw new Error(data.error || resp.statusText);
      }
      token = data.token;
    })().finally(() => { sessionReq = null; });
  }
  return sessionReq;
}

function showNoKey(msg) {
  $("#nokey-msg").textContent = msg || "This page needs its key.";
  $("#nokey").classList.remove("hidden");
  $("#live").textContent = "no session";
}

async function api(method, path, body, retried) {
  const headers = body ? { "Content-Type": "application/json" } : {};
  if (method !== "GET") {
    if (!token) await session();
    headers["X-Herald-Token"] = token;
  }
  const resp = await fetch(q(path), {
    method,
    headers,
    credentials: "same-origin",
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await resp.json().catch(() => ({}));
  if ((resp.status === 401 || resp.status === 403) && data.code === "session" && !retried) {
    token = null;
    await session();
    return api(method, path, body, true);
  }
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

// ---- device picker ----

let phones = [];
async function loadPhones() {
  phones = await api("GET", "/api/phones");
  renderPicker();
}

function renderPicker() {
  // The filter is for the emulator's many phones; one phone needs none.
  $("#phone-filter").classList.toggle("hidden", phones.length < 2);
  const f = $("#phone-filter").value.trim();
  const sel = $("#phone-picker");
  sel.replaceChildren();
  let shown = 0;
  for (const p of phones) {
    if (f && !p.name.includes(f) && p.name !== phone) continue;
    if (shown++ >= 500 && p.name !== phone) continue;
    sel.append(h("option", { value: p.name, selected: p.name === phone }, (p.name || "this phone") + (p.connected ? "" : " (offline)")));
  }
}

// selectPhone shows the named phone; initial is its state when the server
// inlined it into the page, painted at once without waiting for a fetch.
function selectPhone(name, initial) {
  if (name === phone) return;
  phone = name;
  state = null;
  lastToastId = null;
  if (initial) {
    state = normalize(initial);
    render(true);
  }
  const u = new URL(location.href);
  u.searchParams.set("phone", name);
  history.replaceState(null, "", u);
  if (events) events.close();
  events = new EventSource(q("/api/events"));
  events.onopen = () => { $("#live").textContent = "live"; refresh(); };
  events.onerror = () => { $("#live").textContent = "reconnecting…"; };
  events.onmessage = () => scheduleRefresh();
  if (!initial) refresh();
}

let refreshTimer = null;
function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 50);
}

// Lists the server leaves out arrive as null.
function normalize(s) {
  for (const k of ["channels", "tiles", "toasts", "running"]) s[k] = s[k] || [];
  s.raw = s.raw || {};
  s.counters = s.counters || {};
  return s;
}

async function refresh() {
  if (phone === null) return;
  const want = phone;
  let s;
  try {
    s = await api("GET", "/api/state");
  } catch (e) {
    $("#live").textContent = "error: " + e.message;
    return;
  }
  if (want !== phone) return;
  const first = state === null;
  state = normalize(s);
  render(first);
}

// ---- rendering ----

function render(first) {
  const s = state;
  document.body.dataset.phone = s.phone;
  $("#sb-link").textContent = s.offline ? "✈ offline" : s.connected ? "▮▮▮ connected" : "… connecting";
  $("#sb-link").dataset.connected = s.connected ? "1" : "0";
  $("#sb-power").textContent = "⚡ " + s.power;
  $("#sb-fg").textContent = s.foreground ? "▶ " + s.foreground : "";
  $("#power").value = s.power;
  const conn = $("#connectivity");
  conn.textContent = s.offline ? "Bring link back" : "Drop link";
  conn.dataset.offline = s.offline ? "1" : "0";
  $("#device-info").textContent = `device ${s.device_id || "(not enrolled)"} · running: ${(s.running || []).join(", ") || "none"}`;
  const hb = s.heartbeat || {};
  $("#heartbeat-info").textContent = `heartbeat ${hb.interval || "-"}${hb.probing ? " (probing)" : hb.settled ? "" : " (learning)"}${hb.ceiling ? ", ceiling " + hb.ceiling : ""} · next probe ${hb.next_probe ? new Date(hb.next_probe).toLocaleTimeString() : "-"} · ${hb.failed_probes_last_day || 0} failed in 24 h`;

  const apps = s.channels.map((c) => c.app);
  fillSelect($("#foreground"), [""].concat(apps), s.foreground, (a) => a || "(start screen)");
  for (const sel of document.querySelectorAll(".app-select")) fillSelect(sel, apps, sel.value || apps[0], (a) => a);

  renderChannels(s);
  renderTiles(s);
  renderToasts(s, first);
  renderRaw(s);
  const ct = $("#counters");
  ct.replaceChildren(...Object.entries(s.counters || {}).sort().map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v))));
}

function fillSelect(sel, values, current, label) {
  const same = sel.options.length === values.length && values.every((v, i) => sel.options[i].value === v);
  if (!same) sel.replaceChildren(...values.map((v) => h("option", { value: v }, label(v))));
  if (current !== undefined && values.includes(current)) sel.value = current;
}

function renderChannels(s) {
  const body = $("#channels tbody");
  body.replaceChildren(...s.channels.map((c) =>
    h("tr", { "data-app": c.app },
      h("td", {}, c.app),
      h("td", {}, c.toast ? "✓" : ""),
      h("td", { class: "bindings" }, c.tile ? "✓" + (c.domains && c.domains.length ? " " + c.domains.join(" ") : "") : ""),
      h("td", { class: "uri", title: c.uri }, h("span", { class: "uri-text" }, breakable(c.uri))),
      h("td", {}, h("button", { type: "button", onclick: (e) => copy(c.uri, e.target) }, "Copy")))));
}

// breakable splits a URI after its separators, so the browser may wrap it
// there and nowhere else: each part is kept whole (a token's "-" is no
// place to break it).
function breakable(uri) {
  const out = [];
  for (const part of uri.split(/(?<=[/?&=])/)) out.push(h("span", { class: "seg" }, part), h("wbr"));
  return out;
}

async function copy(text, btn) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = h("textarea", {}, text);
    document.body.append(ta);
    ta.select();
    document.execCommand("copy");
    ta.remove();
  }
  btn.textContent = "Copied";
  setTimeout(() => (btn.textContent = "Copy"), 1500);
}

const sizeKey = (t) => `herald.size|${state.phone}|${t.app}|${t.tile_id}`;
function tileSize(t) {
  const s = localStorage.getItem(sizeKey(t));
  if (s === "wide" && !t.template) return "medium"; // WP7 tiles have no wide size
  return s || "medium";
}

function image(t, field, cls) {
  const img = t.images && t.images[field];
  if (!img) return null;
  if (img.fetch) return h("img", { class: cls + " img", src: img.url, alt: "", "data-field": field });
  // Not fetched: a local app image the page does not have, or a domain
  // the tile is not bound to (MPNS refused those).
  return h("div", { class: cls + " ph" + (img.allowed ? "" : " blocked"), "data-field": field, title: img.url },
    img.allowed ? img.label : "blocked: " + img.url);
}

function count(t) {
  const n = parseInt(t.fields.Count || "0", 10);
  if (!n) return null; // 0 hides the badge
  return h("span", { class: "count" }, n > 99 ? "99" : String(n));
}

function renderTiles(s) {
  const wrap = $("#tiles");
  $("#empty").classList.toggle("hidden", s.tiles.length > 0);
  wrap.replaceChildren(...s.tiles.map(renderTile));
}

function renderTile(t) {
  const f = t.fields;
  const size = tileSize(t);
  const tmpl = t.template || "WP7";
  let front, back = null;
  if (t.template === "IconicTile") {
    const style = f.BackgroundColor ? "background:" + argb(f.BackgroundColor) : "";
    const icon = image(t, size === "small" && f.SmallIconImage ? "SmallIconImage" : "IconImage", "icon") ||
      h("div", { class: "icon ph" }, "icon");
    const c = count(t);
    const kids = [h("div", { class: "iconic" }, icon, c ? h("span", { class: "count-wrap" }, c) : null)];
    if (size === "wide") {
      kids.push(h("div", { class: "wide-content" },
        ["WideContent1", "WideContent2", "WideContent3"].filter((k) => f[k]).map((k) => h("div", { class: "line", "data-field": k }, f[k]))));
    }
    if (size !== "small" && f.Title) kids.push(h("span", { class: "title" }, f.Title));
    front = h("div", { class: "face front", style }, kids);
  } else if (t.template === "CycleTile") {
    let imgs = [];
    if (size === "small") {
      imgs = [image(t, "SmallBackgroundImage", "bg")];
    } else {
      for (let i = 1; i <= 9; i++) imgs.push(image(t, "CycleImage" + i, "bg cycle-image"));
    }
    imgs = imgs.filter(Boolean);
    const cur = imgs.length ? tick % imgs.length : 0;
    imgs.forEach((el, i) => el.classList.toggle("active", i === cur));
    front = h("div", { class: "face front" }, imgs, count(t), size !== "small" && f.Title ? h("span", { class: "title" }, f.Title) : null);
  } else {
    // WP7 tile and FlipTile: front and back, flipping when the back has content.
    const bgField = size === "small" && f.SmallBackgroundImage ? "SmallBackgroundImage" : size === "wide" && f.WideBackgroundImage ? "WideBackgroundImage" : "BackgroundImage";
    front = h("div", { class: "face front" }, image(t, bgField, "bg"), count(t),
      size !== "small" && f.Title ? h("span", { class: "title" }, f.Title) : null);
    const backContent = size === "wide" && f.WideBackContent ? f.WideBackContent : f.BackContent;
    const backBg = size === "wide" && f.WideBackBackgroundImage ? "WideBackBackgroundImage" : "BackBackgroundImage";
    if (size !== "small" && (backContent || f.BackTitle || f[backBg])) {
      back = h("div", { class: "face back" }, image(t, backBg, "bg"),
        backContent ? h("div", { class: "back-content" }, backContent) : null,
        f.BackTitle ? h("span", { class: "title back-title" }, f.BackTitle) : null);
    }
  }
  const flipped = back !== null && tick % 2 === 1;
  const el = h("div", {
    class: `tile size-${size}` + (flipped ? " flipped" : "") + (t.pinned ? "" : " unpinned"),
    "data-app": t.app, "data-tile-id": t.tile_id, "data-template": tmpl, "data-size": size,
    "data-has-back": back ? "1" : "0",
    title: `${t.app}${t.tile_id ? " " + t.tile_id : ""} · ${tmpl}${t.pinned ? "" : " · not pinned"}`,
  },
  h("div", { class: "flipper" }, front, back),
  // A primary tile is named by its app (its Title is the app's to set, and
  // may be empty), a secondary one by its tile id.
  h("span", { class: "tile-label" }, t.tile_id || t.app),
  h("button", { class: "size-btn", type: "button", title: "resize", onclick: () => cycleSize(t) }, "⤢"));
  return el;
}

function cycleSize(t) {
  const order = t.template ? ["small", "medium", "wide"] : ["small", "medium"];
  const next = order[(order.indexOf(tileSize(t)) + 1) % order.length];
  localStorage.setItem(sizeKey(t), next);
  renderTiles(state);
}

// #AARRGGBB or #RRGGBB → CSS.
function argb(v) {
  const m = /^#?([0-9a-f]{2})?([0-9a-f]{6})$/i.exec(v.trim());
  if (!m) return "";
  const a = m[1] ? parseInt(m[1], 16) / 255 : 1;
  const rgb = m[2];
  return `rgba(${parseInt(rgb.slice(0, 2), 16)},${parseInt(rgb.slice(2, 4), 16)},${parseInt(rgb.slice(4, 6), 16)},${a.toFixed(3)})`;
}

// Live tiles animate: front and back flip, cycle tiles move to the next image.
setInterval(() => {
  tick++;
  for (const el of document.querySelectorAll('.tile[data-has-back="1"]')) el.classList.toggle("flipped", tick % 2 === 1);
  for (const face of document.querySelectorAll('.tile[data-template="CycleTile"] .face')) {
    const imgs = face.querySelectorAll(".cycle-image");
    imgs.forEach((el, i) => el.classList.toggle("active", i === tick % imgs.length));
  }
}, 4000);

function renderToasts(s, first) {
  const list = $("#toasts");
  const toasts = s.toasts.slice().reverse();
  list.replaceChildren(...toasts.map((t) =>
    h("li", { "data-id": t.id },
      h("b", {}, t.text1), " ", t.text2,
      h("span", { class: "small" }, ` — ${t.app}, ${t.shown_by === "app" ? "taken by the app (foreground)" : "shown by the shell"}, `),
      times(t.sent_at, t.received_at),
      t.param ? h("code", {}, " " + t.param) : null)));
  const newest = toasts[0];
  // ?banner=last shows the newest toast's banner when the page opens, as
  // if it had just arrived: a screenshot of a freshly loaded page (headless
  // Chromium's --screenshot) can then show one.
  const replay = first && lastToastId === null && new URL(location.href).searchParams.get("banner") === "last";
  if (newest && (replay || (!first && (lastToastId === null || newest.id > lastToastId))) && newest.shown_by === "shell") showBanner(newest);
  if (newest) lastToastId = Math.max(lastToastId || 0, newest.id);
}

// times shows when a notification was sent (the service accepted the
// sender's POST) and when the phone got it.
function time(v) { return new Date(v).toLocaleTimeString(); }
function times(sent, delivered) {
  return h("span", { class: "small times" },
    sent ? h("span", { class: "sent", title: sent }, "sent " + time(sent) + " · ") : null,
    h("span", { class: "delivered", title: delivered }, "delivered " + time(delivered)));
}

function showBanner(t) {
  const b = $("#banner");
  b.querySelector(".text1").textContent = t.text1;
  b.querySelector(".text2").textContent = t.text2;
  b.dataset.app = t.app;
  b.dataset.param = t.param || "";
  b.classList.remove("hidden");
  clearTimeout(bannerTimer);
  // The shell showed a toast for about ten seconds.
  bannerTimer = setTimeout(() => b.classList.add("hidden"), 10000);
}

$("#banner").addEventListener("click", () => {
  const b = $("#banner");
  b.classList.add("hidden");
  const d = $("#deeplink");
  d.textContent = b.dataset.param
    ? `Tapped: opens ${b.dataset.app} at ${b.dataset.param}`
    : `Tapped: opens ${b.dataset.app} at its main page`;
  d.classList.remove("hidden");
  setTimeout(() => d.classList.add("hidden"), 6000);
});

const rawOutcome = {
  app: "taken by the running app",
  handler: "queued for its background handler",
  dropped: "dropped: app not running",
};

function renderRaw(s) {
  const apps = Object.keys(s.raw || {}).sort();
  $("#raw").replaceChildren(...(apps.length ? apps.map((a) =>
    h("div", { class: "raw-app", "data-app": a }, h("h4", {}, a),
      h("ol", { class: "history" }, s.raw[a].slice().reverse().map((r) =>
        h("li", { class: r.delivered ? "" : "dropped", "data-outcome": r.outcome, "data-message-id": r.message_id || "" },
          h("code", {}, r.body), " ",
          h("span", { class: "small outcome" }, rawOutcome[r.outcome] || r.outcome), " ",
          times(r.sent_at, r.at))))))
    : [h("p", { class: "small" }, "None yet. Raw notifications reach only a running app: pick it as the foreground app.")]));
}

// ---- controls ----

$("#phone-picker").addEventListener("change", (e) => selectPhone(e.target.value));
$("#phone-filter").addEventListener("input", renderPicker);
$("#power").addEventListener("change", (e) => api("POST", "/api/power", { level: e.target.value }).catch(alertErr));
$("#connectivity").addEventListener("click", (e) =>
  api("POST", "/api/connectivity", { online: e.target.dataset.offline === "1" }).then(refresh).catch(alertErr));
$("#foreground").addEventListener("change", (e) => api("POST", "/api/foreground", { app: e.target.value }).catch(alertErr));

$("#open-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = e.target;
  const domains = f.domains.value.split(/\s+/).filter(Boolean);
  api("POST", "/api/open", { app: f.app.value, toast: f.toast.checked, tile: f.tile.checked, domains }).then(refresh).catch(alertErr);
});
$("#pin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = e.target;
  api("POST", "/api/pin", { app: f.app.value, tile_id: f.tile_id.value }).then(refresh).catch(alertErr);
});

function alertErr(e) { $("#live").textContent = "error: " + e.message; }

// ---- compose ----

const templateFields = {
  "": ["BackgroundImage", "Count", "Title", "BackBackgroundImage", "BackTitle", "BackContent"],
  FlipTile: ["SmallBackgroundImage", "WideBackgroundImage", "WideBackBackgroundImage", "WideBackContent", "BackgroundImage", "Count", "Title", "BackBackgroundImage", "BackTitle", "BackContent"],
  IconicTile: ["SmallIconImage", "IconImage", "WideContent1", "WideContent2", "WideContent3", "Count", "Title", "BackgroundColor"],
  CycleTile: ["SmallBackgroundImage", "CycleImage1", "CycleImage2", "CycleImage3", "CycleImage4", "CycleImage5", "CycleImage6", "CycleImage7", "CycleImage8", "CycleImage9", "Count", "Title"],
};

function renderTileFields() {
  const tmpl = $("#compose-template").value;
  $("#tile-fields").replaceChildren(...templateFields[tmpl].map((n) =>
    h("label", {}, h("span", {}, n), h("input", { "data-field": n, name: "f_" + n }))));
}
$("#compose-template").addEventListener("change", renderTileFields);
$("#compose-kind").addEventListener("change", (e) => {
  for (const el of document.querySelectorAll("#compose .kind")) el.classList.toggle("hidden", !el.classList.contains("kind-" + e.target.value));
});
renderTileFields();

$("#compose").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  const req = { app: f.app.value, kind: f.kind.value, delay: parseInt(f.delay.value, 10) };
  if (req.kind === "toast") Object.assign(req, { text1: f.text1.value, text2: f.text2.value, param: f.param.value });
  if (req.kind === "tile") {
    req.template = f.template.value;
    req.tile_id = f.tile_id.value;
    req.fields = {};
    for (const inp of document.querySelectorAll("#tile-fields input")) if (inp.value) req.fields[inp.dataset.field] = inp.value;
  }
  if (req.kind === "raw") req.body = f.body.value;
  const out = $("#compose-result");
  out.classList.remove("hidden");
  $("#result-status").textContent = "sending…";
  try {
    const r = await api("POST", "/api/compose", req);
    $("#result-status").textContent = r.error && !r.status ? "failed" : String(r.status);
    $("#result-notification").textContent = r.headers["X-Notificationstatus"] || "";
    $("#result-device").textContent = r.headers["X-Deviceconnectionstatus"] || "";
    $("#result-subscription").textContent = r.headers["X-Subscriptionstatus"] || "";
    $("#result-headers").replaceChildren(...Object.entries(r.headers).sort().map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v))));
    $("#result-body").textContent = `POST ${r.uri}\n` + Object.entries(r.request_headers).sort().map(([k, v]) => `${k}: ${v}`).join("\n") +
      "\n\n" + r.payload + (r.body ? "\n\n← " + r.body : "") + (r.error ? "\n\nerror: " + r.error : "");
  } catch (err) {
    $("#result-status").textContent = "error: " + err.message;
    $("#result-notification").textContent = "";
  }
});

// ---- start ----

// The server inlines the phones and the phone's state into the page, so the
// first paint shows the phone as it is; without them the page asks.
(async function start() {
  const ready = session(); // before any read: every read needs the session's cookie
  const inlined = document.getElementById("initial-state");
  if (inlined) {
    ready.catch(() => {}); // api() asks again if it failed
    const init = JSON.parse(inlined.textContent);
    phones = init.phones;
    selectPhone(init.phone, init.state);
    renderPicker();
    return;
  }
  try {
    await ready;
  } catch {
    return; // showNoKey said why
  }
  await loadPhones();
  const params = new URL(location.href).searchParams;
  const want = params.has("phone") ? params.get("phone") : params.get("device");
  const names = phones.map((p) => p.name);
  selectPhone(want !== null && names.includes(want) ? want : names[0]);
  renderPicker();
})();
