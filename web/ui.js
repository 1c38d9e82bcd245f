// Small DOM helpers shared by the panels: element builder, times, and a modal dialog that
// returns a promise (native confirm()/prompt() block the page and cannot be styled or translated).
import { getLang, t } from "./i18n.js";

export const $ = (sel, root = document) => root.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(e.style, v);
    else if (k === "value") e.value = v;
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c.nodeType ? c : String(c));
  return e;
}

export function ago(iso, now = Date.now()) {
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  const txt = s < 60 ? `${s.toFixed(0)}${t("unit.s")}` : s < 3600 ? `${Math.floor(s / 60)}${t("unit.m")}` : `${(s / 3600).toFixed(1)}${t("unit.h")}`;
  return t("ago", { t: txt });
}

export function clockTime(iso) {
  return new Date(iso).toLocaleTimeString(getLang() === "ko" ? "ko-KR" : "en-GB", { hour12: false });
}

export const fmt = {
  pct: (v) => (v == null ? "–" : `${v.toFixed(0)}%`),
  m: (v) => (v == null ? "–" : `${v.toFixed(0)} m`),
  ms: (v) => (v == null ? "–" : `${v.toFixed(1)} m/s`),
  deg: (v) => (v == null ? "–" : `${v.toFixed(0)}°`),
  ll: (lat, lon) => `${lat.toFixed(5)}, ${lon.toFixed(5)}`,
};

// A modal built on <dialog>. `body` is a node (form fields); resolves with the FormData on
// confirm, or null on cancel/Escape.
export function modal({ title, body = null, confirmLabel = t("ok"), danger = false, testid = "modal" }) {
  return new Promise((resolve) => {
    const form = el("form", { method: "dialog", class: "modal-form" },
      el("h3", {}, title), body,
      el("div", { class: "actions end" },
        el("button", { type: "button", class: "ghost", dataset: { role: "cancel" }, onclick: () => finish(null) }, t("cancel")),
        el("button", { type: "submit", class: danger ? "danger solid" : "primary", dataset: { role: "confirm" } }, confirmLabel)));
    const dlg = el("dialog", { class: "modal", dataset: { testid } }, form);
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      resolve(value);
    };
    form.addEventListener("submit", (e) => { e.preventDefault(); finish(new FormData(form)); });
    dlg.addEventListener("cancel", (e) => { e.preventDefault(); finish(null); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// Transient notice in the corner (information only; anything that needs action is an alert).
export function toast(message, level = "info") {
  const box = el("div", { class: `toast ${level}`, role: "status" }, message);
  $("#toasts").append(box);
  setTimeout(() => box.remove(), level === "info" ? 5000 : 9000);
  while ($("#toasts").children.length > 4) $("#toasts").firstChild.remove();
}

// Live panels re-render several times a second; a press on a button must not be lost when
// its node is replaced mid-click. While the pointer is down inside `root`, rendering waits.
export function holdWhilePressed(root, render) {
  let held = false, pending = false;
  root.addEventListener("pointerdown", () => { held = true; });
  window.addEventListener("pointerup", () => {
    if (!held) return;
    held = false;
    if (pending) { pending = false; setTimeout(render, 0); }
  }, true);
  return () => { if (held) { pending = true; return true; } return false; };
}
