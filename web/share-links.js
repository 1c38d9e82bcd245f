// Share links of one incident, for operators and pilots: make a view-only link for a crew in
// the field (lifetime 1 to 24 hours, default 2), copy it, see the incident's links and revoke one.
// The link's token is shown once, right after it is made; the list never holds it.
import { api } from "./api.js";
import { getLang } from "./i18n.js";
import { el, modal, toast } from "./ui.js";

const MAX_HOURS = 24;

const TEXT = {
  ko: {
    title: (id) => `사건 #${id}: 현장 공유 링크`, hours: "유효 시간 (시간)", create: "링크 만들기", copy: "복사",
    copied: "링크를 복사했습니다", revoke: "취소", revoked: "취소됨", expired: "만료됨", until: "만료",
    none: "아직 만든 링크가 없습니다.", made: "새 링크 (지금만 표시됩니다):", by: "만든 사람", close: "닫기",
  },
  en: {
    title: (id) => `Incident #${id}: share links for the field`, hours: "Lifetime (hours)", create: "Make a link",
    copy: "Copy", copied: "Link copied", revoke: "Revoke", revoked: "revoked", expired: "expired", until: "until",
    none: "No links yet.", made: "New link (shown only now):", by: "by", close: "Close",
  },
};

// Opens the dialog; resolves when it is closed.
export async function openShareLinks(incidentId) {
  const tx = TEXT[getLang() === "ko" ? "ko" : "en"];
  const list = el("ul", { class: "share-links", dataset: { shareLinks: incidentId },
    style: { listStyle: "none", padding: 0, display: "grid", gap: "4px" } });
  const made = el("div", { class: "share-made", hidden: true });
  const hours = el("input", { type: "number", name: "hours", min: "1", max: String(MAX_HOURS), step: "1", value: "2" });

  const refresh = async () => {
    let links = [];
    try { links = await api(`/incidents/${incidentId}/shares`); } catch (e) { toast(e.message, "warning"); }
    const now = Date.now();
    list.replaceChildren(...(links.length ? links.map((s) => {
      const state = s.revoked_at ? "revoked" : Date.parse(s.expires_at) <= now ? "expired" : "active";
      return el("li", { dataset: { share: s.id, state } },
        el("span", {}, `${tx.until} ${new Date(s.expires_at).toLocaleString()}`),
        el("span", { class: "muted small" }, ` · ${tx.by} ${s.created_by}`),
        state === "active"
          ? el("button", { type: "button", class: "ghost small danger", dataset: { action: "revoke-share" },
            onclick: () => revoke(s.id) }, tx.revoke)
          : el("span", { class: "muted small" }, ` · ${tx[state]}`));
    }) : [el("li", { class: "muted" }, tx.none)]));
  };

  const revoke = async (id) => {
    try { await api(`/shares/${encodeURIComponent(id)}`, { method: "DELETE" }); } catch (e) { toast(e.message, "warning"); }
    await refresh();
  };

  const create = async () => {
    const h = Math.min(MAX_HOURS, Math.max(1, Number(hours.value) || 2));
    try {
      const share = await api(`/incidents/${incidentId}/share`, { method: "POST", body: { hours: h } });
      const url = `${location.origin}${share.url}`;
      const field = el("input", { type: "text", readonly: true, value: url, dataset: { shareUrl: share.id },
        style: { width: "min(34em, 70vw)", display: "block", margin: "4px 0" } });
      made.replaceChildren(el("div", { class: "muted small" }, tx.made), field,
        el("button", { type: "button", class: "ghost small", dataset: { action: "copy-share" }, onclick: async () => {
          field.select();
          try { await navigator.clipboard.writeText(url); toast(tx.copied); } catch { /* selected for a manual copy */ }
        } }, tx.copy));
      made.hidden = false;
    } catch (e) { toast(e.message, "warning"); }
    await refresh();
  };

  const body = el("div", { class: "share-dialog" },
    el("div", { class: "share-new" }, el("label", {}, tx.hours, " ", hours),
      el("button", { type: "button", class: "primary", dataset: { action: "create-share" }, onclick: create }, tx.create)),
    made, list);
  const closed = modal({ title: tx.title(incidentId), body, confirmLabel: tx.close, testid: "share-links" });
  await refresh();
  await closed;
}
