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

// English, or Korean when the phone is set to it (the city's crews)
const KO = (navigator.language || "").toLowerCase().startsWith("ko");
const TEXT = KO ? {
  category: { fire: "화재", traffic_accident: "교통사고", crime: "범죄", missing_person: "실종자", flood: "침수",
    environment: "환경", facility: "시설물", other: "기타" },
  status: { open: "접수", dispatched: "드론 출동", closed: "종결" },
  state: { planned: "준비", uploading: "임무 전송", launching: "이륙 중", enroute: "이동 중", on_scene: "현장 도착",
    returning: "복귀 중", completed: "완료", aborted: "중단", failed: "실패" },
  reported: "접수", drone: "드론", up: "m 고도", battery: "배터리", until: "링크 유효 시간:", noDrone: "아직 출동한 드론이 없습니다.",
  connecting: "드론 카메라에 연결 중…", stopped: "영상이 끊겼습니다. 다시 연결 중…", noVideoYet: "아직 영상이 없습니다",
  retrying: "다시 시도 중…", noLive: "실시간 영상 없음", waiting: "드론을 기다리는 중…",
} : {
  category: { fire: "Fire", traffic_accident: "Traffic accident", crime: "Crime", missing_person: "Missing person",
    flood: "Flood", environment: "Environment", facility: "Facility", other: "Other" },
  status: { open: "open", dispatched: "drone dispatched", closed: "closed" },
  state: { planned: "planned", uploading: "uploading", launching: "taking off", enroute: "en route", on_scene: "on scene",
    returning: "returning", completed: "completed", aborted: "aborted", failed: "failed" },
  reported: "reported", drone: "Drone", up: "m up", battery: "battery", until: "This link works until", noDrone: "No drone on this incident yet.",
  connecting: "Connecting to the drone's camera…", stopped: "The video stopped; reconnecting…", noVideoYet: "No video yet",
  retrying: "trying again…", noLive: "no live video", waiting: "No drone is flying to this incident yet.",
};
const stateText = (st) => TEXT.state[st] || st.replace("_", " ");
document.documentElement.lang = KO ? "ko" : "en";

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
  videoStatus("connecting", TEXT.connecting);
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
      videoStatus("failed", TEXT.stopped);
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
      videoStatus("failed", `${TEXT.noVideoYet} (${e.message}); ${TEXT.retrying}`);
    }
  }
}

function followVideo(state) {
  const m = state.mission;
  if (!m || !m.video) {
    if (pc) stopVideo();
    videoKey = null;
    videoStatus("none", m ? `${TEXT.drone} ${m.drone_id} · ${stateText(m.state)}: ${TEXT.noLive}` : TEXT.waiting);
    return;
  }
  const key = `${m.id}:${m.drone_id}`;
  if (key !== videoKey && Date.now() >= retryAt) startVideo(key).catch(onError);
}

// -- state ----------------------------------------------------------------------------------------
function render(state) {
  const i = state.incident;
  $("#category").textContent = TEXT.category[i.category] || i.category;
  $("#reported").textContent = `${TEXT.reported} ${new Date(i.created_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" })}`;
  const status = $("#incident-status");
  status.dataset.status = i.status;
  status.textContent = TEXT.status[i.status] || i.status;
  const d = state.drone;
  const line = $("#drone");
  if (d) {
    const parts = [`${TEXT.drone} ${d.id}`, stateText(state.mission?.state || d.state)];
    if (d.position && d.position.alt != null) parts.push(`${Math.round(d.position.alt)} ${TEXT.up}`);
    if (d.battery != null) parts.push(`${TEXT.battery} ${Math.round(d.battery)} %`);
    line.textContent = parts.join(" · ");
    line.dataset.drone = d.id;
  } else {
    line.textContent = TEXT.noDrone;
    delete line.dataset.drone;
  }
  $("#expires").textContent = `${TEXT.until} ${new Date(state.expires_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" })}.`;
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

if (location.pathname.startsWith("/share/")) {
  drawDistricts().catch(onError);
  poll();
} else { // the file itself (under /ui/): it opens only from a link
  videoStatus("none", KO ? "공유 링크로만 열 수 있습니다." : "This page opens only from a share link.");
}
