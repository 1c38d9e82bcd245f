// Video wall: one tile per drone (flying ones first) beside the fixed cameras. A drone tile
// negotiates WebRTC with POST /drones/{id}/video/offer (receive only, no ICE servers: the
// service offers loopback/LAN host candidates) and shows a clear "no video" state whenever
// the server has no such route, refuses, or the stream stops.
import { api } from "./api.js";
import { getLang, t, tOr } from "./i18n.js";
import { $, el } from "./ui.js";

const ICE_GATHER_MS = 2000;

export class VideoTile {
  constructor(droneId, { supported }) {
    this.droneId = droneId;
    this.supported = supported;
    this.pc = null;
    this.video = el("video", { autoplay: true, muted: true, playsinline: true });
    this.status = el("div", { class: "tile-status" });
    this.node = el("div", { class: "tile", dataset: { videoTile: droneId, video: "none" } },
      this.video, el("div", { class: "tile-label" }, droneId), this.status);
    this.video.muted = true;
    this.idle();
  }

  // Not streaming: flying drones start by themselves; a docked one on request.
  idle() {
    this.show("none", this.supported ? t("video.none") : t("video.unsupported"), this.supported ? t("video.show") : null);
  }

  show(kind, text, action = null) {
    this.node.dataset.video = kind;
    const parts = [el("span", {}, text)];
    if (action) parts.push(el("button", { class: "ghost small", dataset: { action: "video" }, onclick: () => this.start() }, action));
    this.status.replaceChildren(...parts);
    this.status.hidden = kind === "live";
  }

  async start() {
    if (!this.supported || this.pc) return;
    this.show("connecting", t("video.connecting"));
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.ontrack = (e) => {
      this.video.srcObject = e.streams[0] || new MediaStream([e.track]);
      this.video.play().catch(() => {});
      this.show("live", t("video.live"));
    };
    pc.onconnectionstatechange = () => {
      if (["failed", "closed", "disconnected"].includes(pc.connectionState) && this.pc === pc) {
        this.stop();
        this.show("failed", t("video.failed"), t("video.retry"));
      }
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const answer = await api(`/drones/${encodeURIComponent(this.droneId)}/video/offer`, {
        method: "POST", body: { sdp: pc.localDescription.sdp, type: pc.localDescription.type },
      });
      if (this.pc !== pc) return;
      await pc.setRemoteDescription(answer);
    } catch (e) {
      if (this.pc === pc) { this.stop(); this.show("failed", `${t("video.none")}: ${e.message}`, t("video.retry")); }
    }
  }

  stop() {
    if (this.pc) { this.pc.ontrack = null; this.pc.onconnectionstatechange = null; this.pc.close(); }
    this.pc = null;
    this.video.srcObject = null;
  }
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

export class VideoWall {
  constructor(ctx) {
    this.ctx = ctx; // {state, features}
    this.tiles = new Map();
    this.visible = false;
  }

  setVisible(v) {
    this.visible = v;
    if (v) this.render();
    else for (const tile of this.tiles.values()) { tile.stop(); tile.idle(); }
  }

  render() {
    if (!this.visible) return;
    const { state, features } = this.ctx;
    const drones = [...state.drones.values()].sort((a, b) => (a.landed - b.landed) || a.sysid - b.sysid);
    const tiles = drones.map((d) => {
      let tile = this.tiles.get(d.id);
      if (!tile) { tile = new VideoTile(d.id, { supported: features.video }); this.tiles.set(d.id, tile); }
      tile.node.querySelector(".tile-label").textContent = `${d.id} · ${tOr(`ds.${d.state}`, d.state)}`;
      if (features.video && !d.landed && d.link.ok && !tile.pc && tile.node.dataset.video !== "failed") tile.start();
      return tile.node;
    });
    $("#video-drones").replaceChildren(...tiles);
    $("#video-cameras").replaceChildren(...state.cameras.map((c) => el("div", { class: "tile fixed", dataset: { camera: c.id } },
      el("div", { class: "tile-label" }, `${getLang() === "ko" ? c.name_ko : c.name_en} · ${c.id}`),
      el("div", { class: "tile-status" }, el("span", {}, `${t(c.kind === "cctv" ? "video.fixed" : "video.sensor")} · ${t("video.nostream")}`)))));
  }
}
