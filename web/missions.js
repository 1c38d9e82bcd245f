// The pilot's panel: every active mission with live telemetry (altitude, speed, battery, link
// quality, mode), progress through the mission, and the commands — each confirmed first. The
// pilot's controls are never hidden by dispatch: any pilot sees every flying mission.
import { api } from "./api.js";
import { t, tOr } from "./i18n.js";
import { $, el, fmt, holdWhilePressed, modal, toast } from "./ui.js";
import { CameraPlayers, followOnScene, nearestCameras, VideoTile } from "./video.js";

const ENDED = ["completed", "aborted", "failed"];
const COMMANDS = ["pause", "resume", "rtl", "land", "abort"];

export class MissionPanel {
  constructor(ctx) {
    this.ctx = ctx; // {state, can(), onSelect(mission)}
    this.selected = null;
    this.picking = null; // mission id waiting for a reposition point
    this.held = holdWhilePressed($("#missions"), () => this.render());
    this.tiles = new Map(); // drone id → VideoTile of the selected mission
    this.cams = new CameraPlayers(Boolean(ctx.features.cameraVideo)); // the fixed cameras nearest to it
    this.followed = new Map(); // incident id → drone on scene last followed (continuous overwatch)
  }

  // The nearest fixed cameras with video, to the drone (else the incident), beside its video.
  camerasFor(m, d) {
    const inc = this.ctx.state.incidents.get(m.incident_id);
    const at = d?.position || inc?.location;
    const near = nearestCameras(this.ctx.state.cameras, at?.lat, at?.lon);
    this.cams.retain(new Set(near.map((c) => c.id)));
    return near.map((c) => this.cams.get(c).ensure());
  }

  // The selected mission's live video, kept across re-renders so the stream is not renegotiated.
  videoFor(m, d) {
    let tile = this.tiles.get(m.drone_id);
    if (!tile) { tile = new VideoTile(m.drone_id, { supported: this.ctx.features.video }); this.tiles.set(m.drone_id, tile); }
    if (this.ctx.features.video && d && !d.landed && d.link.ok && !tile.pc && tile.node.dataset.video !== "failed") tile.start();
    tile.relang();
    return tile.node;
  }

  dropVideo(keep) {
    for (const [id, tile] of this.tiles) if (id !== keep) { tile.stop(); this.tiles.delete(id); }
  }

  render() {
    if (this.held()) return;
    const { state } = this.ctx;
    // a hand-over moves the selection (and its video) to the mission of the drone now on scene
    if (this.selected !== null) this.selected = followOnScene(state, this.selected, this.followed);
    const all = [...state.missions.values()];
    const active = all.filter((m) => !ENDED.includes(m.state)).sort((a, b) => b.id - a.id);
    const recent = all.filter((m) => ENDED.includes(m.state)).sort((a, b) => b.id - a.id).slice(0, 3);
    $("#missions-count").textContent = active.length;
    const sel = active.find((m) => m.id === this.selected);
    this.dropVideo(sel ? sel.drone_id : null);
    if (!sel) this.cams.retain(new Set());
    $("#missions").replaceChildren(...[...active, ...recent].map((m) => this.card(m)));
  }

  card(m) {
    const { state, can } = this.ctx;
    const d = state.drones.get(m.drone_id);
    const live = !ENDED.includes(m.state);
    const incident = state.incidents.get(m.incident_id);
    const { seq, total } = progressOf(m, d);
    const pct = total ? Math.min(100, Math.round(((seq ?? 0) / Math.max(1, total - 1)) * 100)) : 0;
    const tele = d && live ? el("div", { class: "tele" },
      cell(t("alt"), fmt.m(d.position?.alt)), cell(t("speed"), fmt.ms(d.groundspeed)),
      cell(t("battery"), fmt.pct(d.battery), d.battery != null && d.battery < 25 ? "bad" : ""),
      cell(t("heading"), fmt.deg(d.heading)), cell(t("mode"), d.mode || "–"),
      cell(t("link"), d.link.ok ? `${t("link.ok")} · ${t("loss")} ${(d.link.loss * 100).toFixed(0)}%` : t("link.lost"), d.link.ok ? "" : "bad")) : null;
    const progress = live && total ? el("div", { class: "progress", title: `${t("progress")} ${seq ?? 0}/${total}` },
      el("div", { class: "bar", style: { width: `${pct}%` } }),
      el("span", { class: "progress-text", dataset: { progress: `${seq ?? 0}/${total}` } }, `${t("progress")} ${seq ?? 0}/${total}`)) : null;
    const picking = this.picking === m.id;
    const controls = can.command() && live ? el("div", { class: "actions" },
      ...COMMANDS.map((c) => el("button", { class: c === "abort" ? "danger" : c === "rtl" ? "warn" : "ghost", dataset: { command: c },
        onclick: () => this.command(m, c) }, t(c))),
      el("button", { class: picking ? "primary" : "ghost", dataset: { command: "reposition" }, title: t("reposition.hint"),
        onclick: () => this.pickPoint(picking ? null : m.id) }, picking ? t("reposition.cancel") : t("reposition"))) : null;
    return el("li", {
      class: `card mission${live ? "" : " ended"}${this.selected === m.id ? " selected" : ""}`,
      dataset: { mission: m.id, state: m.state, drone: m.drone_id },
      onclick: (e) => { if (e.target.tagName !== "BUTTON") this.select(m.id); },
    },
      el("div", { class: "card-head" },
        el("b", {}, m.drone_id),
        el("span", { class: `state st-${m.state}`, dataset: { missionState: m.state } }, tOr(`st.${m.state}`, m.state)),
        el("span", { class: "spacer" }),
        el("span", { class: "muted small" }, `#${m.id} → ${incident ? tOr(`cat.${incident.category}`, incident.category) + " " : ""}#${m.incident_id}`)),
      el("div", { class: "muted small" }, `${t("template")}: ${m.template}`),
      m.reason ? el("div", { class: m.state === "failed" ? "bad small" : "muted small" }, m.reason) : null,
      progress, tele,
      live && this.selected === m.id ? el("div", { class: "mission-video video-row" }, this.videoFor(m, d), ...this.camerasFor(m, d)) : null,
      controls,
      picking ? el("div", { class: "hint" }, t("reposition.hint")) : null);
  }

  select(id) {
    this.selected = id;
    this.render();
    const m = this.ctx.state.missions.get(id);
    if (m) this.ctx.onSelect(m);
  }

  // Reposition: the next click on the map picks the point (the map calls mapClicked).
  pickPoint(missionId) {
    this.picking = missionId;
    document.body.classList.toggle("picking-point", missionId !== null);
    this.render();
  }

  mapClicked(latlng) {
    const m = this.picking !== null ? this.ctx.state.missions.get(this.picking) : null;
    this.pickPoint(null);
    if (m) this.command(m, "reposition", { lat: +latlng.lat.toFixed(7), lon: +latlng.lng.toFixed(7) });
  }

  async command(m, c, extra = {}) {
    const question = c === "reposition"
      ? t("confirm.reposition", { drone: m.drone_id, ll: `${extra.lat.toFixed(5)}, ${extra.lon.toFixed(5)}` })
      : t("confirm.command", { cmd: t(c), drone: m.drone_id });
    const form = await modal({
      title: t("confirm.title"), body: el("p", {}, question),
      confirmLabel: `${t("send")}: ${t(c)}`, danger: c === "abort" || c === "land", testid: "command",
    });
    if (!form) return;
    try {
      const updated = await api(`/missions/${m.id}/commands`, { method: "POST", body: { command: c, ...extra } });
      this.ctx.state.missions.set(updated.id, updated);
      this.render();
    } catch (e) { toast(`${t(c)}: ${e.message}`, "warning"); }
  }
}

// Live progress from the vehicle's own report (drone events), else the mission's last one.
export function progressOf(m, d) {
  if (d && d.mission_id === m.id && d.mission_total) return { seq: d.mission_seq, total: d.mission_total };
  return { seq: m.progress?.seq, total: m.progress?.total };
}

function cell(label, value, cls = "") {
  return el("span", { class: `kv ${cls}` }, el("span", { class: "k" }, label), el("span", { class: "v" }, value));
}

export function renderDrones(state, onClick) {
  const rows = [...state.drones.values()].sort((a, b) => a.sysid - b.sysid).map((d) =>
    el("tr", { dataset: { drone: d.id, state: d.state }, onclick: () => onClick(d.id) },
      el("td", {}, el("span", { class: `dot ds-${d.state}` }), d.id),
      el("td", {}, tOr(`ds.${d.state}`, d.state)),
      el("td", { class: `num${d.battery != null && d.battery < 25 ? " bad" : ""}` }, fmt.pct(d.battery)),
      el("td", { class: "num" }, fmt.m(d.position?.alt)),
      el("td", { class: d.link.ok ? "ok" : "bad" }, d.link.ok ? "●" : "○")));
  $("#drones tbody").replaceChildren(...rows);
}
