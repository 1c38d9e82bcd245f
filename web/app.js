// Operations view: wires the live event stream to the map, the incident queue, the pilot's
// mission panel, the alerts, the video wall and the tester/admin pages.
import { Alerts, connectionBanner } from "./alerts.js";
import { api, connectEvents, login, logout as signOut, serverFeatures, session } from "./api.js";
import { openCameraPopup } from "./cctv.js";
import { getLang, setLang, t } from "./i18n.js";
import { IncidentQueue } from "./incidents.js";
import { OpsMap } from "./map.js";
import { MissionPanel, renderDrones } from "./missions.js";
import { renderAdmin, renderTester } from "./pages.js";
import { StatsPage } from "./stats.js";
import { $, toast } from "./ui.js";
import { VideoWall } from "./video.js";

const state = { drones: new Map(), incidents: new Map(), missions: new Map(), cameras: [], docks: [] };
const can = {
  dispatch: () => ["operator", "admin"].includes(session.role),
  command: () => ["pilot", "admin"].includes(session.role),
};
let opsMap = null, queue = null, panel = null, wall = null, alerts = null, stopEvents = null;
let stats = null;
let features = { snapshot: false, video: false, scenarios: false, admin: false };
let page = "ops";

const activeMissionOf = (droneId) =>
  [...state.missions.values()].find((m) => m.drone_id === droneId && !["completed", "aborted", "failed"].includes(m.state));

// --- rendering, batched to one per animation frame ------------------------------------------
const dirty = new Set();
function mark(...what) {
  const first = dirty.size === 0;
  for (const w of what) dirty.add(w);
  if (first) requestAnimationFrame(flush);
}
function flush() {
  const d = new Set(dirty);
  dirty.clear();
  if (d.has("incidents")) queue.render();
  if (d.has("missions")) panel.render();
  if (d.has("drones")) { renderDrones(state, focusDrone); if (page === "video") wall.render(); }
}

function focusDrone(id) {
  const d = state.drones.get(id);
  if (d?.position) { opsMap.focus(d.position.lat, d.position.lon); }
  const m = activeMissionOf(id);
  if (m) selectMission(m);
}

function selectMission(m) {
  const prev = opsMap.selectedMission;
  opsMap.selectMission(m);
  for (const id of [prev, m.id]) { const x = state.missions.get(id); if (x) opsMap.setRoute(x); }
  panel.selected = m.id;
  mark("missions");
  const d = state.drones.get(m.drone_id);
  if (d?.position) opsMap.focus(d.position.lat, d.position.lon, Math.max(opsMap.map.getZoom(), 15));
}

// --- events ---------------------------------------------------------------------------------
function onEvent(msg) {
  switch (msg.type) {
    case "snapshot": {
      state.drones.clear(); state.incidents.clear(); state.missions.clear();
      for (const d of msg.data.drones) { state.drones.set(d.id, d); opsMap.upsertDrone(d); }
      for (const i of msg.data.incidents) { state.incidents.set(i.id, i); opsMap.upsertIncident(i); if (i.status === "open") queue.refresh(i.id); }
      for (const m of msg.data.missions) { state.missions.set(m.id, m); opsMap.setRoute(m); }
      queue.refreshPlan();
      mark("incidents", "missions", "drones");
      // docks may have changed while the stream was down, and the snapshot carries none: read them again
      if (state.docks.length) {
        api("/docks").then((docks) => { for (const d of docks) if (d.state) onEvent({ type: "dock", data: d.state }); }).catch(() => {});
      }
      break;
    }
    case "drone": {
      const before = state.drones.get(msg.data.id);
      state.drones.set(msg.data.id, msg.data);
      if (before && before.state !== msg.data.state) queue.refreshPlan(); // a drone freed or taken
      opsMap.upsertDrone(msg.data);
      alerts.watchDrone(msg.data, activeMissionOf);
      mark("drones", "missions");
      break;
    }
    case "incident": {
      const i = msg.data;
      const isNew = !state.incidents.has(i.id);
      state.incidents.set(i.id, i);
      opsMap.upsertIncident(i);
      if (i.status === "open") queue.refresh(i.id);
      else queue.forget(i.id);
      // other open incidents' recommendations change when a drone is taken
      if (i.status === "dispatched") for (const o of state.incidents.values()) if (o.status === "open") queue.refresh(o.id);
      queue.refreshPlan();
      if (isNew) toast(t("new.incident", { id: i.id, cat: t(`cat.${i.category}`) }), i.severity >= 4 ? "warning" : "info");
      mark("incidents");
      break;
    }
    case "dock": {
      const d = state.docks.find((x) => x.id === msg.data.dock_id);
      if (d) d.state = msg.data; // kept for a redraw (language change)
      opsMap.updateDock(msg.data);
      break;
    }
    case "mission":
      state.missions.set(msg.data.id, msg.data);
      opsMap.setRoute(msg.data);
      mark("incidents", "missions");
      break;
    case "alert":
      alerts.raise(msg.data);
      break;
    case "auth_failed":
      logout();
      break;
  }
}

// --- pages ----------------------------------------------------------------------------------
function showPage(next) {
  page = next;
  for (const b of document.querySelectorAll("[data-page]")) b.classList.toggle("active", b.dataset.page === next);
  for (const p of document.querySelectorAll(".page")) p.hidden = p.id !== `page-${next}`;
  wall.setVisible(next === "video");
  if (next === "ops") opsMap.map.invalidateSize();
  if (next === "ops" && !opsMap.shown) { opsMap.fitHome(); opsMap.shown = true; }
  if (next === "tester") renderTester(features);
  if (next === "admin") renderAdmin(state);
  if (next === "stats") stats.show();
}

// --- start ----------------------------------------------------------------------------------
async function start() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#who").textContent = `${session.user} · ${t(`role.${session.role}`)}`;
  const [config, feats] = await Promise.all([fetch("/api/v1/view-config").then((r) => r.json()), serverFeatures()]);
  features = feats;
  $("#city").textContent = String(config.city || "").toUpperCase();
  for (const b of document.querySelectorAll("[data-page]")) {
    const roles = (b.dataset.roles || "").split(",").filter(Boolean);
    b.hidden = roles.length > 0 && !roles.includes(session.role);
    b.onclick = () => showPage(b.dataset.page);
  }
  const templates = await api("/mission-templates");
  opsMap = opsMap || new OpsMap($("#map"), {
    tileUrl: config.tile_url,
    onIncidentClick: (id) => queue.select(id),
    onDroneClick: focusDrone,
    onMapClick: (ll) => { if (panel.picking !== null) panel.mapClicked(ll); },
    onCameraClick: (c) => openCameraPopup(opsMap.map, c, { supported: features.cameraVideo }),
  });
  queue = new IncidentQueue({
    state, can, templates, features,
    onSelect: (i) => opsMap.focus(i.location.lat, i.location.lon),
    onDispatched: (m) => { opsMap.setRoute(m); selectMission(m); mark("incidents", "missions"); },
  });
  panel = new MissionPanel({ state, can, features, onSelect: selectMission });
  wall = new VideoWall({ state, features });
  alerts = new Alerts($("#alerts"), { onFocus: (a) => { showPage("ops"); if (a.drone_id) focusDrone(a.drone_id); } });
  const [districts, zones, docks, cameras] = await Promise.all([api("/districts"), api("/airspace"), api("/docks"), api("/cameras")]);
  Object.assign(state, { docks, cameras, districts, zones });
  stats = new StatsPage({ root: $("#stats-body"), state, opsMap, onShowMap: () => showPage("ops") });
  drawStatic();
  showPage("ops");
  stopEvents = connectEvents(onEvent, (s) => {
    $("#conn").dataset.state = s;
    $("#conn").textContent = t(`conn.${s}`);
    connectionBanner(s);
  });
}

function drawStatic() {
  const lang = getLang();
  opsMap.setDistricts(state.districts, lang);
  opsMap.setZones(state.zones, lang);
  opsMap.setDocks(state.docks, lang);
  opsMap.setCameras(state.cameras, lang);
}

function logout() {
  if (stopEvents) stopEvents();
  signOut().finally(() => location.reload()); // the server revokes the session's tokens first
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

function applyLang(next) {
  setLang(next);
  $("#lang").textContent = next === "ko" ? "EN" : "한국어";
  if (!opsMap) return;
  $("#who").textContent = `${session.user} · ${t(`role.${session.role}`)}`;
  opsMap.relabel();
  drawStatic();
  for (const d of state.drones.values()) opsMap.upsertDrone(d);
  for (const i of state.incidents.values()) opsMap.upsertIncident(i);
  alerts.relabel();
  mark("incidents", "missions", "drones");
  if (page === "tester") renderTester(features);
  if (page === "admin") renderAdmin(state);
  if (page === "stats") stats.show();
}

applyLang(getLang());
$("#lang").onclick = () => applyLang(getLang() === "ko" ? "en" : "ko");
$("#logout").onclick = logout;
const tick = () => { $("#clock").textContent = new Date().toLocaleTimeString(getLang() === "ko" ? "ko-KR" : "en-GB", { hour12: false }); };
tick();
setInterval(tick, 1000);
setInterval(() => { if (queue) mark("incidents"); }, 15000); // ages on the cards

if (session.token) start().catch(() => { session.clear(); showLogin(); });
else showLogin();

