// The statistics page: response times, who was first on scene, outcomes, sources, drones and volume for
// a period and a district, as charts (uPlot, vendored) and tables that each export the same query as CSV;
// and the incident heat map, drawn on the operations map. Every number comes from GET /api/v1/stats/...
import { api, apiBlob } from "./api.js";
import { getLang, t, tOr } from "./i18n.js";
import { $, el, toast } from "./ui.js";

const L = window.L;
const DAY_MS = 86_400_000;
const PRESETS = [7, 30, 365];
const WEEKLY_FROM_DAYS = 92; // longer periods count incidents per week: a year of daily bars is noise
const CELL_M = 500;
const M_PER_DEG_LAT = 111_320;
const INTERVALS = ["report_to_dispatch", "dispatch_to_airborne", "airborne_to_on_scene", "report_to_on_scene"];
const OUTCOMES = ["cleared_without_patrol", "escalated", "false_alarm", "other", "open"];
const OUTCOME_COLOR = { cleared_without_patrol: "#52c41a", escalated: "#ff7a45", false_alarm: "#8c8c8c", other: "#b37feb", open: "#1677ff" };
const P50 = "#69b1ff", P90 = "#faad14", VOLUME = "#1677ff";
const AXIS = { stroke: "#8895b3", grid: { stroke: "#25314f", width: 1 }, ticks: { stroke: "#25314f", width: 1 }, font: "12px system-ui, sans-serif" };

// Calendar days as YYYY-MM-DD, counted on UTC midnights (no daylight-saving hour to trip over); the API reads a
// date as the city's local day, so "today" is the local date of this browser, which sits in the centre.
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const dayMs = (iso) => Date.parse(`${iso}T00:00:00Z`);
const todayMs = () => { const d = new Date(); return Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()); };

// Seconds as m:ss (h:mm:ss from an hour), as the monthly report prints them.
export function dur(s) {
  if (s == null) return "–";
  const v = Math.round(s), h = Math.floor(v / 3600), m = Math.floor((v % 3600) / 60), sec = v % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return `${h ? `${h}:` : ""}${mm}:${String(sec).padStart(2, "0")}`;
}
const pct = (v) => (v == null ? "–" : `${(v * 100).toFixed(1)}%`);
const int = (v) => (v == null ? "–" : Number(v).toLocaleString(getLang() === "ko" ? "ko-KR" : "en-GB"));
const minutes = (s) => (s == null ? null : s / 60);

// Axis tops at 1, 2, 2.5 or 5 × 10^k (the monthly report's charts do the same), so the gridlines fall on round numbers.
function niceTop(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((k) => k * p).find((x) => x >= v * (1 - 1e-9));
}
const Y_FROM_ZERO = { range: (u, lo, hi) => [0, niceTop(hi)] };

// Yellow (few incidents) to red (the most) over the dark basemap.
function heatColour(f) {
  const lo = [255, 214, 102], hi = [255, 77, 79];
  return `rgb(${lo.map((c, i) => Math.round(c + (hi[i] - c) * f)).join(",")})`;
}

export class StatsPage {
  constructor({ root, state, opsMap, onShowMap }) {
    Object.assign(this, { root, state, opsMap, onShowMap });
    const today = todayMs();
    this.filter = { from: isoDay(today - 29 * DAY_MS), to: isoDay(today), district: "" };
    this.plots = [];
    this.heat = null;
    this.legend = null;
    this.heatOn = false;
    this.seq = 0;
    window.addEventListener("resize", () => { if (!this.root.closest(".page").hidden) this.fitPlots(); });
  }

  // The query every table of the page shares; `to` in the form is the last day shown, the API's is exclusive.
  query(extra = {}) {
    const p = new URLSearchParams({ from: this.filter.from, to: isoDay(dayMs(this.filter.to) + DAY_MS) });
    if (this.filter.district) p.set("district", this.filter.district);
    for (const [k, v] of Object.entries(extra)) p.set(k, v);
    return `?${p}`;
  }

  districtName(id) {
    if (!id) return t("stats.nodistrict");
    const f = (this.state.districts?.features || []).find((x) => x.properties.id === id);
    return f ? (getLang() === "ko" ? f.properties.name_ko : f.properties.name_en) : id;
  }

  // --- the page --------------------------------------------------------------------------------
  show() {
    this.build();
    return this.load();
  }

  build() {
    const f = this.filter;
    const districts = (this.state.districts?.features || [])
      .slice().sort((a, b) => (a.properties.kind === "ifez_district" ? 0 : 1) - (b.properties.kind === "ifez_district" ? 0 : 1));
    const from = el("input", { type: "date", name: "from", value: f.from, max: f.to });
    const to = el("input", { type: "date", name: "to", value: f.to, min: f.from });
    const apply = () => {
      if (!from.value || !to.value || from.value > to.value) { toast(t("stats.badperiod"), "warning"); return; }
      Object.assign(f, { from: from.value, to: to.value });
      this.show();
    };
    from.addEventListener("change", apply);
    to.addEventListener("change", apply);
    const presets = PRESETS.map((n) => el("button", { class: "ghost", dataset: { preset: n }, onclick: () => {
      const today = todayMs();
      Object.assign(f, { from: isoDay(today - (n - 1) * DAY_MS), to: isoDay(today) });
      this.show();
    } }, t("stats.lastdays", { n })));
    const district = el("select", { name: "district", onchange: (e) => { f.district = e.target.value; this.show(); } },
      el("option", { value: "" }, t("stats.alldistricts")),
      ...districts.map((d) => el("option", { value: d.properties.id }, getLang() === "ko" ? d.properties.name_ko : d.properties.name_en)));
    district.value = f.district;
    const heat = el("input", { type: "checkbox", name: "heat", onchange: (e) => this.toggleHeat(e.target.checked) });
    heat.checked = this.heatOn;
    const month = el("input", { type: "month", name: "month", value: f.to.slice(0, 7) });
    this.root.replaceChildren(
      el("div", { class: "stats-filters" },
        el("label", {}, el("span", { class: "muted" }, t("stats.period")), from, "–", to),
        el("span", { class: "actions" }, ...presets),
        el("label", {}, el("span", { class: "muted" }, t("stats.district")), district),
        el("span", { class: "spacer" }),
        el("label", { class: "check" }, heat, t("stats.heat")),
        el("button", { class: "ghost", dataset: { action: "show-map" }, onclick: () => this.onShowMap() }, t("stats.showmap")),
        el("label", {}, el("span", { class: "muted" }, t("stats.monthly")), month,
          el("button", { class: "ghost", dataset: { action: "monthly" }, onclick: () => this.monthly(month.value) }, "PDF"))),
      el("div", { id: "stats-kpis", class: "stats-kpis" }),
      el("div", { class: "stats-grid" },
        this.card("hour", t("stats.chart.hour")), this.card("week", t("stats.chart.week")),
        this.card("volume", t("stats.chart.volume")), this.card("outcomes", t("stats.chart.outcomes")),
        this.card("fos", t("stats.chart.fos"))),
      el("div", { id: "stats-tables", class: "stats-tables" }));
  }

  card(id, title) {
    return el("section", { class: "stats-card", dataset: { chart: id } }, el("h3", {}, title), el("div", { class: "chart-box", id: `chart-${id}` }));
  }

  async load() {
    const seq = ++this.seq;
    this.root.dataset.state = "loading";
    const q = this.query();
    const days = (dayMs(this.filter.to) - dayMs(this.filter.from)) / DAY_MS + 1;
    const step = days > WEEKLY_FROM_DAYS ? "week" : "day";
    let r;
    try {
      r = await Promise.all([
        api(`/stats/response-times${q}&group_by=none`), api(`/stats/response-times${q}&group_by=hour`),
        api(`/stats/response-times${q}&group_by=week`), api(`/stats/response-times${q}&group_by=district`),
        api(`/stats/response-times${q}&group_by=category`), api(`/stats/first-on-scene${q}&group_by=none`),
        api(`/stats/first-on-scene${q}&group_by=district`), api(`/stats/outcomes${q}&group_by=none`),
        api(`/stats/sources${q}`), api(`/stats/drones${q}`), api(`/stats/volume${q}&group_by=${step}`),
      ]);
    } catch (e) {
      if (seq !== this.seq) return;
      this.root.dataset.state = "error";
      $("#stats-kpis").replaceChildren(el("div", { class: "notice bad" }, `${t("error")}: ${e.message}`));
      return;
    }
    if (seq !== this.seq) return; // a newer filter already asked
    const [overall, byHour, byWeek, byDistrict, byCategory, fos, fosDistrict, outcomes, sources, drones, volume] = r.map((x) => x.rows);
    this.kpis(overall[0], fos[0]);
    for (const p of this.plots) p.destroy();
    this.plots = [];
    this.hourChart(byHour);
    this.weekChart(byWeek);
    this.volumeChart(volume, step);
    this.outcomeChart(outcomes[0]);
    this.fosChart(fosDistrict);
    this.tables(q, { byDistrict, byCategory, sources, drones });
    if (this.heatOn) await this.drawHeat();
    this.root.dataset.state = "ready";
  }

  kpis(o, fos) {
    const n = o?.incidents ?? 0;
    const tiles = [
      ["incidents", t("stats.kpi.incidents"), int(n)],
      ["dispatched", t("stats.kpi.dispatched"), int(o?.report_to_dispatch?.n ?? 0)],
      ["fos", t("stats.kpi.fos"), pct(fos?.share)],
      ["p50", t("stats.kpi.p50"), dur(o?.report_to_on_scene?.p50)],
      ["p90", t("stats.kpi.p90"), dur(o?.report_to_on_scene?.p90)],
    ];
    $("#stats-kpis").replaceChildren(...tiles.map(([id, k, v]) =>
      el("div", { class: "kpi", dataset: { kpi: id } }, el("div", { class: "kpi-v" }, v), el("div", { class: "kpi-k" }, k))));
  }

  // --- charts ----------------------------------------------------------------------------------
  plot(id, opts, data) {
    const box = $(`#chart-${id}`);
    if (!data[0].length) { box.replaceChildren(el("div", { class: "muted empty" }, t("stats.nodata"))); return; }
    const u = new window.uPlot({ width: Math.max(300, box.clientWidth), height: 220, legend: { live: false }, cursor: { drag: { x: false, y: false } }, ...opts }, data, box);
    this.plots.push(u);
  }

  fitPlots() {
    for (const u of this.plots) u.setSize({ width: Math.max(300, u.root.parentElement.clientWidth), height: 220 });
  }

  timesSeries() {
    return [{}, { label: "p50", stroke: P50, width: 2, points: { show: true, size: 5 }, value: (u, v) => (v == null ? "–" : dur(v * 60)) },
      { label: "p90", stroke: P90, width: 2, points: { show: true, size: 5 }, value: (u, v) => (v == null ? "–" : dur(v * 60)) }];
  }

  // Time axes span the whole period asked for, so a quiet stretch shows as empty rather than zoomed away.
  // Points sit at the start of their day or week (a week's Monday may lie before the period's first day).
  periodScale(step) {
    const from = dayMs(this.filter.from) / 1000, to = (dayMs(this.filter.to) + DAY_MS) / 1000;
    return { time: true, range: () => (step === "week" ? [from - 7 * 86400, to] : [from - 43200, to - 43200]) };
  }

  minuteAxis() { return { ...AXIS, label: t("stats.minutes"), labelSize: 18, size: 44, values: (u, vals) => vals.map((v) => v.toFixed(0)) }; }

  hourChart(rows) {
    const by = new Map(rows.map((r) => [Number(r.key), r.report_to_on_scene]));
    const hours = [...Array(24).keys()];
    const data = [hours, hours.map((h) => minutes(by.get(h)?.p50)), hours.map((h) => minutes(by.get(h)?.p90))];
    this.plot("hour", {
      scales: { x: { time: false, range: [-0.5, 23.5] }, y: Y_FROM_ZERO },
      series: this.timesSeries(),
      axes: [{ ...AXIS, values: (u, vals) => vals.map((v) => `${String(v).padStart(2, "0")}`), incrs: [1, 2, 3, 6] }, this.minuteAxis()],
    }, rows.length ? data : [[]]);
  }

  weekChart(rows) {
    // weeks without incidents are gaps in the lines, not a straight line across them
    const by = new Map(rows.filter((r) => r.key).map((r) => [r.key, r.report_to_on_scene]));
    const keys = [...by.keys()].sort();
    const weeks = [];
    for (let ms = dayMs(keys[0]); keys.length && ms <= dayMs(keys[keys.length - 1]); ms += 7 * DAY_MS) weeks.push(isoDay(ms));
    const data = [weeks.map((w) => dayMs(w) / 1000), weeks.map((w) => minutes(by.get(w)?.p50)), weeks.map((w) => minutes(by.get(w)?.p90))];
    this.plot("week", {
      scales: { x: this.periodScale("week"), y: Y_FROM_ZERO },
      series: this.timesSeries(),
      axes: [{ ...AXIS }, this.minuteAxis()],
    }, data);
  }

  volumeChart(rows, step) {
    const data = [rows.map((r) => dayMs(r.key.slice(0, 10)) / 1000), rows.map((r) => r.incidents)];
    this.plot("volume", {
      scales: { x: this.periodScale(step), y: Y_FROM_ZERO },
      series: [{}, { label: t(step === "week" ? "stats.perweek" : "stats.perday"), stroke: VOLUME, fill: "#1677ffaa", width: 1,
        paths: window.uPlot.paths.bars({ size: [0.8, 40] }), points: { show: false } }],
      axes: [{ ...AXIS }, { ...AXIS, size: 44, values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? v : "")) }],
    }, data);
  }

  // Categorical shares read better as plain bars than as a plot: outcomes stacked, then one line per outcome.
  outcomeChart(o) {
    const counts = OUTCOMES.map((k) => [k, o?.[k] ?? 0]);
    const total = counts.reduce((a, [, n]) => a + n, 0);
    const box = $("#chart-outcomes");
    if (!total) { box.replaceChildren(el("div", { class: "muted empty" }, t("stats.nodata"))); return; }
    box.replaceChildren(
      el("div", { class: "stack" }, ...counts.filter(([, n]) => n).map(([k, n]) =>
        el("span", { class: "stack-part", style: { width: `${(100 * n) / total}%`, background: OUTCOME_COLOR[k] }, title: `${t(`stats.outcome.${k}`)}: ${n}` }))),
      el("table", { class: "bars" }, el("tbody", {}, ...counts.map(([k, n]) => el("tr", { dataset: { outcome: k } },
        el("td", {}, el("span", { class: "swatch", style: { background: OUTCOME_COLOR[k] } }), t(`stats.outcome.${k}`)),
        el("td", { class: "num" }, int(n)), el("td", { class: "num muted" }, pct(n / total)))))));
  }

  fosChart(rows) {
    const box = $("#chart-fos");
    const shown = rows.filter((r) => r.incidents > 0).sort((a, b) => b.incidents - a.incidents);
    if (!shown.length) { box.replaceChildren(el("div", { class: "muted empty" }, t("stats.nodata"))); return; }
    box.replaceChildren(el("table", { class: "bars" }, el("tbody", {}, ...shown.map((r) => el("tr", { dataset: { district: r.key ?? "" } },
      el("td", {}, this.districtName(r.key)),
      el("td", { class: "bar-cell" }, el("span", { class: "hbar", style: { width: `${100 * (r.share ?? 0)}%` } })),
      el("td", { class: "num" }, pct(r.share)), el("td", { class: "num muted" }, `${r.drone_first}/${r.incidents}`))))));
  }

  // --- tables ----------------------------------------------------------------------------------
  tables(q, { byDistrict, byCategory, sources, drones }) {
    const timeCols = INTERVALS.flatMap((k) => [
      { head: `${t(`stats.iv.${k}`)} p50`, num: true, get: (r) => dur(r[k]?.p50) },
      { head: "p90", num: true, get: (r) => dur(r[k]?.p90) },
    ]);
    const rt = (keyHead, name) => [
      { head: keyHead, get: (r) => name(r.key) },
      { head: t("stats.kpi.incidents"), num: true, get: (r) => int(r.incidents) },
      { head: t("stats.kpi.dispatched"), num: true, get: (r) => int(r.report_to_dispatch?.n) },
      ...timeCols,
    ];
    const cams = new Map((this.state.cameras || []).map((c) => [c.id, c]));
    const busiest = (a, b) => b.incidents - a.incidents;
    $("#stats-tables").replaceChildren(
      this.table("by-district", t("stats.t.district"), rt(t("stats.district"), (k) => this.districtName(k)), byDistrict.slice().sort(busiest),
        `/stats/response-times${q}&group_by=district&format=csv`),
      this.table("by-category", t("stats.t.category"), rt(t("stats.category"), (k) => tOr(`cat.${k}`, k)), byCategory.slice().sort(busiest),
        `/stats/response-times${q}&group_by=category&format=csv`),
      this.table("sources", t("stats.t.sources"), [
        { head: t("source"), get: (r) => tOr(`src.${r.source}`, r.source) },
        { head: t("camera"), get: (r) => (r.camera_id ? `${r.camera_id}${cams.get(r.camera_id) ? ` · ${getLang() === "ko" ? cams.get(r.camera_id).name_ko || "" : cams.get(r.camera_id).name_en || ""}` : ""}` : "–") },
        { head: t("stats.kpi.incidents"), num: true, get: (r) => int(r.incidents) },
        { head: t("stats.falsealarms"), num: true, get: (r) => int(r.false_alarms) },
        { head: t("stats.fashare"), num: true, get: (r) => pct(r.false_alarm_share), cls: (r) => (r.false_alarm_share >= 0.3 ? "warn-text" : "") },
      ], sources.slice().sort(busiest), `/stats/sources${q}&format=csv`),
      this.table("drones", t("stats.t.drones"), [
        { head: t("dispatch.drone"), get: (r) => r.drone_id },
        { head: t("stats.missions"), num: true, get: (r) => int(r.missions) },
        { head: t("stats.flighthours"), num: true, get: (r) => r.flight_hours.toFixed(1) },
        { head: t("stats.cycles"), num: true, get: (r) => r.battery_cycles.toFixed(1) },
        { head: t("stats.utilisation"), num: true, get: (r) => pct(r.utilisation) },
        { head: t("stats.maintenance"), get: (r) => (r.maintenance ? t("ds.maintenance") : ""), cls: (r) => (r.maintenance ? "warn-text" : "") },
      ], drones, `/stats/drones${q}&format=csv`));
  }

  table(id, title, cols, rows, csvPath) {
    const body = rows.length
      ? rows.map((r) => el("tr", {}, ...cols.map((c) => el("td", { class: [c.num ? "num" : "", c.cls ? c.cls(r) : ""].join(" ").trim() || null }, c.get(r)))))
      : [el("tr", {}, el("td", { colspan: cols.length, class: "muted" }, t("stats.nodata")))];
    return el("section", { class: "stats-table", dataset: { table: id } },
      el("div", { class: "table-head" }, el("h3", {}, title),
        el("button", { class: "ghost small", dataset: { csv: id }, onclick: () => this.download(csvPath, `${id}-${this.filter.from}-${this.filter.to}.csv`) }, "CSV")),
      el("table", { class: "grid stats" }, el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", { class: c.num ? "num" : null }, c.head)))), el("tbody", {}, ...body)));
  }

  // Downloads need the bearer token: fetched here, then handed to the browser as a Blob.
  async download(path, name) {
    try {
      const blob = await apiBlob(path);
      if (!blob) { toast(t("stats.nodata"), "warning"); return; }
      const url = URL.createObjectURL(blob);
      const a = el("a", { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 30_000);
    } catch (e) { toast(`${t("error")}: ${e.message}`, "warning"); }
  }

  monthly(month) {
    if (!/^\d{4}-\d{2}$/.test(month)) { toast(t("stats.badperiod"), "warning"); return; }
    return this.download(`/stats/monthly-report?month=${month}`, `monthly-report-${month}.pdf`);
  }

  // --- heat map on the operations map ----------------------------------------------------------
  async toggleHeat(on) {
    this.heatOn = on;
    if (on) await this.drawHeat();
    else this.clearHeat();
  }

  clearHeat() {
    if (this.heat) this.heat.remove();
    if (this.legend) this.legend.remove();
    this.heat = this.legend = null;
  }

  async drawHeat() {
    let rows;
    try { rows = (await api(`/stats/heatmap${this.query({ cell_m: CELL_M })}`)).rows; }
    catch (e) { toast(`${t("error")}: ${e.message}`, "warning"); return; }
    if (!this.heatOn) return;
    this.clearHeat();
    const max = Math.max(1, ...rows.map((r) => r.incidents));
    this.heat = L.layerGroup();
    const dlat = CELL_M / 2 / M_PER_DEG_LAT;
    for (const r of rows) {
      const dlon = CELL_M / 2 / (M_PER_DEG_LAT * Math.cos((r.lat * Math.PI) / 180));
      // a log scale: most cells hold one or two incidents, and a linear one would paint them all alike
      const f = Math.log1p(r.incidents) / Math.log1p(max);
      L.rectangle([[r.lat - dlat, r.lon - dlon], [r.lat + dlat, r.lon + dlon]], {
        // outlined, so a cell of a few pixels still shows when the whole city is in view
        className: "heat-cell", color: heatColour(f), weight: 1, opacity: 0.3 + 0.6 * f, fillColor: heatColour(f), fillOpacity: 0.2 + 0.65 * f, interactive: false,
      }).addTo(this.heat);
    }
    this.heat.addTo(this.opsMap.map);
    const Legend = L.Control.extend({ onAdd: () => el("div", { class: "heat-legend", dataset: { cells: rows.length } },
      el("b", {}, t("stats.heat")), el("span", { class: "heat-ramp" }), el("span", {}, `1 – ${max} ${t("stats.percell")}`)) });
    this.legend = new Legend({ position: "bottomleft" }).addTo(this.opsMap.map);
  }
}
