// Auto-refresh of the operators' admin pages: every element with `data-refresh` is reloaded in place
// every 5 s (or `data-refresh-seconds`), unless paused. The pause is remembered across pages.
(function () {
  "use strict";
  const regions = document.querySelectorAll("[data-refresh]");
  if (!regions.length) return;
  const seconds = Number(regions[0].dataset.refreshSeconds || 5);
  const key = "jobsite.admin.refresh.paused";
  const control = document.getElementById("js-refresh");
  const button = control && control.querySelector("button");
  const stamp = control && control.querySelector("output");
  let paused = localStorage.getItem(key) === "1";
  let busy = false;

  function show() {
    if (!button) return;
    button.textContent = paused ? "Resume auto-refresh" : "Pause auto-refresh";
    button.setAttribute("aria-pressed", paused ? "true" : "false");
    control.dataset.state = paused ? "paused" : "running";
  }

  async function refresh() {
    if (paused || busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin", headers: { "X-Refresh": "1" } });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of regions) {
        const fresh = page.getElementById(region.id);
        if (fresh) region.innerHTML = fresh.innerHTML;
      }
      if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
      document.dispatchEvent(new CustomEvent("jobsite:refreshed"));
    } catch (error) {
      if (stamp) stamp.textContent = "refresh failed";
    } finally {
      busy = false;
    }
  }

  if (button) {
    button.addEventListener("click", function () {
      paused = !paused;
      localStorage.setItem(key, paused ? "1" : "0");
      show();
    });
  }
  show();
  setInterval(refresh, seconds * 1000);
})();
