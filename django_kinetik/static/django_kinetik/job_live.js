/* Live job detail: poll the job's small JSON view while it runs and update the
   status, progress and log in place. Text only (textContent), never HTML. */
(function () {
  "use strict";
  const root = document.querySelector(".kinetik-job[data-live-url]");
  if (!root) return;
  const url = root.dataset.liveUrl;
  const appendLogs = root.dataset.appendLogs === "yes";
  let after = parseInt(root.dataset.lastLog || "0", 10);

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function render(state) {
    const status = document.querySelector("#kinetik-status .kinetik-badge");
    if (status) {
      status.textContent = state.status_display;
      status.className = "kinetik-badge kinetik-" + state.status;
    }
    const attempts = document.getElementById("kinetik-attempts");
    if (attempts) attempts.textContent = String(state.attempts);
    const progress = document.getElementById("kinetik-progress");
    if (progress && state.progress.percent !== null) {
      const percent = Math.round(state.progress.percent);
      progress.textContent = "";
      const bar = document.createElement("progress");
      bar.className = "kinetik-progress";
      bar.max = 100;
      bar.value = percent;
      bar.title = state.progress.current + " of " + state.progress.total;
      progress.appendChild(bar);
      progress.appendChild(document.createTextNode(" " + percent + "%"));
    }
    if (appendLogs && state.logs.length) {
      const body = document.querySelector("#kinetik-log tbody");
      const empty = document.getElementById("kinetik-log-empty");
      if (empty) empty.remove();
      for (const line of state.logs) {
        const row = document.createElement("tr");
        row.dataset.logId = line.id;
        cell(row, line.created_at.slice(11, 23));
        cell(row, String(line.attempt));
        cell(row, line.message);
        const data = cell(row, "");
        if (line.data !== null) {
          const code = document.createElement("code");
          code.textContent = JSON.stringify(line.data, null, 2);
          data.appendChild(code);
        }
        body.appendChild(row);
        after = Math.max(after, line.id);
      }
    }
  }

  async function poll() {
    try {
      const response = await fetch(url + "?after=" + after, {credentials: "same-origin", headers: {"Accept": "application/json"}});
      if (response.ok) {
        const state = await response.json();
        render(state);
        if (!state.live) {
          // Finished: load the page once more for its result, error and attempts.
          window.setTimeout(function () { window.location.reload(); }, 500);
          return;
        }
      }
    } catch (error) {
      /* network hiccup: try again on the next tick */
    }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 1000);
})();
