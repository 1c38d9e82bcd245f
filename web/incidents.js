// The incident queue: cards sorted by severity then age, each with what the operator needs to
// decide (category, source, time, place, camera snapshot, recommended drone with ETA and why)
// and the actions: one-click dispatch with the template preset, dispatch with another drone or
// template, close with an outcome.
import { api, apiBlob } from "./api.js";
import { incidentCamera } from "./cctv.js";
import { getLang, t, tOr } from "./i18n.js";
import { openShareLinks } from "./share-links.js";
import { $, ago, clockTime, el, fmt, holdWhilePressed, modal, toast } from "./ui.js";
import { CameraPlayers } from "./video.js";

const SNAPSHOT_REFRESH_MS = 10000;
// The report's snapshot may be stored a moment after the incident: its view is read again a few times.
const REPORT_SHOT_RETRIES = 5, REPORT_SHOT_RETRY_MS = 2000;
const COVERAGE_REFRESH_MS = 5000;

export class IncidentQueue {
  constructor(ctx) {
    this.ctx = ctx; // {state, can(), templates, features, onSelect(incident)}
    this.views = new Map(); // incident id → GET /incidents/{id} (recommendation list)
    this.thumbs = new Map(); // drone id → {url, at}
    this.selected = null;
    this.held = holdWhilePressed($("#incidents"), () => this.render());
    this.cameras = new CameraPlayers(Boolean(ctx.features.cameraVideo)); // "incident:camera" → live player on a card
    this.reportShots = new Map(); // evidence id → object URL of the snapshot taken at the report
    this.coverage = new Map(); // incident id → {at, data, loading}: GET /incidents/{id}/coverage
    this.shotTries = new Map(); // incident id → views read again while waiting for that snapshot
  }

  // The fleet-wide plan (GET /assignments) matters once several incidents wait: it may give an
  // incident another drone than its own best one, and proposes pre-emptions that a person confirms.
  refreshPlan() {
    const waiting = [...this.ctx.state.incidents.values()].filter((i) => i.status === "open").length;
    if (waiting < 2) { this.plan = null; this.render(); return; }
    if (this.planning) { this.planAgain = true; return; }
    this.planning = true;
    api("/assignments").then((plan) => { this.plan = plan; }).catch(() => { this.plan = null; }).finally(() => {
      this.planning = false;
      this.render();
      if (this.planAgain) { this.planAgain = false; this.refreshPlan(); }
    });
  }

  // Recommendations are fetched one at a time, each id once per burst: a reconnect with fifty
  // open incidents costs the server fifty sequential requests, not fifty at once.
  refresh(id) {
    this.pending = this.pending || new Map();
    if (!this.pending.has(id)) this.pending.set(id, []);
    const done = new Promise((resolve) => this.pending.get(id).push(resolve));
    if (!this.fetching) this.drain();
    return done;
  }

  async drain() {
    this.fetching = true;
    while (this.pending.size) {
      const [id, waiters] = this.pending.entries().next().value;
      this.pending.delete(id);
      try { this.views.set(id, await api(`/incidents/${id}`)); } catch { this.views.set(id, { recommendation: [] }); }
      this.render();
      for (const resolve of waiters) resolve();
    }
    this.fetching = false;
  }

  forget(id) { this.views.delete(id); }

  presetTemplate(category) {
    const tpls = this.ctx.templates;
    return tpls.find((x) => x.default_for.includes(category))
      || tpls.find((x) => x.name === "hover_roi") || tpls.find((x) => x.name === "overwatch") || null;
  }

  tplTitle(tpl) { return tpl ? (getLang() === "ko" ? tpl.title.ko : tpl.title.en) : "–"; }

  sorted() {
    return [...this.ctx.state.incidents.values()].filter((i) => i.status !== "closed")
      .sort((a, b) => b.severity - a.severity || Date.parse(a.created_at) - Date.parse(b.created_at));
  }

  render() {
    if (this.held()) return;
    const list = this.sorted();
    $("#queue-count").textContent = list.length;
    $("#incidents").replaceChildren(...list.map((i) => this.card(i)));
    this.cameras.retain(new Set(list.filter((i) => i.camera_id).map((i) => `${i.id}:${i.camera_id}`)));
  }

  // The camera that raised the incident: live beside its snapshot from the moment of the report.
  cameraBlock(i, camera, view) {
    if (!camera || !["cctv", "ptz"].includes(camera.kind || "cctv")) return null;
    if (view && !view.evidence?.some((e) => e.mission_id == null) && i.status === "open") {
      const wait = this.shotTries.get(i.id) || { n: 0, timer: null };
      if (!wait.timer && wait.n < REPORT_SHOT_RETRIES) {
        wait.n += 1;
        wait.timer = setTimeout(() => {
          wait.timer = null;
          if (this.ctx.state.incidents.get(i.id)?.status === "open") this.refresh(i.id);
        }, REPORT_SHOT_RETRY_MS);
      }
      this.shotTries.set(i.id, wait);
    }
    return incidentCamera(i.id, camera, this.cameras.get(camera, `${i.id}:${camera.id}`), view, this.reportShots,
      () => this.render(), { direct: this.ctx.features.reportSnapshot });
  }

  card(i) {
    const { state, can } = this.ctx;
    const view = this.views.get(i.id);
    const recs = view?.recommendation || [];
    const best = recs.find((c) => c.eligible);
    const planned = this.plan?.assignments.find((a) => a.incident_id === i.id);
    const unassigned = this.plan?.unassigned.find((u) => u.incident_id === i.id);
    const preemptions = (this.plan?.preemptions || []).filter((p) => p.to_incident === i.id);
    // what one click sends: the plan's drone when there is a plan, else the incident's best
    const rec = planned ? { drone_id: planned.drone_id, eta_s: planned.eta_s, reason: planned.reason, planned: true } : best;
    const mission = [...state.missions.values()].filter((m) => m.incident_id === i.id).sort((a, b) => b.id - a.id)[0];
    const tpl = this.presetTemplate(i.category);
    let recLine = null;
    if (i.status === "open") {
      if (rec) {
        recLine = el("div", { class: "rec", dataset: { recommended: rec.drone_id } },
          el("span", { class: "muted" }, `${t(rec.planned ? "planned" : "recommended")} `), el("b", {}, rec.drone_id),
          ` · ${t("eta")} ${(rec.eta_s / 60).toFixed(1)} ${t("min")}`,
          el("div", { class: "muted small" }, getLang() === "ko" ? rec.reason.ko : rec.reason.en),
          el("div", { class: "muted small" }, `${t("template")}: ${this.tplTitle(tpl)}`),
          unassigned ? el("div", { class: "warn-text small" }, `${t("planned")}: ${t("plan.waiting")} · ${unassigned.reason}`) : null);
      } else if (unassigned) {
        recLine = el("div", { class: "rec bad small" }, `${t("plan.waiting")}: ${unassigned.reason}`);
      } else if (view) {
        // nobody can launch now: say why, the drone ready soonest first ("dd-03 ready in 6 min")
        const held = recs.filter((c) => !c.eligible && c.reason.code !== "not_ready")
          .sort((a, b) => (a.reason.params.ready_in_s ?? Infinity) - (b.reason.params.ready_in_s ?? Infinity));
        recLine = el("div", { class: "rec bad small" }, t("no.drone"), view.recommendation_error ? ` · ${view.recommendation_error}` : "",
          ...held.slice(0, 3).map((c) => el("div", { class: "muted", dataset: { held: c.drone_id } },
            `${c.drone_id}: ${getLang() === "ko" ? c.reason.ko : c.reason.en}`)));
      }
    } else if (mission) {
      recLine = el("div", { class: "rec" }, el("b", {}, mission.drone_id), " ",
        el("span", { class: `state st-${mission.state}` }, tOr(`st.${mission.state}`, mission.state)));
    }
    // a snapshot once the drone is under way (its camera stream runs from launch)
    // under continuous overwatch the drone on scene, whichever mission is newest
    const thumbDrone = i.on_scene_drone_id
      || (mission && ["enroute", "on_scene", "returning"].includes(mission.state) ? mission.drone_id : null);
    const buttons = can.dispatch() ? el("div", { class: "actions" },
      i.status === "open" ? el("button", { class: "primary", dataset: { action: "dispatch" }, disabled: !rec,
        onclick: () => this.dispatch(i, rec?.planned ? { drone_id: rec.drone_id } : {}) }, `${t("dispatch")}${rec ? " · " + rec.drone_id : ""}`) : null,
      ...(i.status === "open" ? preemptions : []).map((p) => el("button", { class: "warn", dataset: { action: "preempt", drone: p.drone_id },
        title: p.reason, onclick: () => this.preempt(i, p) }, t("preempt.button", { drone: p.drone_id, from: p.from_incident }))),
      i.status === "open" ? el("button", { class: "ghost", dataset: { action: "dispatch-options" }, onclick: () => this.dispatchOptions(i) }, t("dispatch.options")) : null,
      el("button", { class: "ghost", dataset: { action: "close" }, onclick: () => this.close(i) }, t("close"))) : null;
    const camera = i.camera_id ? this.ctx.state.cameras.find((c) => c.id === i.camera_id) : null;
    const camName = camera ? (getLang() === "ko" ? camera.name_ko : camera.name_en) : i.camera_id;
    return el("li", {
      class: `card incident sev-${i.severity}${this.selected === i.id ? " selected" : ""}`,
      dataset: { incident: i.id, status: i.status },
      onclick: (e) => { if (e.target.tagName !== "BUTTON") this.select(i.id); },
    },
      el("div", { class: "card-head" },
        el("span", { class: "cat" }, tOr(`cat.${i.category}`, i.category)),
        el("span", { class: `sev sev-chip-${i.severity}` }, t(`sev.${i.severity}`)),
        el("span", { class: `inc-status is-${i.status}` }, t(`inc.${i.status}`)),
        el("span", { class: "spacer" }),
        el("span", { class: "muted small", title: i.created_at }, `#${i.id} · ${clockTime(i.created_at)} · ${ago(i.created_at)}`)),
      el("div", { class: "card-body" },
        el("div", { class: "card-text" },
          i.description ? el("div", { class: "desc" }, i.description) : null,
          el("div", { class: "muted small" }, `${t("source")}: ${tOr(`src.${i.source}`, i.source)}`,
            i.report_count > 1 ? ` · ${t("reports", { n: i.report_count })}` : ""),
          el("div", { class: "muted small" }, `${t("location")}: ${fmt.ll(i.location.lat, i.location.lon)}`),
          camName ? el("div", { class: "muted small" }, `${t("camera")}: ${camName}`) : null),
        thumbDrone && this.ctx.features.snapshot ? this.thumb(thumbDrone) : null),
      this.cameraBlock(i, camera, view), this.coverageBlock(i),
      this.reportsBlock(i, view), this.recordButtons(i),
      recLine, buttons);
  }

  // Continuous overwatch: the drone on scene now and the coverage timeline (each drone's time over
  // the scene, hand-overs, gaps), read from the service at most every few seconds while shown.
  coverageBlock(i) {
    if (!i.coverage_mode || i.coverage_mode === "none") return null;
    const ko = getLang() === "ko";
    const cached = this.coverage.get(i.id);
    if (!cached || (Date.now() - cached.at > COVERAGE_REFRESH_MS && !cached.loading)) {
      const entry = { at: Date.now(), data: cached?.data || null, loading: true };
      this.coverage.set(i.id, entry);
      api(`/incidents/${i.id}/coverage`).then((data) => { entry.data = data; }).catch(() => {})
        .finally(() => { entry.loading = false; entry.at = Date.now(); this.render(); });
    }
    const data = cached?.data;
    const until = i.coverage_mode === "until_closed" ? (ko ? "종결 시까지" : "until closed")
      : i.coverage_until ? `${ko ? "종료" : "until"} ${clockTime(i.coverage_until)}` : (ko ? "현장 도착 후 시작" : "from first arrival");
    const head = el("div", { class: "muted" }, `${ko ? "연속 감시" : "Continuous overwatch"} · ${until}`,
      i.on_scene_drone_id ? ` · ${ko ? "현장" : "on scene"}: ${i.on_scene_drone_id}` : "");
    const strip = el("div", { class: "coverage-strip", dataset: { coverage: i.id } });
    const intervals = data?.intervals || [];
    const gaps = data?.gaps || [];
    const times = [...intervals, ...gaps].flatMap((x) => [Date.parse(x.start), Date.parse(x.end || new Date().toISOString())]);
    if (times.length) {
      const t0 = Math.min(...times), span = Math.max(Math.max(...times) - t0, 1);
      const bar = (x, cls, label) => {
        const start = Date.parse(x.start), end = Date.parse(x.end || new Date().toISOString());
        const b = el("span", { class: cls, title: `${label} ${clockTime(x.start)}–${x.end ? clockTime(x.end) : "…"}` }, label);
        b.style.left = `${((start - t0) / span) * 100}%`;  // CSSOM, allowed by the page's CSP
        b.style.width = `${Math.max(((end - start) / span) * 100, 1)}%`;
        return b;
      };
      intervals.forEach((x, k) => strip.append(bar(x, `cov-drone cov-row-${k % 2}`, x.drone_id || "")));
      gaps.forEach((x) => strip.append(bar(x, "cov-gap", ko ? "공백" : "gap")));
    }
    const handovers = data?.handovers || [];
    return el("div", { class: "coverage small", dataset: { coverageMode: i.coverage_mode } }, head, strip,
      el("div", { class: "muted", dataset: { handovers: handovers.length, gaps: gaps.length } },
        ko ? `인계 ${handovers.length}회 · 공백 ${gaps.length}회` : `hand-overs: ${handovers.length} · gaps: ${gaps.length}`));
  }

  // The reports merged into the incident: where each came from, how far from the incident and
  // when; operators may split one out into an incident of its own (the drone goes to the first).
  reportsBlock(i, view) {
    const reports = view?.reports || [];
    if (reports.length < 2) return null;
    const ko = getLang() === "ko";
    const splittable = i.status !== "closed" && this.ctx.can.dispatch();
    return el("div", { class: "merged-reports small", dataset: { reports: reports.length } },
      el("div", { class: "muted" }, tOr("reports.merged", ko ? "병합된 보고" : "Merged reports")),
      el("ul", {}, ...reports.map((r, n) => el("li", { dataset: { report: r.id } },
        el("span", { class: "src" }, tOr(`src.${r.source}`, r.source)),
        el("span", { class: "muted dist" }, ` · ${fmt.m(r.distance_m)}`),
        el("span", { class: "muted", title: r.received_at }, ` · ${clockTime(r.received_at)}`),
        r.description ? el("span", { class: "muted" }, ` · ${r.description}`) : null,
        splittable && n > 0 ? el("button", { class: "ghost small", dataset: { action: "split", report: r.id },
          title: ko ? "이 보고를 새 사건으로 분리" : "Move this report into an incident of its own",
          onclick: () => this.split(i, r) }, ko ? "분리" : "Split") : null))));
  }

  // The incident record (HTML, or its PDF), fetched with the session's token and opened in a new tab.
  recordButtons(i) {
    const ko = getLang() === "ko";
    const open = async (pdf) => {
      const tab = window.open("", "_blank");
      try {
        const blob = await apiBlob(`/incidents/${i.id}/record${pdf ? "?format=pdf" : ""}`);
        if (!blob) throw new Error("404");
        if (tab) tab.location.href = URL.createObjectURL(blob);
      } catch (e) {
        if (tab) tab.close();
        toast(`${ko ? "사건 기록" : "Record"} #${i.id}: ${e.message}`, "warning");
      }
    };
    return el("div", { class: "record-links small" },
      el("button", { class: "ghost small", dataset: { action: "record" }, onclick: () => open(false) }, ko ? "사건 기록" : "Record"),
      el("button", { class: "ghost small", dataset: { action: "record-pdf" }, onclick: () => open(true) }, "PDF"),
      // a view-only link for the crews going to the scene: operators and pilots make them
      this.ctx.can.dispatch() || this.ctx.can.command()
        ? el("button", { class: "ghost small", dataset: { action: "share" }, onclick: () => openShareLinks(i.id) },
          ko ? "공유 링크" : "Share link")
        : null);
  }

  async split(i, r) {
    const ko = getLang() === "ko";
    const body = el("p", {}, ko
      ? `보고 #${r.id} (${r.source}, ${fmt.m(r.distance_m)})를 새 사건으로 분리합니다.`
      : `Report #${r.id} (${r.source}, ${fmt.m(r.distance_m)} away) becomes an incident of its own.`);
    const form = await modal({ title: ko ? `사건 #${i.id}: 보고 분리` : `Incident #${i.id}: split a report`, body,
      confirmLabel: ko ? "분리" : "Split", testid: "split" });
    if (!form) return;
    try {
      const res = await api(`/incidents/${i.id}/reports/${r.id}/split`, { method: "POST" });
      for (const inc of [res.incident, res.new_incident]) this.ctx.state.incidents.set(inc.id, inc);
      toast(ko ? `새 사건 #${res.new_incident.id}` : `New incident #${res.new_incident.id}`);
      this.refresh(i.id);
      this.refresh(res.new_incident.id);
    } catch (e) {
      toast(`${ko ? "분리" : "Split"} #${i.id}: ${e.message}`, "warning");
    }
  }

  // Camera snapshot of the drone on the incident, refreshed every few seconds; the route may
  // answer 404 until the first frame arrives, which shows as an empty frame, never an error.
  thumb(droneId) {
    const cached = this.thumbs.get(droneId);
    const img = el("img", { class: "thumb", alt: t("snapshot.none"), dataset: { snapshot: droneId } });
    if (cached?.url) img.src = cached.url;
    if (!cached || Date.now() - cached.at > SNAPSHOT_REFRESH_MS) {
      this.thumbs.set(droneId, { url: cached?.url, at: Date.now() });
      apiBlob(`/drones/${encodeURIComponent(droneId)}/snapshot.jpg`).then((blob) => {
        if (!blob) return;
        if (cached?.url) URL.revokeObjectURL(cached.url);
        this.thumbs.set(droneId, { url: URL.createObjectURL(blob), at: Date.now() });
        this.render();
      }).catch(() => {});
    }
    return el("div", { class: "thumb-box" }, img);
  }

  select(id) {
    this.selected = id;
    const i = this.ctx.state.incidents.get(id);
    this.render();
    if (i) this.ctx.onSelect(i);
  }

  async dispatch(i, body) {
    try {
      const m = await api(`/incidents/${i.id}/dispatch`, { method: "POST", body });
      this.ctx.state.missions.set(m.id, m);
      toast(t("dispatch.sent", { drone: m.drone_id, id: i.id }));
      this.ctx.onDispatched(m);
    } catch (e) {
      toast(`${t("dispatch.failed")} #${i.id}: ${e.message}`, "warning");
      this.refresh(i.id);
    }
  }

  async preempt(i, p) {
    const body = el("div", {}, el("p", {}, t("preempt.confirm", { drone: p.drone_id, from: p.from_incident, to: i.id,
      eta: (p.eta_s / 60).toFixed(1) })), el("p", { class: "muted small" }, p.reason));
    const form = await modal({ title: t("preempt.title"), body, confirmLabel: t("dispatch"), danger: true, testid: "preempt" });
    if (form) await this.dispatch(i, { drone_id: p.drone_id, preempt: true });
  }

  async dispatchOptions(i) {
    await this.refresh(i.id);
    const recs = this.views.get(i.id)?.recommendation || [];
    const best = recs.find((c) => c.eligible);
    const droneSel = el("select", { name: "drone_id", dataset: { field: "drone" } },
      ...recs.map((c) => el("option", { value: c.drone_id, disabled: !c.eligible, selected: best && c.drone_id === best.drone_id },
        c.eligible ? `${c.drone_id} · ${t("eta")} ${(c.eta_s / 60).toFixed(1)} ${t("min")}`
          : `${c.drone_id} · ${getLang() === "ko" ? c.reason.ko : c.reason.en}`)));
    const preset = this.presetTemplate(i.category);
    const tplSel = el("select", { name: "template", dataset: { field: "template" } },
      ...this.ctx.templates.filter((x) => x.categories.includes(i.category)).map((x) =>
        el("option", { value: x.name, selected: preset && x.name === preset.name }, `${this.tplTitle(x)} (${x.name})`)));
    const body = el("div", { class: "form-grid" },
      el("label", {}, t("dispatch.drone"), droneSel), el("label", {}, t("dispatch.template"), tplSel));
    const form = await modal({ title: t("dispatch.title", { id: i.id }), body, confirmLabel: t("dispatch"), testid: "dispatch" });
    if (!form) return;
    await this.dispatch(i, { drone_id: form.get("drone_id") || undefined, template: form.get("template") || undefined });
  }

  async close(i) {
    const outcomes = ["resolved", "false_alarm", "handed_over", "no_action", "other"];
    const body = el("div", { class: "form-grid" },
      el("label", {}, t("close.outcome"), el("select", { name: "outcome", dataset: { field: "outcome" } },
        ...outcomes.map((o) => el("option", { value: o }, t(`outcome.${o}`))))),
      el("label", {}, t("close.note"), el("input", { name: "note", maxlength: 400 })));
    // the structured close the statistics count: an outcome code (suggested by the outcome) and who was first on scene
    const codeOf = { resolved: "cleared_without_patrol", no_action: "cleared_without_patrol", false_alarm: "false_alarm",
      handed_over: "escalated", other: "other" };
    const code = el("select", { name: "outcome_code", dataset: { field: "outcome_code" } },
      ...["cleared_without_patrol", "escalated", "false_alarm", "other"].map((c) => el("option", { value: c }, t(`code.${c}`))));
    const first = el("select", { name: "first_on_scene", dataset: { field: "first_on_scene" } },
      ...["drone", "patrol", "none"].map((c) => el("option", { value: c }, t(`first.${c}`))));
    first.value = i.status === "dispatched" ? "drone" : "none";
    const outcomeSelect = body.querySelector("select[name=outcome]");
    code.value = codeOf[outcomeSelect.value];
    outcomeSelect.addEventListener("change", () => { code.value = codeOf[outcomeSelect.value] || "other"; });
    body.append(el("label", {}, t("close.code"), code), el("label", {}, t("close.first"), first));
    const form = await modal({ title: t("close.title", { id: i.id }), body, confirmLabel: t("close"), testid: "close" });
    if (!form) return;
    const note = String(form.get("note") || "").trim();
    const outcome = `${form.get("outcome")}${note ? ": " + note : ""}`;
    const structured = { outcome_code: form.get("outcome_code"), first_on_scene: form.get("first_on_scene") };
    try { await api(`/incidents/${i.id}/close`, { method: "POST", body: { outcome, ...structured } }); }
    catch (e) { toast(`${t("close")} #${i.id}: ${e.message}`, "warning"); }
  }
}
