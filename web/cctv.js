// Fixed CCTV on the incident card and the map: the camera that raised an incident, live, with
// its snapshot from the moment of the report, and a camera opened by a click on its marker.
// The player itself (CameraPlayer) lives in video.js beside the drone tile whose path it shares.
import { apiBlob } from "./api.js";
import { t } from "./i18n.js";
import { el } from "./ui.js";
import { CameraPlayer, cameraName, hasStream } from "./video.js";

const L = window.L;

// The picture the incident's camera took when it reported, kept as evidence by the service.
export function reportSnapshot(view) {
  return (view?.evidence || []).find((e) => e.mission_id == null && /snapshot|image|jpeg/i.test(e.kind)) || null;
}

// The incident card's camera block: the camera live beside its snapshot from the moment of the
// report (or a line saying there is none). `shots` caches evidence id → object URL; `direct`:
// the server offers GET /incidents/{id}/camera-snapshot.jpg.
export function incidentCamera(incidentId, camera, player, view, shots, onLoaded, { direct = false } = {}) {
  const ev = reportSnapshot(view);
  let still;
  if (ev) {
    const url = shots.get(ev.id);
    if (url === undefined) {
      shots.set(ev.id, null);
      // the incident's own route when the server has it (reading evidence files is audited)
      apiBlob(direct ? `/incidents/${incidentId}/camera-snapshot.jpg` : `/evidence/${ev.id}`).then((blob) => { if (blob) { shots.set(ev.id, URL.createObjectURL(blob)); onLoaded(); } }).catch(() => {});
    }
    still = el("figure", { class: "report-shot", dataset: { reportSnapshot: ev.id } },
      url ? el("img", { src: url, alt: t("cctv.reportshot") }) : el("div", { class: "muted small" }, "…"),
      el("figcaption", { class: "muted small" }, t("cctv.reportshot")));
  } else {
    still = el("figure", { class: "report-shot none", dataset: { reportSnapshot: "none" } },
      el("div", { class: "muted small" }, view ? t("cctv.noreportshot") : "…"));
  }
  return el("div", { class: "incident-camera", dataset: { incidentCamera: camera.id } },
    hasStream(camera) && player ? player.ensure() : el("div", { class: "tile cctv", dataset: { video: "none" } },
      el("div", { class: "tile-label" }, cameraName(camera)), el("div", { class: "tile-status" }, t("video.nostream"))),
    still);
}

// A camera clicked on the map: a popup with its name and live player, stopped when it closes.
export function openCameraPopup(map, camera, { supported }) {
  const player = hasStream(camera) ? new CameraPlayer(camera, { supported }) : null;
  const body = el("div", { class: "camera-popup", dataset: { cameraPopup: camera.id } },
    el("div", { class: "camera-popup-head" }, el("b", {}, cameraName(camera)), el("span", { class: "muted small" }, ` · ${camera.id}`)),
    player ? player.ensure() : el("div", { class: "muted small" }, t("video.nostream")));
  const popup = L.popup({ maxWidth: 420, minWidth: 360, className: "camera-popup-wrap", autoPanPadding: [40, 40] })
    .setLatLng([camera.lat, camera.lon]).setContent(body);
  popup.on("remove", () => player?.stop());
  popup.openOn(map);
  return popup;
}
