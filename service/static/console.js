// Switchboard supervisor console: refresh the live list without reloading the page.
// The server renders (and escapes) the rows; a poll sends them only when the page changed.
"use strict";
(function () {
  const table = document.getElementById("conversations");
  if (!table) return;
  const body = table.tBodies[0];
  const count = document.getElementById("count");
  const status = document.getElementById("status");
  const interval = Number(table.dataset.interval) || 2000;
  let stamp = table.dataset.stamp || "";
  async function poll() {
    try {
      const url = table.dataset.poll + "&stamp=" + encodeURIComponent(stamp);
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.status === 401) { window.location.assign("/console/login"); return; }
      if (response.ok) {
        const page = await response.json();
        if (page.changed) {
          body.innerHTML = page.rows;
          count.textContent = String(page.count);
        }
        stamp = page.stamp;
        table.dataset.stamp = stamp;
        status.dataset.updated = new Date().toISOString();
      }
    } catch (err) {
      // Network hiccup: keep the rows shown and try again at the next tick.
    }
    window.setTimeout(poll, interval);
  }
  window.setTimeout(poll, interval);
})();
