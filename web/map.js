// The operations map. With no tile URL configured (offline) the basemap is drawn from the city's
// own layers: districts, airspace zones, docks and cameras, so the map is never blank.
import { t } from "./i18n.js";

const L = window.L;

const ZONE_STYLE = {
  prohibited: { color: "#ff4d4f", weight: 1.5, fillOpacity: 0.18, dashArray: "4 3" },
  approval: { color: "#faad14", weight: 1.5, fillOpacity: 0.08, dashArray: "6 4" },
  ceiling: { color: "#69b1ff", weight: 1, fillOpacity: 0.05 },
};
export const STATE_COLOR = {
  ready: "#52c41a", in_mission: "#1677ff", returning: "#13c2c2", offline: "#8c8c8c",
  charging: "#d4b106", docked: "#52c41a", maintenance: "#8c8c8c",
};
const SEV_COLOR = { 1: "#69b1ff", 2: "#faad14", 3: "#ff7a45", 4: "#ff4d4f" };
const TRACK_POINTS = 2000; // flown track kept per drone (enough for a long mission at 4 Hz thinning)
const ENDED = ["completed", "aborted", "failed"];

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

// Docks: the marker's colour says the door (and a fault); the tooltip says everything the dock reports.
const DOOR_COLOR = { closed: "#fadb14", opening: "#36cfc9", open: "#52c41a", closing: "#36cfc9", fault: "#ff4d4f" };
const DOCK_FRESH_MS = 15000; // as the service judges a dock: a state older than this is stale

const dockColor = (s) => (s ? (s.fault ? DOOR_COLOR.fault : DOOR_COLOR[s.door] || DOOR_COLOR.closed) : DOOR_COLOR.closed);

// Marker bodies are built as elements and coloured through the CSSOM: the page's Content-Security-Policy
// refuses style="" attributes in markup.
function iconBody(html, style) {
  const body = document.createElement("div");
  body.style.display = "contents"; // lays out as if its children sat directly in the marker
  body.innerHTML = html;
  style(body);
  return body;
}

function dockIcon(s) {
  const html = iconBody("<span>⌂</span>", (b) => { b.firstChild.style.color = dockColor(s); });
  return L.divIcon({ className: "dock-icon", html, iconSize: [18, 18] });
}

const num = (v, digits = 1) => (v == null ? "–" : Number(v).toFixed(digits));

function dockTip(d, lang) {
  const lines = [`<b>${esc(lang === "ko" ? d.name_ko : d.name_en)}</b>`];
  const s = d.state;
  if (!s) {
    lines.push(esc(t("dock.no_state")));
    return lines.join("<br>");
  }
  lines.push(`${esc(t("dock.door"))}: ${esc(t(`dock.door.${s.door}`))} · ${esc(t(s.drone_present ? "dock.drone" : "dock.empty"))}`);
  if (s.charge_pct != null) {
    let charge = `${esc(t(s.charging ? "dock.charging" : "dock.charge"))} ${num(s.charge_pct, 0)}%`;
    if (s.minutes_to_threshold > 0) charge += ` · ${esc(t("dock.ready_in", { min: Math.ceil(s.minutes_to_threshold) }))}`;
    else if (s.minutes_to_threshold === 0) charge += ` · ${esc(t("dock.ready"))}`;
    lines.push(charge);
  }
  if (s.fault) lines.push(`<span class="dock-fault">${esc(t("dock.fault"))}: ${esc(s.fault)}</span>`);
  const w = s.weather;
  lines.push(w
    ? esc(t("dock.weather", { wind: num(w.wind_mean_ms), gust: num(w.gust_ms), rain: num(w.rain_mm_h), temp: num(w.temperature_c) }))
    : esc(t("dock.weather_unknown")));
  const age = Date.now() - Date.parse(s.updated_at);
  if (age > DOCK_FRESH_MS) lines.push(`<span class="dock-fault">${esc(t("dock.stale", { s: Math.round(age / 1000) }))}</span>`);
  return lines.join("<br>");
}

export class OpsMap {
  constructor(el, { tileUrl, onIncidentClick, onDroneClick, onMapClick, onCameraClick } = {}) {
    this.map = L.map(el, { zoomControl: true, attributionControl: true }).setView([37.45, 126.6], 11);
    if (tileUrl) L.tileLayer(tileUrl, { maxZoom: 19 }).addTo(this.map);
    else el.classList.add("offline-basemap");
    const names = ["districts", "zones", "docks", "cameras", "routes", "tracks", "incidents", "drones"];
    this.layers = Object.fromEntries(names.map((n) => [n, L.layerGroup().addTo(this.map)]));
    this.control = null;
    this.drones = new Map();
    this.incidents = new Map();
    this.routes = new Map();
    this.tracks = new Map();
    this.selectedMission = null;
    this.onIncidentClick = onIncidentClick;
    this.onDroneClick = onDroneClick;
    this.onCameraClick = onCameraClick;
    this.fitted = false;
    if (onMapClick) this.map.on("click", (e) => onMapClick(e.latlng));
    this.relabel();
  }

  // Layer switcher, rebuilt when the language changes so its labels follow.
  relabel() {
    if (this.control) this.control.remove();
    const overlays = {};
    for (const [name, layer] of Object.entries(this.layers)) overlays[t(`layer.${name}`)] = layer;
    this.control = L.control.layers(null, overlays, { collapsed: true, position: "topright" }).addTo(this.map);
  }

  setDistricts(geojson, lang) {
    this.layers.districts.clearLayers();
    L.geoJSON(geojson, {
      style: (f) => f.properties.kind === "ifez_district"
        ? { color: "#3a4a6b", weight: 1.5, fillColor: "#1f2a44", fillOpacity: 0.85 }
        : { color: "#2b3550", weight: 0.8, fillColor: "#161d30", fillOpacity: 0.6 },
      onEachFeature: (f, l) => {
        const name = lang === "ko" ? f.properties.name_ko : f.properties.name_en;
        l.bindTooltip(name, { sticky: true, className: "tip" });
        if (f.properties.kind === "ifez_district") l.bindTooltip(name, { permanent: true, direction: "center", className: "district-label" });
      },
    }).addTo(this.layers.districts);
    if (geojson.attribution && !this.attributed) { this.map.attributionControl.addAttribution(geojson.attribution); this.attributed = true; }
    const ifez = geojson.features.filter((f) => f.properties.kind === "ifez_district");
    if (ifez.length) this.home = L.geoJSON({ type: "FeatureCollection", features: ifez }).getBounds();
    if (this.home && !this.fitted) { this.fitHome(); this.fitted = true; }
  }

  setZones(geojson, lang) {
    this.layers.zones.clearLayers();
    L.geoJSON(geojson, {
      style: (f) => ZONE_STYLE[f.properties.rule] || ZONE_STYLE.ceiling,
      onEachFeature: (f, l) => l.bindTooltip(`${esc(lang === "ko" ? f.properties.name_ko : f.properties.name_en)} · ${esc(f.properties.rule)}`),
    }).addTo(this.layers.zones);
  }

  setDocks(docks, lang) {
    this.dockLang = lang;
    // the same docks again (a language change): redraw in place, so an open popup stays the one open
    const same = this.docks && docks.length === this.docks.size && docks.every((d) => this.docks.has(d.id));
    if (!same) {
      this.layers.docks.clearLayers();
      this.docks = new Map();
    }
    for (const d of docks) {
      if (same) this.docks.get(d.id).dock = d;
      else this.docks.set(d.id, { dock: d, marker: L.marker([d.lat, d.lon], { icon: dockIcon(d.state), keyboard: false }).addTo(this.layers.docks) });
      this.drawDock(d.id);
    }
  }

  // A dock's live state (a "dock" event): door, drone, charge, fault and weather in its tooltip and popup.
  updateDock(s) {
    const entry = this.docks?.get(s.dock_id);
    if (!entry) return;
    entry.dock = { ...entry.dock, state: s };
    this.drawDock(s.dock_id);
  }

  drawDock(id) {
    const { dock, marker } = this.docks.get(id);
    // written when shown (so a dock gone silent reads as stale), and again while open as states arrive
    const content = () => dockTip(this.docks.get(id).dock, this.dockLang);
    if (!marker.getTooltip()) marker.bindTooltip(content, { className: "tip dock-tip" });
    else if (marker.isTooltipOpen()) marker.getTooltip().update();
    if (!marker.getPopup()) marker.bindPopup(content, { className: "dock-popup" });
    else if (marker.isPopupOpen()) marker.getPopup().update();
    const e = marker.getElement(); // the same element all along: an open popup or tooltip stays open
    if (e) {
      e.firstElementChild.style.color = dockColor(dock.state);
      e.dataset.dock = id;
      e.dataset.door = dock.state ? dock.state.door : "";
      e.dataset.fault = dock.state?.fault ?? "";
    }
  }

  setCameras(cameras, lang) {
    this.layers.cameras.clearLayers();
    for (const c of cameras) {
      // a camera with live video is drawn larger, ringed, and opens its player when clicked
      const live = Boolean(c.stream);
      const m = L.circleMarker([c.lat, c.lon], live
        ? { radius: 6, color: "#efdbff", weight: 2, fillColor: "#9254de", fillOpacity: 1, bubblingMouseEvents: false }
        : { radius: 3.5, color: "#b37feb", weight: 1, fillOpacity: 0.9 })
        .bindTooltip(`${esc(c.id)} · ${esc(lang === "ko" ? (c.name_ko || c.id) : (c.name_en || c.id))}`).addTo(this.layers.cameras);
      m.getElement()?.setAttribute("data-camera", c.id);
      if (this.onCameraClick && live) m.on("click", () => this.onCameraClick(c));
    }
  }

  upsertDrone(d) {
    if (!d.position) return;
    const ll = [d.position.lat, d.position.lon];
    const color = STATE_COLOR[d.state] || "#fff";
    const low = d.battery != null && d.battery < 25;
    const lost = !d.link.ok;
    const html = iconBody(`<div class="drone-glyph${lost ? " lost" : ""}">➤</div>`
      + `<span class="drone-label${low ? " low" : ""}">${esc(d.id)} · ${d.battery == null ? "–" : d.battery.toFixed(0) + "%"}${d.landed ? "" : ` · ${(d.position.alt ?? 0).toFixed(0)}m`}</span>`,
    (b) => { const g = b.firstChild; g.style.setProperty("--c", color); g.style.transform = `rotate(${(d.heading || 0) - 90}deg)`; });
    const icon = L.divIcon({ className: "drone-icon", html, iconSize: [20, 20], iconAnchor: [10, 10] });
    let m = this.drones.get(d.id);
    if (!m) {
      m = L.marker(ll, { icon, zIndexOffset: 1000, keyboard: false }).addTo(this.layers.drones);
      if (this.onDroneClick) m.on("click", () => this.onDroneClick(d.id));
      this.drones.set(d.id, m);
    } else {
      m.setLatLng(ll);
      m.setIcon(icon);
    }
    const e = m.getElement();
    if (e) { e.dataset.drone = d.id; e.dataset.state = d.state; e.dataset.lat = ll[0]; e.dataset.lon = ll[1]; }
    m.bindTooltip(`${esc(d.id)} · ${esc(t(`ds.${d.state}`))} · ${esc(d.mode || "–")}`);
    this.extendTrack(d, ll, color);
  }

  // Flown track: drawn while airborne, kept after landing until the next take-off.
  extendTrack(d, ll, color) {
    let track = this.tracks.get(d.id);
    if (d.landed) { if (track) track.flying = false; return; }
    if (!track || !track.flying) {
      if (track) this.layers.tracks.removeLayer(track.line);
      track = { line: L.polyline([], { color, weight: 2.5, opacity: 0.8 }).addTo(this.layers.tracks), flying: true };
      this.tracks.set(d.id, track);
    }
    const pts = track.line.getLatLngs();
    if (pts.length >= TRACK_POINTS) pts.shift();
    track.line.addLatLng(ll);
  }

  upsertIncident(i, { onClick } = {}) {
    const existing = this.incidents.get(i.id);
    if (i.status === "closed") { if (existing) { this.layers.incidents.removeLayer(existing); this.incidents.delete(i.id); } return; }
    const ll = [i.location.lat, i.location.lon];
    const icon = L.divIcon({
      className: "incident-icon",
      html: iconBody(`<div class="pulse${i.status === "open" ? "" : " calm"}"></div><span class="incident-label">#${i.id}</span>`,
        (b) => b.firstChild.style.setProperty("--c", SEV_COLOR[i.severity] || "#ff4d4f")),
      iconSize: [22, 22],
    });
    const tip = `#${i.id} · ${esc(t(`cat.${i.category}`))} · ${esc(t(`sev.${i.severity}`))}`;
    if (existing) { existing.setLatLng(ll); existing.setIcon(icon); existing.bindTooltip(tip); existing.getElement()?.setAttribute("data-incident", i.id); return; }
    const m = L.marker(ll, { icon, keyboard: false }).bindTooltip(tip).addTo(this.layers.incidents);
    m.on("click", () => this.onIncidentClick && this.onIncidentClick(i.id));
    m.getElement()?.setAttribute("data-incident", i.id);
    this.incidents.set(i.id, m);
  }

  // Planned route of a mission with its waypoints; the waypoint the vehicle heads for is marked.
  setRoute(mission) {
    const old = this.routes.get(mission.id);
    if (old) this.layers.routes.removeLayer(old);
    if (ENDED.includes(mission.state)) { this.routes.delete(mission.id); return; }
    const items = mission.items.filter((it) => it.lat || it.lon);
    const selected = this.selectedMission === mission.id;
    const group = L.layerGroup();
    L.polyline(items.map((it) => [it.lat, it.lon]), { color: selected ? "#ffd666" : "#91caff", weight: selected ? 3 : 2, dashArray: "6 6" }).addTo(group);
    const current = mission.progress?.seq;
    for (const it of items) {
      const isNext = it.seq === current;
      L.circleMarker([it.lat, it.lon], { radius: isNext ? 5 : 2.5, color: isNext ? "#ffd666" : "#91caff", weight: 1, fillOpacity: 1 })
        .bindTooltip(`${t("waypoint")} ${it.seq} · ${it.alt.toFixed(0)} m`).addTo(group);
    }
    group.addTo(this.layers.routes);
    this.routes.set(mission.id, group);
  }

  // The city's districts filling the view; called again whenever the map's box changes size.
  fitHome() {
    this.map.invalidateSize();
    if (this.home) this.map.fitBounds(this.home, { padding: [10, 10] });
  }

  selectMission(mission) {
    this.selectedMission = mission ? mission.id : null;
  }

  focus(lat, lon, zoom) { zoom ? this.map.setView([lat, lon], zoom) : this.map.panTo([lat, lon]); }
}
