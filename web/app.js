// Operations view: incident queue, live map, missions with the pilot's controls.
import { api, connectEvents, login, session } from "./api.js";
import { getLang, setLang, t } from "./i18n.js";
import { OpsMap } from "./map.js";

const $ = (sel) => document.querySelector(sel);
const state = { drones: new Map(), incidents: new Map(), missions: new Map(), recs: new Map(), cameras: [], docks: [] };
let opsMap = null;
let stopEvents = null;

const can = {
  dispatch: () => ["operator", "admin"].includes(session.role),
  command: () => ["pilot", "admin"].includes(session.role),
};

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c.nodeType ? c : String(c));
  return e;
}

function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  const txt = s < 60 ? `${s.toFixed(0)}s` : s < 3600 ? `${(s / 60).toFixed(0)}m` : `${(s / 3600).toFixed(1)}h`;
  return `${txt} ${t("ago")}`;
}

function alert(level, message) {
  const box = el("div", { class: `alert ${level}`, role: "alert" }, message, el("button", { class: "ghost", onclick: (e) => e.target.parentElement.remove() }, "×"));
  $("#alerts").prepend(box);
  if (level === "info") setTimeout(() => box.remove(), 6000);
  while ($("#alerts").children.length > 5) $("#alerts").lastChild.remove();
}

// --- incidents ------------------------------------------------------------------------------
async function loadRecommendation(id) {
  try {
    const view = await api(`/incidents/${id}`);
    state.recs.set(id, view.recommendation || []);
  } catch { state.recs.set(id, []); }
  renderIncidents();
}

function renderIncidents() {
  const list = [...state.incidents.values()].filter((i) => i.status !== "closed")
    .sort((a, b) => b.severity - a.severity || Date.parse(a.created_at) - Date.parse(b.created_at));
  $("#queue-count").textContent = list.length;
  const ol = $("#incidents");
  ol.replaceChildren(...list.map((i) => {
    const rec = (state.recs.get(i.id) || []).find((c) => c.eligible);
    const mission = [...state.missions.values()].find((m) => m.incident_id === i.id);
    const recLine = i.status === "open"
      ? (rec ? el("div", { class: "rec" }, `${t("recommended")}: `, el("b", {}, rec.drone_id), ` · ${t("eta")} ${(rec.eta_s / 60).toFixed(1)} ${t("min")}`,
          el("div", { class: "muted small" }, getLang() === "ko" ? rec.reason.ko : rec.reason.en))
        : state.recs.has(i.id) ? el("div", { class: "rec muted" }, t("no.drone")) : null)
      : mission ? el("div", { class: "rec" }, `${mission.drone_id} · `, el("span", { class: `state st-${mission.state}` }, t(`st.${mission.state}`))) : null;
    const buttons = el("div", { class: "actions" },
      can.dispatch() && i.status === "open" ? el("button", { class: "primary", dataset: { action: "dispatch" }, onclick: () => dispatch(i.id) }, t("dispatch")) : null,
      can.dispatch() ? el("button", { class: "ghost", dataset: { action: "close" }, onclick: () => closeIncident(i.id) }, t("close")) : null);
    return el("li", { class: `card sev-${i.severity}`, dataset: { incident: i.id, status: i.status }, onclick: (e) => { if (e.target.tagName !== "BUTTON") opsMap.focus(i.location.lat, i.location.lon); } },
      el("div", { class: "card-head" }, el("span", { class: "cat" }, t(`cat.${i.category}`)), el("span", { class: "sev" }, t(`sev.${i.severity}`)), el("span", { class: "muted small" }, `#${i.id} · ${ago(i.created_at)}`)),
      el("div", { class: "desc" }, i.description || ""),
      el("div", { class: "muted small" }, `${i.source}${i.camera_id ? " · " + i.camera_id : ""}${i.report_count > 1 ? " · ×" + i.report_count : ""}`),
      recLine, buttons);
  }));
}

async function dispatch(id) {
  try {
    const m = await api(`/incidents/${id}/dispatch`, { method: "POST", body: {} });
    state.missions.set(m.id, m);
    renderMissions();
  } catch (e) { alert("warning", `${t("dispatch")} #${id}: ${e.message}`); }
}

async function closeIncident(id) {
  const outcome = prompt(t("close.prompt"), "resolved");
  if (outcome === null) return;
  try { await api(`/incidents/${id}/close`, { method: "POST", body: { outcome } }); }
  catch (e) { alert("warning", e.message); }
}

// --- missions and drones --------------------------------------------------------------------
function renderMissions() {
  const active = [...state.missions.values()].filter((m) => !["completed", "aborted", "failed"].includes(m.state))
    .sort((a, b) => b.id - a.id);
  const recent = [...state.missions.values()].filter((m) => ["completed", "aborted", "failed"].includes(m.state))
    .sort((a, b) => b.id - a.id).slice(0, 3);
  $("#missions").replaceChildren(...[...active, ...recent].map((m) => {
    const d = state.drones.get(m.drone_id);
    const tele = d ? el("div", { class: "tele" },
      el("span", {}, `${t("battery")} ${d.battery == null ? "–" : d.battery.toFixed(0) + "%"}`),
      el("span", {}, `${t("alt")} ${d.position?.alt == null ? "–" : d.position.alt.toFixed(0) + " m"}`),
      el("span", {}, `${t("speed")} ${d.groundspeed == null ? "–" : d.groundspeed.toFixed(1) + " m/s"}`),
      el("span", {}, `${t("mode")} ${d.mode || "–"}`),
      el("span", { class: d.link.ok ? "" : "bad" }, `${t("link")} ${d.link.ok ? "OK" : "LOST"}`)) : null;
    const live = !["completed", "aborted", "failed"].includes(m.state);
    const controls = can.command() && live ? el("div", { class: "actions" },
      ...["pause", "resume", "rtl", "land", "abort"].map((c) => el("button", { class: c === "abort" ? "danger" : "ghost", dataset: { command: c }, onclick: () => command(m, c) }, t(c)))) : null;
    return el("li", { class: "card mission", dataset: { mission: m.id, state: m.state } },
      el("div", { class: "card-head" }, el("b", {}, `${m.drone_id}`), el("span", { class: `state st-${m.state}` }, t(`st.${m.state}`)), el("span", { class: "muted small" }, `#${m.id} → ${m.incident_id}`)),
      m.reason ? el("div", { class: "muted small" }, m.reason) : null, tele, controls);
  }));
}

async function command(m, c) {
  if (!confirm(t("confirm.command", { cmd: t(c), drone: m.drone_id }))) return;
  try { state.missions.set(m.id, await api(`/missions/${m.id}/commands`, { method: "POST", body: { command: c } })); renderMissions(); }
  catch (e) { alert("warning", `${t(c)}: ${e.message}`); }
}

function renderDrones() {
  const rows = [...state.drones.values()].sort((a, b) => a.sysid - b.sysid).map((d) =>
    el("tr", { dataset: { drone: d.id, state: d.state } },
      el("td", {}, el("span", { class: `dot ds-${d.state}` }), d.id),
      el("td", {}, t(`ds.${d.state}`)),
      el("td", { class: "num" }, d.battery == null ? "–" : `${d.battery.toFixed(0)}%`),
      el("td", { class: "num" }, d.position?.alt == null ? "–" : `${d.position.alt.toFixed(0)} m`)));
  $("#drones tbody").replaceChildren(...rows);
}

// --- events ---------------------------------------------------------------------------------
let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; renderMissions(); renderDrones(); });
}

function onEvent(msg) {
  switch (msg.type) {
    case "snapshot":
      state.drones.clear(); state.incidents.clear(); state.missions.clear();
      for (const d of msg.data.drones) { state.drones.set(d.id, d); opsMap.upsertDrone(d); }
      for (const i of msg.data.incidents) { state.incidents.set(i.id, i); opsMap.upsertIncident(i); if (i.status === "open") loadRecommendation(i.id); }
      for (const m of msg.data.missions) { state.missions.set(m.id, m); opsMap.setRoute(m); }
      renderIncidents(); scheduleRender();
      break;
    case "drone":
      state.drones.set(msg.data.id, msg.data); opsMap.upsertDrone(msg.data); scheduleRender();
      break;
    case "incident": {
      const isNew = !state.incidents.has(msg.data.id);
      state.incidents.set(msg.data.id, msg.data); opsMap.upsertIncident(msg.data);
      if (msg.data.status === "open") loadRecommendation(msg.data.id); else renderIncidents();
      if (isNew) alert("info", `${t(`cat.${msg.data.category}`)} #${msg.data.id}`);
      break;
    }
    case "mission":
      state.missions.set(msg.data.id, msg.data); opsMap.setRoute(msg.data); renderIncidents(); scheduleRender();
      break;
    case "alert":
      alert(msg.data.level, msg.data.message);
      break;
    case "auth_failed":
      logout();
      break;
  }
}

// --- start ----------------------------------------------------------------------------------
async function start() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#who").textContent = `${session.user} (${session.role})`;
  const config = await fetch("/api/v1/view-config").then((r) => r.json());
  $("#city").textContent = config.city.toUpperCase();
  opsMap = opsMap || new OpsMap($("#map"), { tileUrl: config.tile_url });
  const [districts, zones, docks, cameras] = await Promise.all([api("/districts"), api("/airspace"), api("/docks"), api("/cameras")]);
  Object.assign(state, { docks, cameras, districts, zones });
  drawStatic();
  stopEvents = connectEvents(onEvent, (s) => { $("#conn").dataset.state = s; $("#conn").textContent = t(`conn.${s}`); });
}

function drawStatic() {
  const lang = getLang();
  opsMap.setDistricts(state.districts, lang);
  opsMap.setZones(state.zones, lang);
  opsMap.setDocks(state.docks, lang);
  opsMap.setCameras(state.cameras, lang);
}

function logout() {
  stopEvents && stopEvents();
  session.clear();
  location.reload();
}

function showLogin() {
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#login-form").onsubmit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try { await login(f.get("username"), f.get("password")); await start(); }
    catch (err) { $("#login-error").textContent = `${t("login.failed")}: ${err.message}`; }
  };
}

setLang(getLang());
$("#lang").textContent = getLang() === "ko" ? "EN" : "한";
$("#lang").onclick = () => {
  setLang(getLang() === "ko" ? "en" : "ko");
  $("#lang").textContent = getLang() === "ko" ? "EN" : "한";
  renderIncidents(); renderMissions(); renderDrones();
  if (opsMap && state.districts) drawStatic();
};
$("#logout").onclick = logout;
setInterval(() => { $("#clock").textContent = new Date().toLocaleTimeString(getLang() === "ko" ? "ko-KR" : "en-GB", { hour12: false }); }, 1000);
setInterval(renderIncidents, 30000);

if (session.token) start().catch(() => { session.clear(); showLogin(); });
else showLogin();
