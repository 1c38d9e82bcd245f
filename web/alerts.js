// Alerts that cannot be missed: link lost, low battery, failsafe, failed missions. Each is a
// persistent banner that flashes (no sound) until someone acknowledges it; a repeat of the
// same alert for the same drone bumps a counter instead of stacking banners.
//
// Besides the server's alert events, the view watches the drone stream itself for a low
// battery in flight and for a vehicle that switched to RTL/LAND on its own (a failsafe).
import { t } from "./i18n.js";
import { $, clockTime, el, toast } from "./ui.js";

const LOW_BATTERY_PCT = 25;
const FAILSAFE_MODES = /RTL|LAND|RETURN/i;
const FAILSAFE_GRACE_MS = 3000; // a pilot's own RTL changes the mission state within this time
const FLYING_MISSION = ["launching", "enroute", "on_scene"];

export class Alerts {
  constructor(root, { onFocus } = {}) {
    this.root = root;
    this.onFocus = onFocus;
    this.open = new Map(); // key → {data, count, node}
    this.batteryWarned = new Set();
    this.lastMode = new Map();
  }

  // From the server's alert event ({level, code, message, drone_id, mission_id, at}).
  raise(a) {
    if (a.level === "info") { toast(this.text(a), "info"); this.clear(a.drone_id, "link_lost"); return; }
    const key = `${a.code}:${a.drone_id || ""}:${a.code === "mission_failed" ? a.mission_id : ""}`;
    const existing = this.open.get(key);
    if (existing) {
      existing.count += 1;
      existing.data = a;
      this.render(existing);
      return;
    }
    const entry = { key, data: a, count: 1, node: el("div") };
    this.open.set(key, entry);
    this.render(entry);
    this.root.prepend(entry.node);
    document.body.classList.add("has-alerts");
  }

  text(a) {
    const vars = { drone: a.drone_id || "", mission: a.mission_id ?? "", v: a.value ?? "" };
    const known = ["link_lost", "link_recovered", "battery_low", "failsafe", "mission_failed", "vehicle_message"];
    return known.includes(a.code) ? t(`alert.${a.code}`, vars) : t("alert.other");
  }

  // The server's own wording adds something only where it carries a reason or the vehicle's text.
  detail(a) {
    if (!a.message || ["link_lost", "link_recovered"].includes(a.code)) return "";
    return a.message === this.text(a) ? "" : a.message;
  }

  render(entry) {
    const a = entry.data;
    const node = el("div", {
      class: `alert ${a.level} flashing`, role: "alert", dataset: { code: a.code, drone: a.drone_id || "", key: entry.key },
      onclick: (e) => { if (e.target.tagName !== "BUTTON" && this.onFocus) this.onFocus(a); },
    },
      el("span", { class: "alert-icon" }, "!"),
      el("b", {}, this.text(a)),
      this.detail(a) ? el("span", { class: "alert-msg" }, this.detail(a)) : null,
      entry.count > 1 ? el("span", { class: "badge" }, t("alert.count", { n: entry.count })) : null,
      el("span", { class: "muted small" }, clockTime(a.at)),
      el("span", { class: "spacer" }),
      el("button", { class: "ack", dataset: { action: "ack" }, onclick: () => this.ack(entry.key) }, t("ack")));
    entry.node.replaceWith(node);
    entry.node = node;
  }

  ack(key) {
    const entry = this.open.get(key);
    if (!entry) return;
    entry.node.remove();
    this.open.delete(key);
    if (!this.open.size) document.body.classList.remove("has-alerts");
  }

  // A recovered link stops the flashing of its "lost" banner but keeps it until acknowledged.
  clear(droneId, code) {
    const entry = this.open.get(`${code}:${droneId || ""}:`);
    if (entry) entry.node.classList.remove("flashing");
  }

  relabel() { for (const entry of this.open.values()) this.render(entry); }

  // Watch a drone update; `missionOf(droneId)` gives its active mission, if any.
  watchDrone(d, missionOf) {
    if (d.landed) this.batteryWarned.delete(d.id);
    else if (d.battery != null && d.battery < LOW_BATTERY_PCT && !this.batteryWarned.has(d.id)) {
      this.batteryWarned.add(d.id);
      this.raise({ level: d.battery < 15 ? "critical" : "warning", code: "battery_low", message: "", drone_id: d.id,
        mission_id: d.mission_id, value: `${d.battery.toFixed(0)}%`, at: new Date().toISOString() });
    }
    const prev = this.lastMode.get(d.id);
    this.lastMode.set(d.id, d.mode);
    if (d.mode && d.mode !== prev && FAILSAFE_MODES.test(d.mode) && !d.landed) {
      const mode = d.mode;
      setTimeout(() => {
        const m = missionOf(d.id);
        if (m && FLYING_MISSION.includes(m.state) && this.lastMode.get(d.id) === mode) {
          this.raise({ level: "critical", code: "failsafe", message: "", drone_id: d.id, mission_id: m.id, value: mode,
            at: new Date().toISOString() });
        }
      }, FAILSAFE_GRACE_MS);
    }
  }
}

export function connectionBanner(state) {
  $("#conn-banner").hidden = state === "open";
}
