// The tester's page (scenarios and reports) and the administrator's page (accounts, drone
// maintenance). Both only call routes the server's OpenAPI schema lists.
import { api } from "./api.js";
import { t, tOr } from "./i18n.js";
import { $, el, modal, toast } from "./ui.js";

export async function renderTester(features) {
  const root = $("#tester-body");
  if (!features.scenarios) {
    root.replaceChildren(el("div", { class: "notice", dataset: { testid: "tester-unavailable" } }, t("tester.na")));
    return;
  }
  let scenarios = [];
  try { scenarios = await api("/scenarios"); } catch (e) { root.replaceChildren(el("div", { class: "notice bad" }, e.message)); return; }
  if (!scenarios.length) { root.replaceChildren(el("div", { class: "notice" }, t("tester.empty"))); return; }
  root.replaceChildren(el("table", { class: "grid" }, el("tbody", {}, ...scenarios.map((s) => {
    const name = s.name || s.id;
    return el("tr", {}, el("td", {}, name), el("td", { class: "muted" }, s.description || ""),
      el("td", {}, el("button", { class: "primary", onclick: async () => {
        try { await api(`/scenarios/${encodeURIComponent(name)}/runs`, { method: "POST", body: {} }); toast(`${t("tester.start")}: ${name}`); }
        catch (e) { toast(e.message, "warning"); }
      } }, t("tester.start"))));
  }))));
}

export async function renderAdmin(state) {
  const root = $("#admin-body");
  let users = [];
  try { users = await api("/admin/users"); } catch (e) { root.replaceChildren(el("div", { class: "notice bad" }, e.message)); return; }
  const userRows = users.map((u) => el("tr", { dataset: { user: u.username } },
    el("td", {}, u.username), el("td", {}, t(`role.${u.role}`)),
    el("td", { class: u.disabled ? "bad" : "ok" }, u.disabled ? t("admin.disabled") : t("admin.active")),
    el("td", {}, el("button", { class: "ghost", onclick: async () => {
      try { await api(`/admin/users/${encodeURIComponent(u.username)}/${u.disabled ? "enable" : "disable"}`, { method: "POST" }); renderAdmin(state); }
      catch (e) { toast(e.message, "warning"); }
    } }, u.disabled ? t("admin.enable") : t("admin.disable")))));
  const droneRows = [...state.drones.values()].sort((a, b) => a.sysid - b.sysid).map((d) => el("tr", { dataset: { drone: d.id } },
    el("td", {}, d.id), el("td", {}, tOr(`ds.${d.state}`, d.state)),
    el("td", {}, el("button", { class: "ghost", onclick: async () => {
      try {
        const updated = await api(`/admin/drones/${encodeURIComponent(d.id)}/maintenance`, { method: "PUT", body: { maintenance: d.state !== "maintenance" } });
        state.drones.set(updated.id, updated);
        renderAdmin(state);
      } catch (e) { toast(e.message, "warning"); }
    } }, d.state === "maintenance" ? t("admin.maint.off") : t("admin.maint.on")))));
  root.replaceChildren(
    el("section", {}, el("h2", {}, t("admin.users")),
      el("table", { class: "grid" }, el("tbody", {}, ...userRows)),
      el("button", { class: "primary", onclick: () => addUser(state) }, t("admin.add"))),
    el("section", {}, el("h2", {}, t("admin.drones")), el("table", { class: "grid" }, el("tbody", {}, ...droneRows))));
}

async function addUser(state) {
  const body = el("div", { class: "form-grid" },
    el("label", {}, t("admin.name"), el("input", { name: "username", required: true, pattern: "[A-Za-z0-9_.\\-]+" })),
    el("label", {}, t("admin.role"), el("select", { name: "role" }, ...["operator", "pilot", "tester", "admin"].map((r) => el("option", { value: r }, t(`role.${r}`))))),
    el("label", {}, t("login.password"), el("input", { name: "password", type: "password", minlength: 8, required: true })));
  const form = await modal({ title: t("admin.add"), body, confirmLabel: t("admin.add") });
  if (!form) return;
  try {
    await api("/admin/users", { method: "POST", body: Object.fromEntries(form.entries()) });
    renderAdmin(state);
  } catch (e) { toast(e.message, "warning"); }
}
