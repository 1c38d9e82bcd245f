// The operations map. With no tile URL configured (offline) the basemap is drawn from the city's
// own layers: districts, airspace zones, docks and cameras, so the map is never blank.
const L = window.L;

const ZONE_STYLE = {
  prohibited: { color: "#ff4d4f", weight: 1.5, fillOpacity: 0.18, dashArray: "4 3" },
  approval: { color: "#faad14", weight: 1.5, fillOpacity: 0.08, dashArray: "6 4" },
  ceiling: { color: "#69b1ff", weight: 1, fillOpacity: 0.05 },
};
const STATE_COLOR = {
  ready: "#52c41a", in_mission: "#1677ff", returning: "#13c2c2", offline: "#8c8c8c",
  charging: "#d4b106", docked: "#52c41a", maintenance: "#8c8c8c",
};
const SEV_COLOR = { 1: "#69b1ff", 2: "#faad14", 3: "#ff7a45", 4: "#ff4d4f" };

export class OpsMap {
  constructor(el, { tileUrl, onMapClick } = {}) {
    this.map = L.map(el, { zoomControl: true, attributionControl: true, preferCanvas: false })
      .setView([37.45, 126.6], 11);
    if (tileUrl) L.tileLayer(tileUrl, { maxZoom: 19 }).addTo(this.map);
    else el.classList.add("offline-basemap");
    this.layers = {
      districts: L.layerGroup().addTo(this.map), zones: L.layerGroup().addTo(this.map),
      docks: L.layerGroup().addTo(this.map), cameras: L.layerGroup().addTo(this.map),
      routes: L.layerGroup().addTo(this.map), incidents: L.layerGroup().addTo(this.map),
      drones: L.layerGroup().addTo(this.map),
    };
    this.drones = new Map();
    this.incidents = new Map();
    this.routes = new Map();
    this.trails = new Map();
    if (onMapClick) this.map.on("click", (e) => onMapClick(e.latlng));
  }

  setDistricts(geojson, lang) {
    this.layers.districts.clearLayers();
    const layer = L.geoJSON(geojson, {
      style: (f) => f.properties.kind === "ifez_district"
        ? { color: "#3a4a6b", weight: 1.5, fillColor: "#1f2a44", fillOpacity: 0.85 }
        : { color: "#2b3550", weight: 0.8, fillColor: "#161d30", fillOpacity: 0.6 },
      onEachFeature: (f, l) => l.bindTooltip(lang === "ko" ? f.properties.name_ko : f.properties.name_en,
        { sticky: true, className: "tip" }),
    }).addTo(this.layers.districts);
    if (geojson.attribution) this.map.attributionControl.addAttribution(geojson.attribution);
    const ifez = geojson.features.filter((f) => f.properties.kind === "ifez_district");
    if (ifez.length) this.map.fitBounds(L.geoJSON({ type: "FeatureCollection", features: ifez }).getBounds(), { padding: [10, 10] });
    return layer;
  }

  setZones(geojson, lang) {
    this.layers.zones.clearLayers();
    L.geoJSON(geojson, {
      style: (f) => ZONE_STYLE[f.properties.rule] || ZONE_STYLE.ceiling,
      onEachFeature: (f, l) => l.bindTooltip(`${lang === "ko" ? f.properties.name_ko : f.properties.name_en} · ${f.properties.rule}`),
    }).addTo(this.layers.zones);
  }

  setDocks(docks, lang) {
    this.layers.docks.clearLayers();
    for (const d of docks) {
      L.marker([d.lat, d.lon], { icon: L.divIcon({ className: "dock-icon", html: "⌂", iconSize: [18, 18] }) })
        .bindTooltip(lang === "ko" ? d.name_ko : d.name_en).addTo(this.layers.docks);
    }
  }

  setCameras(cameras, lang) {
    this.layers.cameras.clearLayers();
    for (const c of cameras) {
      L.circleMarker([c.lat, c.lon], { radius: 3, color: "#b37feb", weight: 1, fillOpacity: 0.9 })
        .bindTooltip(`${c.id} · ${lang === "ko" ? (c.name_ko || c.id) : (c.name_en || c.id)}`).addTo(this.layers.cameras);
    }
  }

  upsertDrone(d) {
    if (!d.position) return;
    const ll = [d.position.lat, d.position.lon];
    const color = STATE_COLOR[d.state] || "#fff";
    const html = `<div class="drone-glyph" style="--c:${color};transform:rotate(${d.heading || 0}deg)">▲</div><span class="drone-label">${d.id}</span>`;
    let m = this.drones.get(d.id);
    if (!m) {
      m = L.marker(ll, { icon: L.divIcon({ className: "drone-icon", html, iconSize: [18, 18] }), zIndexOffset: 1000 })
        .addTo(this.layers.drones);
      m.getElement()?.setAttribute("data-drone", d.id);
      this.drones.set(d.id, m);
    } else {
      m.setLatLng(ll);
      m.setIcon(L.divIcon({ className: "drone-icon", html, iconSize: [18, 18] }));
      m.getElement()?.setAttribute("data-drone", d.id);
    }
    m.getElement()?.setAttribute("data-state", d.state);
    m.bindTooltip(`${d.id} · ${d.state} · ${d.battery == null ? "–" : d.battery.toFixed(0) + "%"}`);
    if (!d.landed) {
      let trail = this.trails.get(d.id);
      if (!trail) { trail = L.polyline([], { color, weight: 2, opacity: 0.6 }).addTo(this.layers.routes); this.trails.set(d.id, trail); }
      trail.addLatLng(ll);
    } else if (this.trails.has(d.id)) {
      this.layers.routes.removeLayer(this.trails.get(d.id)); this.trails.delete(d.id);
    }
  }

  upsertIncident(i) {
    const existing = this.incidents.get(i.id);
    if (i.status === "closed") { if (existing) { this.layers.incidents.removeLayer(existing); this.incidents.delete(i.id); } return; }
    const ll = [i.location.lat, i.location.lon];
    const icon = L.divIcon({ className: "incident-icon", html: `<div class="pulse" style="--c:${SEV_COLOR[i.severity] || "#ff4d4f"}"></div>`, iconSize: [22, 22] });
    if (existing) { existing.setLatLng(ll); existing.setIcon(icon); return; }
    const m = L.marker(ll, { icon }).addTo(this.layers.incidents);
    m.getElement()?.setAttribute("data-incident", i.id);
    this.incidents.set(i.id, m);
  }

  setRoute(mission) {
    const old = this.routes.get(mission.id);
    if (old) this.layers.routes.removeLayer(old);
    if (["completed", "aborted", "failed"].includes(mission.state)) { this.routes.delete(mission.id); return; }
    const pts = mission.items.filter((it) => it.lat || it.lon).map((it) => [it.lat, it.lon]);
    const line = L.polyline(pts, { color: "#91caff", weight: 2, dashArray: "6 6" }).addTo(this.layers.routes);
    this.routes.set(mission.id, line);
  }

  focus(lat, lon) { this.map.panTo([lat, lon]); }
}
