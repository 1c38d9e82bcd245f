// The public flight log: show each take-off time (UTC, to the minute) in the reader's time zone.
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime").replace("Z", ":00Z"));
    if (!Number.isNaN(at.getTime())) {
      el.title = el.textContent + " UTC";
      el.textContent = at.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    }
  }
});
