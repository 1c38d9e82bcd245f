// The field link: one incident, its position and the live video of the drone flying it.
// Everything comes from /share-api/<token> (the token is this page's own path): the state is
// polled every 2 s; when the incident's mission or drone changes, the video is negotiated again
// (WebRTC, receive only, no ICE servers). No controls, no other incidents. An expired or revoked
// link reloads the page, which the service then answers with its refusal.
const L = window.L;
const POLL_MS = 2000;
const ICE_GATHER_MS = 2000;
const RETRY_MS = 4000;

const token = decodeURIComponent(location.pathname.split("/")[2] || "");
const base = `/share-api/${encodeURIComponent(token)}`;
const $ = (sel) => document.querySelector(sel);

const CATEGORY = {
  fire: "Fire", traffic_accident: "Traffic accident", crime: "Crime", missing_person: "Missing person",
  flood: "Flood", environment: "Environment", facility: "Facility", other: "Other",
};
const STATUS = { open: "open", dispatched: "drone dispatched", closed: "closed" };

class Gone extends Error {}

async function call(path, options = {}) {
  const r = await fetch(base + path, {
    ...options, cache: "no-store", referrerPolicy: "no-referrer",
    headers: options.body ? { "Content-Type": "application/json" } : {},
  });
  if (r.status === 410 || r.status === 404) throw new Gone(String(r.status));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.detail || `HTTP ${r.status}`);
  return body;
}

// -- map ------------------------------------------------------------------------------------------
const map = L.map($("#map"), { zoomControl: true, attributionControl: true }).setView([37.45, 126.6], 14);
// the outlines arrive after the markers may have: a pane beneath keeps them from covering them
map.createPane("districts").style.zIndex = 250;
let incidentMarker = null;
let droneMarker = null;
let centred = false;
let framedDrone = false;

async function drawDistricts() {
  const geojson = await call("/districts");
  L.geoJSON(geojson, {
    style: (f) => f.properties.kind === "ifez_district"
      ? { color: "#3a4a6b", weight: 1.5, fillColor: "#1f2a44", fillOpacity: 0.85 }
      : { color: "#2b3550", weight: 0.8, fillColor: "#161d30", fillOpacity: 0.6 },
    interactive: false,
    pane: "districts",
  }).addTo(map);
  if (geojson.attribution) map.attributionControl.addAttribution(geojson.attribution);
}

function place(state) {
  const { lat, lon } = state.incident.location;
  if (!incidentMarker) {
    incidentMarker = L.circleMarker([lat, lon], { radius: 11, color: "#ff4d4f", weight: 3, fillColor: "#ff4d4f", fillOpacity: 0.4 }).addTo(map);
  } else incidentMarker.setLatLng([lat, lon]);
  if (!centred) { map.setView([lat, lon], 15); centred = true; }
  const pos = state.drone && state.drone.position;
  if (pos) {
    if (!droneMarker) {
      droneMarker = L.circleMarker([pos.lat, pos.lon], { radius: 8, color: "#fff", weight: 3, fillColor: "#1677ff", fillOpacity: 1 }).addTo(map);
    } else droneMarker.setLatLng([pos.lat, pos.lon]);
    droneMarker.getElement()?.setAttribute("data-drone", state.drone.id);
    if (!framedDrone) { // once: the drone and the incident both in view
      map.fitBounds(L.latLngBounds([[lat, lon], [pos.lat, pos.lon]]), { padding: [40, 40], maxZoom: 16 });
      framedDrone = true;
    }
  } else if (droneMarker) { droneMarker.remove(); droneMarker = null; }
}

// -- video ----------------------------------------------------------------------------------------
const video = $("#video");
const box = $("#video-box");
let pc = null;
let videoKey = null; // mission:drone the current negotiation is for
let retryAt = 0;

function videoStatus(kind, text) {
  box.dataset.video = kind;
  $("#video-status").textContent = text;
}

function stopVideo() {
  if (pc) { pc.ontrack = null; pc.onconnectionstatechange = null; pc.close(); }
  pc = null;
  video.srcObject = null;
}

function gathered(conn) {
  if (conn.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); conn.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (conn.iceGatheringState === "complete") done(); };
    const timer = setTimeout(done, ICE_GATHER_MS);
    conn.addEventListener("icegatheringstatechange", check);
  });
}

async function startVideo(key) {
  stopVideo();
  videoKey = key;
  videoStatus("connecting", "Connecting to the drone's camera…");
  const conn = new RTCPeerConnection({ iceServers: [] });
  pc = conn;
  conn.addTransceiver("video", { direction: "recvonly" });
  conn.ontrack = (e) => {
    video.srcObject = e.streams[0] || new MediaStream([e.track]);
    video.play().catch(() => {});
    videoStatus("live", "");
  };
  conn.onconnectionstatechange = () => {
    if (["failed", "closed", "disconnected"].includes(conn.connectionState) && pc === conn) {
      stopVideo();
      videoKey = null; // the next poll tries again
      retryAt = Date.now() + RETRY_MS;
      videoStatus("failed", "The video stopped; reconnecting…");
    }
  };
  try {
    await conn.setLocalDescription(await conn.createOffer());
    await gathered(conn);
    const answer = await call("/video/offer", {
      method: "POST", body: JSON.stringify({ sdp: conn.localDescription.sdp, type: conn.localDescription.type }),
    });
    if (pc !== conn) return;
    await conn.setRemoteDescription(answer);
  } catch (e) {
    if (e instanceof Gone) throw e;
    if (pc === conn) {
      stopVideo();
      videoKey = null;
      retryAt = Date.now() + RETRY_MS;
      videoStatus("failed", `No video yet (${e.message}); trying again…`);
    }
  }
}

function followVideo(state) {
  const m = state.mission;
  if (!m || !m.video) {
    if (pc) stopVideo();
    videoKey = null;
    videoStatus("none", m ? `The drone's flight is ${m.state.replace("_", " ")}: no live video.` : "No drone is flying to this incident yet.");
    return;
  }
  const key = `${m.id}:${m.drone_id}`;
  if (key !== videoKey && Date.now() >= retryAt) startVideo(key).catch(onError);
}

// -- state ----------------------------------------------------------------------------------------
function render(state) {
  const i = state.incident;
  $("#category").textContent = CATEGORY[i.category] || i.category;
  $("#reported").textContent = `reported ${new Date(i.created_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" })}`;
  const status = $("#incident-status");
  status.dataset.status = i.status;
  status.textContent = STATUS[i.status] || i.status;
  const d = state.drone;
  const line = $("#drone");
  if (d) {
    const parts = [`Drone ${d.id}`, (state.mission?.state || d.state).replace("_", " ")];
    if (d.position && d.position.alt != null) parts.push(`${Math.round(d.position.alt)} m up`);
    if (d.battery != null) parts.push(`battery ${Math.round(d.battery)} %`);
    line.textContent = parts.join(" · ");
    line.dataset.drone = d.id;
  } else {
    line.textContent = "No drone on this incident yet.";
    delete line.dataset.drone;
  }
  $("#expires").textContent = `This link works until ${new Date(state.expires_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" })}.`;
  place(state);
  followVideo(state);
}

let reloading = false;
function onError(e) {
  if (e instanceof Gone && !reloading) {
    reloading = true;
    stopVideo();
    location.reload(); // the service answers with its "expired / revoked" page
  }
}

async function poll() {
  try { render(await call("")); } catch (e) { onError(e); }
  if (!reloading) setTimeout(poll, POLL_MS);
}

drawDistricts().catch(onError);
poll();
