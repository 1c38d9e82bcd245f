// The tester's page (scenarios and reports) and the administrator's page (accounts, drone
// maintenance). Both only call routes the server's OpenAPI schema lists.
import { api, apiBlob } from "./api.js";
import { getLang, t, tOr } from "./i18n.js";
import { $, el, modal, toast } from "./ui.js";

// Tester: shipped scenarios with a start button, past runs with their verdict and reports, and
// the running one's output followed every couple of seconds (scenario runs send no events).
const POLL_MS = 2000;
let polling = null;

export async function renderTester(features) {
  const root = $("#tester-body");
  if (!features.scenarios) {
    root.replaceChildren(el("div", { class: "notice", dataset: { testid: "tester-unavailable" } }, t("tester.na")));
    return;
  }
  let data;
  try { data = await api("/scenarios"); } catch (e) { root.replaceChildren(el("div", { class: "notice bad" }, e.message)); return; }
  const running = data.runs.find((r) => r.state === "running");
  const scenarioRows = data.scenarios.map((sc) => el("tr", { dataset: { scenario: sc.name } },
    el("td", {}, el("b", {}, sc.name), sc.valid ? el("div", { class: "muted small" }, sc.title || "") : null),
    el("td", { class: "muted small" }, sc.valid
      ? `${sc.description || ""} · ${t("tester.summary", { i: sc.incidents, f: sc.faults, e: sc.expectations, d: sc.duration_s })}`
      : el("span", { class: "bad" }, sc.error)),
    el("td", {}, el("button", { class: "primary", disabled: !sc.valid || Boolean(running), dataset: { action: "start" },
      onclick: () => startRun(sc.name, features) }, t("tester.start")))));
  const runRows = data.runs.map((r) => el("tr", { dataset: { run: r.id, state: r.state } },
    el("td", {}, r.scenario), el("td", { class: `run-${r.state}` }, t(`run.${r.state}`)),
    el("td", { class: "muted small" }, new Date(r.started_at).toLocaleString(getLang() === "ko" ? "ko-KR" : "en-GB", { hour12: false })),
    el("td", { class: "small" }, r.tests != null ? t("tester.verdict", { n: r.tests, f: r.failures ?? 0 }) : (r.detail || "")),
    el("td", {}, r.report_url ? el("button", { class: "ghost", onclick: () => showFile(r, "report.html") }, t("tester.report")) : null,
      el("button", { class: "ghost", onclick: () => showFile(r, "output.txt") }, t("tester.output")))));
  root.replaceChildren(...[
    el("table", { class: "grid" }, el("tbody", {}, ...scenarioRows)),
    running ? el("section", { class: "notice", dataset: { running: running.id } },
      el("b", {}, `${t("run.running")}: ${running.scenario}`), el("pre", { id: "run-output", class: "output" }, "…")) : null,
    el("h2", {}, t("tester.reports")),
    runRows.length ? el("table", { class: "grid" }, el("tbody", {}, ...runRows)) : el("div", { class: "muted" }, t("tester.none")),
    el("div", { id: "run-file" })].filter(Boolean));
  if (running) follow(running.id, features);
}

async function startRun(name, features) {
  try {
    await api("/scenarios", { method: "POST", body: { name } });
    toast(`${t("tester.start")}: ${name}`);
  } catch (e) { toast(e.message, "warning"); }
  renderTester(features);
}

function follow(runId, features) {
  clearTimeout(polling);
  polling = setTimeout(async () => {
    if ($("#page-tester").hidden) return;
    try {
      const run = await api(`/scenarios/runs/${runId}`);
      const out = await apiBlob(`/scenarios/runs/${runId}/output.txt`);
      const box = $("#run-output");
      if (box && out) box.textContent = (await out.text()).split(/\r|\n/).filter(Boolean).slice(-15).join("\n");
      if (run.state === "running") follow(runId, features);
      else renderTester(features);
    } catch { follow(runId, features); }
  }, POLL_MS);
}

// A report (HTML, else plain text) in a frame that runs no script (sandbox without allow-scripts). The
// frame inherits the page's CSP, which refuses inline <style> and style="": the report's style sheet
// is taken out of the markup (before any parser sees it) and given to the frame as a constructed
// sheet, which the CSP allows.
export function reportFrame(title, text, isHtml) {
  const frame = el("iframe", { class: "report", sandbox: "allow-same-origin", title });
  let css = "pre { color: #dbe4f5; white-space: pre-wrap; }\n";
  const escape = (x) => x.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]);
  frame.srcdoc = isHtml
    ? text.replace(/<style\b[^>]*>([\s\S]*?)<\/style>/gi, (_, sheet) => { css += sheet + "\n"; return ""; })
      .replace(/<script\b[\s\S]*?<\/script>/gi, "")
      .replace(/\sstyle\s*=\s*("[^"]*"|'[^']*')/gi, "")
    : `<pre>${escape(text)}</pre>`;
  frame.addEventListener("load", () => {
    const sheet = new frame.contentWindow.CSSStyleSheet();
    sheet.replaceSync(css);
    frame.contentDocument.adoptedStyleSheets = [sheet];
  }, { once: true });
  return frame;
}

// Reports need the bearer token, so they are fetched and shown in a sandboxed frame.
async function showFile(run, name) {
  try {
    const blob = await apiBlob(`/scenarios/runs/${run.id}/${name}`);
    const box = $("#run-file");
    if (!blob) { box.replaceChildren(el("div", { class: "muted" }, t("tester.nofile"))); return; }
    const frame = reportFrame(`${run.scenario} · ${name}`, await blob.text(), name.endsWith(".html"));
    box.replaceChildren(el("h2", {}, `${run.scenario} · ${name}`), frame);
  } catch (e) { toast(e.message, "warning"); }
}

export async function renderAdmin(state) {
  const root = $("#admin-body");
  let users = [];
  try { users = await api("/admin/users"); } catch (e) { root.replaceChildren(el("div", { class: "notice bad" }, e.message)); return; }
  const userRows = users.map((u) => el("tr", { dataset: { user: u.username } },
    el("td", {}, u.username), el("td", {}, t(`role.${u.role}`)), el("td", {}, u.district || t("admin.city")),
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
    el("label", {}, t("admin.district"), el("select", { name: "district" }, el("option", { value: "" }, t("admin.city")),
      ...districtOptions(state))),
    el("label", {}, t("login.password"), el("input", { name: "password", type: "password", minlength: 12, required: true, autocomplete: "new-password" })));
  const form = await modal({ title: t("admin.add"), body, confirmLabel: t("admin.add") });
  if (!form) return;
  const fields = Object.fromEntries(form.entries());
  if (!fields.district) delete fields.district;  // none: the whole city (operators and pilots may take one)
  try {
    await api("/admin/users", { method: "POST", body: fields });
    renderAdmin(state);
  } catch (e) { toast(e.message, "warning"); }
}

// The city's districts an operator or pilot may be held to (the IFEZ districts of the outlines file).
function districtOptions(state) {
  const features = state.districts?.features || [];
  return features.filter((f) => f.properties?.kind === "ifez_district")
    .map((f) => el("option", { value: f.properties.id }, f.properties.name_en || f.properties.id));
}
