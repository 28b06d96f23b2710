// Hotline company console: a single page over /api/v1 (docs/API.md). No framework, no build
// step: the file is embedded in the binary as written. The token lives in sessionStorage and
// goes in the Authorization header of every request (the live feed too: it is read with
// fetch, not EventSource, which cannot send headers).
"use strict";

const $ = (s) => document.querySelector(s);
const $$ = (s) => Array.from(document.querySelectorAll(s));
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_NAMES = ["一 Mon", "二 Tue", "三 Wed", "四 Thu", "五 Fri", "六 Sat", "日 Sun"];
const S = { token: sessionStorage.getItem("hotline-token") || "", company: null, view: null, feed: null };

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) e.append(k instanceof Node ? k : document.createTextNode(k ?? ""));
  return e;
}
const arr = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
const api = (c) => `/api/v1/companies/${encodeURIComponent(c || S.company)}`;

async function call(method, path, body, withEtag) {
  const headers = { Authorization: `Bearer ${S.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (withEtag && S.view) headers["If-Match"] = S.view.etag;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { message: text }; }
  if (!r.ok) throw Object.assign(new Error((data && data.message) || r.statusText), { status: r.status, data });
  return data;
}

function status(msg, err) {
  const s = $("#status");
  s.className = "status " + (err ? "err" : "ok");
  s.replaceChildren(msg);
  if (err && err.data && err.data.errors && err.data.errors.length) {
    s.append(el("ul", {}, err.data.errors.map((e) =>
      el("li", {}, `${e.path || "(request)"}: ${e.message}${e.hint ? " — " + e.hint : ""}`))));
  }
}

async function change(what, method, path, body) {
  try {
    const r = await call(method, path, body, true);
    status(`${what}: saved (config generation ${r.generation})`);
    await load();
    return true;
  } catch (e) {
    status(`${what}: ${e.message}`, e);
    if (e.status === 412) await load();
    return false;
  }
}

// ---- login ----
async function login() {
  const t = $("#token").value.trim() || S.token;
  if (!t) return;
  S.token = t;
  try {
    const me = await call("GET", "/api/v1/whoami");
    sessionStorage.setItem("hotline-token", t);
    $("#who").textContent = `${me.token} (${me.role})`;
    const list = await call("GET", "/api/v1/companies");
    const sel = $("#company");
    sel.replaceChildren(...list.map((c) => el("option", { value: c.id }, `${c.id} — ${c.name || ""}`)));
    sel.hidden = list.length < 2;
    S.company = me.company || (list[0] && list[0].id);
    sel.value = S.company;
    $("#login-view").hidden = true;
    $("#app").hidden = false;
    await load();
    startFeed();
  } catch (e) {
    sessionStorage.removeItem("hotline-token");
    $("#login-error").textContent = e.status === 429 ? e.message : `Sign-in failed: ${e.message}`;
  }
}

function logout() {
  sessionStorage.removeItem("hotline-token");
  location.reload();
}

// ---- the company view ----
async function load() {
  S.view = await call("GET", api());
  const v = S.view;
  $("#company-name").textContent = v.name || v.id;
  $("#numbers").textContent = Object.keys(v.numbers).join(" · ") + `  (file ${v.file}, generation ${v.generation})`;
  renderPhones();
  renderPlans();
  renderHours();
  renderLists();
}

function reachOf(t) {
  return t.number ? `${t.number} (via ${t.gateway})` : t.uri || "";
}

function plansWith(name) {
  const out = [];
  for (const [p, plan] of Object.entries(S.view.plans)) {
    for (const g of arr(plan.groups)) {
      if (arr(g.members).some((m) => (m.target || m) === name)) out.push(p);
    }
  }
  return [...new Set(out)];
}

function renderPhones() {
  const tb = $("#phones tbody");
  tb.replaceChildren(...Object.entries(S.view.targets).map(([name, t]) =>
    el("tr", { "data-target": name },
      el("td", {}, name), el("td", {}, reachOf(t)), el("td", {}, t.max_concurrent ?? "—"),
      el("td", {}, plansWith(name).join(", ")),
      el("td", {}, el("button", { class: "small danger", onclick: () => unbind(name) }, "解绑 Unbind")))));
  const plans = Object.keys(S.view.plans);
  const sel = $("#bind-plan");
  const keep = sel.value;
  sel.replaceChildren(...plans.map((p) => el("option", { value: p }, p)));
  if (plans.includes(keep)) sel.value = keep;
}

async function bindPhone(ev) {
  ev.preventDefault();
  const body = { name: $("#bind-name").value.trim(), phone: $("#bind-phone").value.trim(), plan: $("#bind-plan").value };
  const ring = $("#bind-ring").value.trim();
  if (ring) body.ring_timeout = ring;
  if (await change(`bind ${body.name}`, "POST", `${api()}/bind`, body)) {
    $("#bind-name").value = ""; $("#bind-phone").value = ""; $("#bind-ring").value = "";
  }
}

function unbind(name) {
  if (confirm(`Unbind ${name}? It leaves every hunt group of the company.`)) change(`unbind ${name}`, "DELETE", `${api()}/targets/${encodeURIComponent(name)}`);
}

// ---- hunt order (drag and drop) ----
function memberOf(m) {
  return typeof m === "string" ? { target: m } : { target: m.target, ring_timeout: m.ring_timeout, weight: m.weight };
}

function renderPlans() {
  const box = $("#plans");
  box.replaceChildren();
  for (const [pname, plan] of Object.entries(S.view.plans)) {
    const groups = arr(plan.groups).map((g) => ({ ...g, members: arr(g.members).map(memberOf) }));
    const div = el("div", { class: "plan", "data-plan": pname }, el("h3", {}, `Plan ${pname}`));
    groups.forEach((g, gi) => {
      const ul = el("ul", { class: "members" });
      g.members.forEach((m) => ul.append(memberRow(m)));
      enableDrag(ul);
      div.append(el("div", { class: "group", "data-group": gi },
        el("div", { class: "row" },
          el("strong", {}, `Group ${gi + 1}${g.name ? " · " + g.name : ""}`),
          el("label", {}, "Mode", sel(["sequential", "simultaneous"], g.mode || "sequential", "mode")),
          el("label", {}, "Distribution", sel(["linear", "round_robin", "random", "weighted", "least_recent", "fewest_calls"], g.strategy || "linear", "strategy")),
          el("label", {}, "Ring time", el("input", { value: g.ring_timeout || "", size: 5, "data-k": "ring_timeout", placeholder: "20s" }))),
        ul));
    });
    div.append(el("button", { onclick: () => saveGroups(div, groups) }, "保存顺序 Save order"));
    box.append(div);
  }
}

function sel(options, value, key) {
  const s = el("select", { "data-k": key }, options.map((o) => el("option", { value: o }, o)));
  s.value = value;
  return s;
}

function memberRow(m) {
  return el("li", { draggable: "true", "data-target": m.target, "data-weight": m.weight ?? "" },
    el("span", { class: "grip" }, "⠿"), el("span", { class: "name" }, m.target),
    el("span", { class: "muted" }, reachOf(S.view.targets[m.target] || {})),
    el("label", {}, "ring ", el("input", { value: m.ring_timeout || "", size: 4, placeholder: "group", class: "ring" })),
    el("button", { class: "small ghost", onclick: (e) => move(e, -1), type: "button" }, "↑"),
    el("button", { class: "small ghost", onclick: (e) => move(e, 1), type: "button" }, "↓"));
}

function move(e, d) {
  const li = e.target.closest("li");
  const sib = d < 0 ? li.previousElementSibling : li.nextElementSibling;
  if (sib) d < 0 ? sib.before(li) : sib.after(li);
}

function enableDrag(ul) {
  let dragged = null;
  ul.addEventListener("dragstart", (e) => { dragged = e.target.closest("li"); dragged.classList.add("drag"); });
  ul.addEventListener("dragend", () => { if (dragged) dragged.classList.remove("drag"); dragged = null; });
  ul.addEventListener("dragover", (e) => {
    e.preventDefault();
    const over = e.target.closest("li");
    if (!dragged || !over || over === dragged) return;
    const r = over.getBoundingClientRect();
    e.clientY < r.top + r.height / 2 ? over.before(dragged) : over.after(dragged);
  });
}

function saveGroups(div, groups) {
  const body = { groups: $$(`[data-plan="${div.dataset.plan}"] .group`).map((gd, gi) => {
    const g = { members: [] };
    if (groups[gi].name) g.name = groups[gi].name;
    for (const inp of gd.querySelectorAll(":scope > .row [data-k]")) if (inp.value) g[inp.dataset.k] = inp.value;
    for (const li of gd.querySelectorAll("li")) {
      const m = { target: li.dataset.target };
      const r = li.querySelector(".ring").value.trim();
      if (r) m.ring_timeout = r;
      if (li.dataset.weight) m.weight = Number(li.dataset.weight);
      g.members.push(m);
    }
    return g;
  }) };
  change(`hunt order of ${div.dataset.plan}`, "PUT", `${api()}/plans/${encodeURIComponent(div.dataset.plan)}/groups`, body);
}

// ---- office hours week grid ----
function editableNumbers() {
  return Object.keys(S.view.numbers).filter((n) => !S.view.read_only_numbers.includes(n));
}

function fillSelect(s, values, keep) {
  const k = keep ?? s.value;
  s.replaceChildren(...values.map((v) => el("option", { value: v }, v)));
  if (values.includes(k)) s.value = k;
}

function hourSpans(times) {
  const on = new Set();
  for (const t of arr(times)) {
    const [a, b] = t.split("-");
    const h0 = parseInt(a, 10), h1 = b === "24:00" ? 24 : parseInt(b, 10) + (b.endsWith(":00") ? 0 : 1);
    for (let h = h0; h < h1; h++) on.add(h);
  }
  return on;
}

function dayIndexes(w) {
  const out = new Set();
  for (const d of arr(w)) {
    const [a, b] = d.split("-").map((x) => DAYS.indexOf(x.slice(0, 3).toLowerCase()));
    if (b === undefined) out.add(a);
    else for (let i = a; ; i = (i + 1) % 7) { out.add(i); if (i === b) break; }
  }
  return out;
}

function renderHours() {
  fillSelect($("#hours-number"), editableNumbers());
  const num = S.view.numbers[$("#hours-number").value] || {};
  const plans = Object.keys(S.view.plans);
  const office = arr(num.rules).filter((r) => (r.name || "").startsWith("office-hours"));
  fillSelect($("#hours-plan"), plans, office[0] ? office[0].plan : undefined);
  fillSelect($("#hours-default"), plans, num.plan);
  const grid = DAYS.map(() => new Array(24).fill(false));
  for (const r of office) {
    const hours = hourSpans(r.time || "00:00-24:00");
    for (const d of (r.weekdays ? dayIndexes(r.weekdays) : [0, 1, 2, 3, 4, 5, 6])) for (const h of hours) grid[d][h] = true;
  }
  const t = $("#week");
  t.replaceChildren(el("tr", {}, el("th", {}, ""), [...Array(24).keys()].map((h) => el("th", {}, String(h).padStart(2, "0")))));
  let painting = null;
  DAYS.forEach((d, di) => {
    t.append(el("tr", {}, el("th", {}, DAY_NAMES[di]), grid[di].map((on, h) => {
      const td = el("td", { "data-day": d, "data-hour": h, class: on ? "on" : "" });
      td.addEventListener("mousedown", () => { painting = !td.classList.contains("on"); td.classList.toggle("on", painting); });
      td.addEventListener("mouseenter", () => { if (painting !== null) td.classList.toggle("on", painting); });
      return td;
    })));
  });
  document.addEventListener("mouseup", () => { painting = null; });
}

function saveHours() {
  const number = $("#hours-number").value;
  const num = S.view.numbers[number];
  const byDay = DAYS.map((d) => $$(`#week td[data-day="${d}"]`).filter((td) => td.classList.contains("on")).map((td) => Number(td.dataset.hour)));
  const spans = (hours) => {
    const out = [];
    for (let i = 0; i < hours.length; i++) {
      let j = i;
      while (j + 1 < hours.length && hours[j + 1] === hours[j] + 1) j++;
      out.push(`${String(hours[i]).padStart(2, "0")}:00-${String(hours[j] + 1).padStart(2, "0")}:00`);
      i = j;
    }
    return out;
  };
  const groups = new Map();
  byDay.forEach((hours, di) => {
    if (!hours.length) return;
    const key = spans(hours).join(",");
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(DAYS[di]);
  });
  const keep = arr(num.rules).filter((r) => !(r.name || "").startsWith("office-hours")).map(ruleBody);
  let i = 0;
  const office = [...groups.entries()].map(([times, days]) => ({ name: `office-hours-${++i}`, weekdays: days, time: times.split(","), plan: $("#hours-plan").value }));
  change(`office hours of ${number}`, "PUT", `${api()}/numbers/${number}/routing`, { plan: $("#hours-default").value, rules: keep.concat(office) });
}

function ruleBody(r) {
  const b = { plan: r.plan };
  if (r.name) b.name = r.name;
  for (const k of ["weekdays", "time", "dates", "region", "list", "key"]) if (r[k] !== undefined) b[k] = arr(r[k]);
  if (r.day !== undefined) b.day = r.day;
  if (r.vip !== undefined) b.vip = r.vip;
  return b;
}

// ---- lists ----
function listText(l) {
  if (!l) return "";
  return [...arr(l.numbers), ...arr(l.prefixes), ...arr(l.area_codes), ...arr(l.regions)].join("\n");
}

function listBody(text) {
  const b = { numbers: [], prefixes: [], area_codes: [], regions: [] };
  for (const raw of text.split(/\n|,/)) {
    const s = raw.trim().replace(/[\s-]/g, "");
    if (!s) continue;
    if (!/^\+?\d+$/.test(s)) b.regions.push(raw.trim());
    else if (/^0\d{2,3}$/.test(s)) b.area_codes.push(s);
    else if (s.replace("+", "").length < 11) b.prefixes.push(s);
    else b.numbers.push(s);
  }
  return b;
}

function vipList() {
  const found = Object.entries(S.view.lists).find(([, l]) => l.vip);
  return found ? found[0] : `${S.view.id}-vip`;
}

function renderLists() {
  fillSelect($("#lists-number"), editableNumbers());
  const num = S.view.numbers[$("#lists-number").value] || {};
  const sc = num.screening || {};
  $("#blacklist").value = listText(sc.blacklist);
  $("#whitelist").value = listText(sc.whitelist);
  $("#whitelist-only").checked = !!sc.whitelist_only;
  const vip = vipList();
  $("#vip-name").textContent = vip;
  $("#vip").value = listText(S.view.lists[vip]);
}

async function saveLists() {
  const number = $("#lists-number").value;
  const ok = await change(`lists of ${number}`, "PUT", `${api()}/numbers/${number}/screening`, {
    blacklist: listBody($("#blacklist").value), whitelist: listBody($("#whitelist").value), whitelist_only: $("#whitelist-only").checked });
  if (ok && $("#vip").value.trim()) {
    await change(`VIP list`, "PUT", `${api()}/lists/${vipList()}`, { vip: true, ...listBody($("#vip").value) });
  }
}

// ---- live calls (server-sent events over fetch) ----
async function startFeed() {
  if (S.feed) S.feed.abort();
  S.feed = new AbortController();
  const pill = $("#live-state");
  refreshRecent();
  try {
    const r = await fetch(`${api()}/events`, { headers: { Authorization: `Bearer ${S.token}`, Accept: "text/event-stream" }, signal: S.feed.signal });
    if (!r.ok) throw new Error(r.statusText);
    pill.textContent = "live"; pill.className = "pill live";
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i); buf = buf.slice(i + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
        if (data && block.includes("event: call")) onEvent(JSON.parse(data));
      }
    }
  } catch (e) {
    if (e.name === "AbortError") return;
  }
  pill.textContent = "reconnecting"; pill.className = "pill";
  setTimeout(startFeed, 2000);
}

function localTime(ts) {
  return new Date(ts).toLocaleTimeString("zh-CN", { hour12: false, timeZone: "Asia/Shanghai" });
}

function onEvent(ev) {
  const result = ev.kind === "ended" ? `${ev.disposition} (${ev.code})${ev.talk_seconds ? ", " + ev.talk_seconds.toFixed(1) + " s" : ""}` : "";
  $("#live tbody").prepend(el("tr", { class: ev.kind, "data-call": ev.call_id },
    el("td", {}, localTime(ev.at)), el("td", {}, ev.kind), el("td", {}, ev.caller), el("td", {}, ev.number), el("td", {}, ev.target), el("td", {}, result)));
  const rows = $$("#live tbody tr");
  if (rows.length > 200) rows.slice(200).forEach((r) => r.remove());
  if (ev.kind === "ended") setTimeout(() => { refreshRecent(); if (!$("#tab-charts").hidden) charts(); }, 400);
}

async function refreshRecent() {
  try {
    const r = await call("GET", `${api()}/calls?limit=50`);
    $("#recent tbody").replaceChildren(...r.calls.slice().reverse().map((c) => el("tr", {},
      el("td", {}, new Date(c.start).toLocaleString("zh-CN", { hour12: false, timeZone: "Asia/Shanghai" })),
      el("td", {}, c.caller), el("td", {}, [c.province, c.city].filter(Boolean).join(" ")), el("td", {}, c.number),
      el("td", {}, c.disposition), el("td", {}, c.target), el("td", {}, c.talk_seconds ? `${c.talk_seconds.toFixed(1)} s` : ""))));
  } catch (_) { /* shown by the next action */ }
}

// ---- charts ----
function bars(box, buckets) {
  const max = Math.max(1, ...buckets.map((b) => b.calls));
  box.replaceChildren(
    el("div", { class: "bars" }, buckets.map((b) => {
      const d = el("div", { style: `height:${(100 * b.calls) / max}%`, title: `${b.key}: ${b.calls} calls, ${b.answered} answered` });
      if (b.calls) d.append(el("span", {}, String(b.calls)));
      return d;
    })),
    el("div", { class: "axis" }, buckets.map((b) => el("span", {}, b.key))));
}

function hbars(box, buckets) {
  const max = Math.max(1, ...buckets.map((b) => b.calls));
  box.replaceChildren(...(buckets.length ? buckets.slice(0, 10).map((b) => el("div", { class: "hbar" },
    el("span", { class: "k" }, b.key), el("b", { style: `width:${(160 * b.calls) / max}px` }), `${b.calls} (${b.answered} answered)`)) : [el("p", { class: "muted" }, "no calls yet")]));
}

async function charts() {
  const s = await call("GET", `${api()}/stats`);
  $("#totals").textContent = `${s.calls} calls, ${s.answered} answered (ASR ${(100 * s.asr).toFixed(0)} %, ACD ${s.acd_seconds.toFixed(1)} s)`;
  bars($("#chart-hour"), s.by_hour);
  hbars($("#chart-region"), s.by_region);
  hbars($("#chart-number"), s.by_number);
}

// ---- wiring ----
function showTab(name) {
  for (const b of $$("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const t of $$(".tab")) t.hidden = t.id !== `tab-${name}`;
  if (name === "charts") charts().catch((e) => status(`charts: ${e.message}`, e));
  if (name === "live") refreshRecent();
}

$("#login").addEventListener("click", login);
$("#token").addEventListener("keydown", (e) => { if (e.key === "Enter") login(); });
$("#logout").addEventListener("click", logout);
$("#bind-form").addEventListener("submit", bindPhone);
$("#hours-save").addEventListener("click", saveHours);
$("#hours-number").addEventListener("change", renderHours);
$("#lists-save").addEventListener("click", saveLists);
$("#lists-number").addEventListener("change", renderLists);
$("#company").addEventListener("change", async (e) => { S.company = e.target.value; await load(); startFeed(); });
for (const b of $$("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
if (S.token) login();
