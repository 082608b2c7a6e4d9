/* Live job detail: update the status, progress and log in place while the job
   runs. With a live feed (PostgreSQL or Redis) the page follows the job's
   server-sent events; otherwise, or when the stream fails, it polls the job's
   small JSON view every second. Text only (textContent), never HTML. */
(function () {
  "use strict";
  const root = document.querySelector(".kinetik-job[data-live-url]");
  if (!root) return;
  const url = root.dataset.liveUrl;
  const eventsUrl = root.dataset.eventsUrl;
  const FINAL = ["completed", "failed", "timeout", "cancelled"];
  let finished = false;
  const appendLogs = root.dataset.appendLogs === "yes";
  let after = parseInt(root.dataset.lastLog || "0", 10);

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  // As the server writes it (Python's "%g"): 3, 2.5, never 3.0.
  function number(value) {
    return String(Number(value.toPrecision(6)));
  }

  function renderProgress(current, total, percent) {
    const progress = document.getElementById("kinetik-progress");
    if (!progress) return;
    const rounded = Math.round(percent);
    progress.textContent = "";
    const bar = document.createElement("progress");
    bar.className = "kinetik-progress";
    bar.max = 100;
    bar.value = rounded;
    bar.title = current + " of " + total;
    progress.appendChild(bar);
    progress.appendChild(document.createTextNode(" " + number(current) + " of " + number(total) + " (" + rounded + "%)"));
  }

  function render(state) {
    const status = document.querySelector("#kinetik-status .kinetik-badge");
    if (status) {
      status.textContent = state.status_display;
      status.className = "kinetik-badge kinetik-" + state.status;
    }
    const attempts = document.getElementById("kinetik-attempts");
    if (attempts) attempts.textContent = String(state.attempts);
    if (state.progress.percent !== null) {
      renderProgress(state.progress.current, state.progress.total, state.progress.percent);
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

  // One read of the JSON view; false once the job has finished.
  async function refresh() {
    if (finished) return false;
    const response = await fetch(url + "?after=" + after, {credentials: "same-origin", headers: {"Accept": "application/json"}});
    if (!response.ok) return true;
    const state = await response.json();
    render(state);
    if (!state.live && !finished) {
      finished = true;
      // Load the page once more for its result, error and attempts.
      window.setTimeout(function () { window.location.reload(); }, 500);
    }
    return state.live;
  }

  async function poll() {
    try {
      if (!(await refresh())) return;
    } catch (error) {
      /* network hiccup: try again on the next tick */
    }
    window.setTimeout(poll, 1000);
  }

  // Status, attempts and new log lines come from one read of the JSON view, at
  // most four times a second however fast events arrive.
  let pending = null;
  function refreshSoon() {
    if (pending !== null) return;
    pending = window.setTimeout(function () {
      pending = null;
      refresh().catch(function () { /* the next event, or the safety read, tries again */ });
    }, 250);
  }

  function follow() {
    const source = new EventSource(eventsUrl);
    // The feed is best-effort: a slow read now and then catches anything it lost.
    const safety = window.setInterval(refreshSoon, 10000);
    function stop() {
      source.close();
      window.clearInterval(safety);
    }
    // Listening now: catch up on what happened since the page was rendered.
    source.onopen = refreshSoon;
    source.onmessage = function (message) {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (FINAL.indexOf(event.kind) !== -1) {
        stop();
        poll();  // reads until the row says it is over, then reloads the page
      } else if (event.kind === "progress" && event.total) {
        renderProgress(event.current, event.total, Math.max(0, Math.min(100, 100 * event.current / event.total)));
      } else {
        refreshSoon();
      }
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        // Refused or not a stream (no feed after all, signed out): poll instead.
        stop();
        window.setTimeout(poll, 1000);
      } else {
        refreshSoon();  // the browser reconnects by itself; meanwhile, one read
      }
    };
  }

  if (eventsUrl && window.EventSource) {
    follow();
  } else {
    window.setTimeout(poll, 1000);
  }
})();
