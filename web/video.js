// Video wall: one tile per drone (flying ones first) beside the fixed cameras. A drone tile
// negotiates WebRTC with POST /drones/{id}/video/offer (receive only, no ICE servers: the
// service offers loopback/LAN host candidates) and shows a clear "no video" state whenever
// the server has no such route, refuses, or the stream stops. A fixed camera's player
// (CameraPlayer) is the same tile pointed at POST /cameras/{id}/video/offer; a flying drone's
// tile has the fixed cameras nearest to it beside it.
import { api } from "./api.js";
import { getLang, t, tOr } from "./i18n.js";
import { $, el } from "./ui.js";

const ICE_GATHER_MS = 2000;
// Connecting never lasts longer than this: then a clear failure with a retry, never a spinner.
export const CONNECT_TIMEOUT_MS = 15000;
// A live picture that brings no new frame for this long says so (the source stopped sending).
const STALL_MS = 6000;

export class VideoTile {
  // offerPath: where the SDP offer goes (a fixed camera's route for the CCTV player); timeoutMs:
  // how long "connecting" may last before it turns into a failure.
  constructor(droneId, { supported, offerPath = null, timeoutMs = CONNECT_TIMEOUT_MS }) {
    this.droneId = droneId;
    this.supported = supported;
    this.offerPath = offerPath || `/drones/${encodeURIComponent(droneId)}/video/offer`;
    this.timeoutMs = timeoutMs;
    this.pc = null;
    this.timer = null;
    this.watch = null;
    this.video = el("video", { autoplay: true, muted: true, playsinline: true });
    this.status = el("div", { class: "tile-status" });
    this.node = el("div", { class: "tile", dataset: { videoTile: droneId, video: "none" } },
      this.video, el("div", { class: "tile-label" }, droneId), this.status);
    this.video.muted = true;
    // live means frames are shown, not merely that a track was negotiated
    this.video.addEventListener("playing", () => { if (this.pc) this.live(); });
    this.lang = getLang();
    this.reason = null;
    this.idle();
  }

  // Failure text with its reason (the CCTV player words it for a camera).
  failText(reason) { return reason ? `${t("video.failed")}: ${reason}` : t("video.failed"); }

  fail(reason) {
    this.stop();
    this.reason = reason;
    this.show("failed", this.failText(reason), t("video.retry"));
  }

  // The state's words again in the language now chosen (called on every render, acts on a change).
  relang() {
    if (this.lang === getLang()) return;
    this.lang = getLang();
    const kind = this.node.dataset.video;
    if (kind === "none") this.idle();
    else if (kind === "connecting") this.show(kind, t("video.connecting"));
    else if (kind === "failed") this.show(kind, this.failText(this.reason), t("video.retry"));
    else if (kind === "stalled") this.show(kind, this.failText(this.reason || t("video.stalled")), t("video.retry"));
  }

  // The server refused the offer (its answer says why).
  refused(e) { this.fail(e.message); }

  // A failure the browser saw without a reason (timeout, connection lost, frames stopped): the
  // CCTV player asks the server why; a drone tile has nothing more to say.
  explain(_kind) {}

  live() {
    clearTimeout(this.timer);
    this.retried = false;
    this.show("live", t("video.live"));
    if (this.watch) return;
    // a picture that stops moving (source gone, relay reconnecting) is flagged until frames return
    let frames = -1, since = Date.now();
    this.watch = setInterval(() => {
      const n = this.video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
      if (n !== frames) {
        frames = n; since = Date.now();
        if (this.node.dataset.video === "stalled") this.show("live", t("video.live"));
      } else if (Date.now() - since > STALL_MS && this.node.dataset.video === "live") {
        this.reason = null;
        this.show("stalled", this.failText(t("video.stalled")), t("video.retry"));
        this.explain("stalled");
      }
    }, 1000);
  }

  // Not streaming: flying drones start by themselves; a docked one on request.
  idle() {
    this.show("none", this.supported ? t("video.none") : t("video.unsupported"), this.supported ? t("video.show") : null);
  }

  show(kind, text, action = null) {
    this.node.dataset.video = kind;
    const parts = [el("span", {}, text)];
    if (action) parts.push(el("button", { class: "ghost small", dataset: { action: "video" }, onclick: () => { this.stop(); this.start(); } }, action));
    this.status.replaceChildren(...parts);
    this.status.hidden = kind === "live";
    this.status.classList.toggle("overlay", kind === "stalled"); // the last frame stays visible beneath
  }

  async start() {
    if (!this.supported || this.pc) return;
    this.show("connecting", t("video.connecting"));
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    this.timer = setTimeout(() => {
      if (this.pc !== pc) return;
      this.fail(t("video.timeout", { s: Math.round(this.timeoutMs / 1000) }));
      this.explain("failed");
    }, this.timeoutMs);
    pc.ontrack = (e) => {
      this.video.srcObject = e.streams[0] || new MediaStream([e.track]);
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (["failed", "closed", "disconnected"].includes(pc.connectionState) && this.pc === pc) { this.fail(null); this.explain("failed"); }
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const answer = await api(this.offerPath, {
        method: "POST", body: { sdp: pc.localDescription.sdp, type: pc.localDescription.type },
      });
      if (this.pc !== pc) return;
      await pc.setRemoteDescription(answer);
    } catch (e) {
      if (this.pc === pc) this.refused(e);
    }
  }

  stop() {
    clearTimeout(this.timer);
    clearInterval(this.watch);
    this.watch = null;
    if (this.pc) { this.pc.ontrack = null; this.pc.onconnectionstatechange = null; this.pc.close(); }
    this.pc = null;
    this.video.srcObject = null;
  }
}

// --- fixed CCTV: the same WebRTC path, pointed at POST /cameras/{id}/video/offer ------------
export const NEAREST_CAMERAS = 2;

export const cameraName = (c) => (getLang() === "ko" ? c.name_ko || c.id : c.name_en || c.id);
// A camera the service can relay: it has a stream (credentials already redacted by the server).
export const hasStream = (c) => Boolean(c && ["cctv", "ptz"].includes(c.kind || "cctv") && c.stream);

export class CameraPlayer extends VideoTile {
  constructor(camera, { supported }) {
    super(camera.id, { supported, offerPath: `/cameras/${encodeURIComponent(camera.id)}/video/offer` });
    this.camera = camera;
    delete this.node.dataset.videoTile;
    this.node.dataset.cameraTile = camera.id;
    this.node.classList.add("cctv");
    this.relabel();
  }

  relabel() {
    this.node.querySelector(".tile-label").textContent = `${t("video.fixed")} · ${cameraName(this.camera)}`;
    this.relang();
  }

  idle() {
    this.show("none", this.supported ? t("cctv.idle") : t("cctv.unsupported"), this.supported ? t("video.show") : null);
  }

  // A camera nobody watched starts its pull with this offer, which can take longer than the
  // server waits on a busy machine: one quiet retry a second later finds the pull under way.
  refused(e) {
    if (this.retried) { this.fail(e.message); return; }
    this.retried = true;
    this.stop();
    this.show("connecting", t("video.connecting"));
    this.retryTimer = setTimeout(() => this.start(), 1000);
  }

  stop() {
    clearTimeout(this.retryTimer);
    super.stop();
  }

  failText(reason) {
    const why = String(reason || "").replace(/^camera \S+ does not answer: /, ""); // the tile names the camera already
    return t("cctv.unreachable", { reason: why || t("cctv.noreason") });
  }

  // The relay's own view of the camera (GET /cameras/{id}/video: state and reason) replaces the
  // browser's guess while the tile still shows that failure.
  explain(kind) {
    api(`/cameras/${encodeURIComponent(this.camera.id)}/video`).then((s) => {
      if (!s.reason || this.node.dataset.video !== kind) return;
      this.reason = s.reason;
      this.show(kind, this.failText(s.reason), t("video.retry"));
    }).catch(() => {});
  }

  // Started unless it failed before (a failed camera waits for its retry button).
  ensure() {
    if (this.supported && !this.pc && this.node.dataset.video !== "failed") this.start();
    return this.node;
  }
}

// Players kept by camera id across re-renders, so a stream is not renegotiated at every frame.
export class CameraPlayers {
  constructor(supported) { this.supported = supported; this.players = new Map(); }

  // `key` tells apart two places showing one camera (two incidents raised by it).
  get(camera, key = camera.id) {
    let p = this.players.get(key);
    if (!p) { p = new CameraPlayer(camera, { supported: this.supported }); this.players.set(key, p); }
    p.relabel();
    return p;
  }

  // Stops and forgets every player whose key is not in `keep` (a set).
  retain(keep) {
    for (const [id, p] of this.players) if (!keep.has(id)) { p.stop(); this.players.delete(id); }
  }
}

function distanceM(lat1, lon1, lat2, lon2) {
  const dy = (lat2 - lat1) * 111320, dx = (lon2 - lon1) * 111320 * Math.cos((lat1 * Math.PI) / 180);
  return Math.hypot(dx, dy);
}

// The `n` cameras with a stream nearest to a point, nearest first.
export function nearestCameras(cameras, lat, lon, n = NEAREST_CAMERAS) {
  if (lat == null || lon == null) return [];
  return cameras.filter(hasStream).map((c) => ({ c, d: distanceM(lat, lon, c.lat, c.lon) }))
    .sort((a, b) => a.d - b.d).slice(0, n).map((x) => x.c);
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    const timer = setTimeout(done, ICE_GATHER_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// Continuous overwatch: the drone covering each incident's scene (incident.on_scene_drone_id), so the
// video follows it without anyone clicking. `seen` (incident id → drone last followed) makes a switch
// happen once per hand-over: a pilot who picks another mission afterwards keeps it.
export function onSceneDrones(state) {
  const out = new Map(); // drone id → incident id
  for (const i of state.incidents.values()) if (i.on_scene_drone_id && i.status !== "closed") out.set(i.on_scene_drone_id, i.id);
  return out;
}

export function followOnScene(state, missionId, seen) {
  const m = state.missions.get(missionId);
  const inc = m && state.incidents.get(m.incident_id);
  const drone = inc?.on_scene_drone_id;
  if (!drone || seen.get(inc.id) === drone) return missionId;
  seen.set(inc.id, drone);
  if (drone === m.drone_id) return missionId;
  const next = [...state.missions.values()].find((x) => x.incident_id === inc.id && x.drone_id === drone
    && !["completed", "aborted", "failed"].includes(x.state));
  return next ? next.id : missionId;
}

export class VideoWall {
  constructor(ctx) {
    this.ctx = ctx; // {state, features}
    this.tiles = new Map();
    this.visible = false;
    this.cams = new CameraPlayers(Boolean(ctx.features.cameraVideo)); // "drone:camera" or camera id → player
  }

  setVisible(v) {
    this.visible = v;
    if (v) this.render();
    else {
      for (const tile of this.tiles.values()) { tile.stop(); tile.idle(); }
      this.cams.retain(new Set());
    }
  }

  // A flying drone's tile with the fixed cameras nearest to it, side by side.
  group(d, tile) {
    if (d.landed || !d.position) return tile.node;
    const near = nearestCameras(this.ctx.state.cameras, d.position.lat, d.position.lon);
    return el("div", { class: "drone-group", dataset: { droneGroup: d.id } }, tile.node,
      ...near.map((c) => this.cams.get(c, `${d.id}:${c.id}`).ensure()));
  }

  render() {
    if (!this.visible) return;
    const { state, features } = this.ctx;
    const shown = new Set();
    const onScene = onSceneDrones(state); // the drones covering a scene lead the wall
    const drones = [...state.drones.values()].sort((a, b) =>
      (onScene.has(b.id) - onScene.has(a.id)) || (a.landed - b.landed) || a.sysid - b.sysid);
    const tiles = drones.map((d) => {
      let tile = this.tiles.get(d.id);
      if (!tile) { tile = new VideoTile(d.id, { supported: features.video }); this.tiles.set(d.id, tile); }
      tile.node.querySelector(".tile-label").textContent = `${d.id} · ${tOr(`ds.${d.state}`, d.state)}`
        + (onScene.has(d.id) ? ` · ${getLang() === "ko" ? "현장" : "on scene"} #${onScene.get(d.id)}` : "");
      if (onScene.has(d.id)) tile.node.dataset.onScene = onScene.get(d.id); else delete tile.node.dataset.onScene;
      tile.relang();
      if (features.video && !d.landed && d.link.ok && !tile.pc && tile.node.dataset.video !== "failed") tile.start();
      const node = this.group(d, tile);
      for (const p of node.querySelectorAll("[data-camera-tile]")) shown.add(`${d.id}:${p.dataset.cameraTile}`);
      return node;
    });
    $("#video-drones").replaceChildren(...tiles);
    $("#video-cameras").replaceChildren(...state.cameras.map((c) => {
      if (hasStream(c)) { shown.add(c.id); return this.cams.get(c).ensure(); }
      return el("div", { class: "tile fixed", dataset: { camera: c.id } },
        el("div", { class: "tile-label" }, `${getLang() === "ko" ? c.name_ko : c.name_en} · ${c.id}`),
        el("div", { class: "tile-status" }, el("span", {}, `${t(c.kind === "cctv" ? "video.fixed" : "video.sensor")} · ${t("video.nostream")}`)));
    }));
    this.cams.retain(shown);
  }
}
