// Job detail page: state, live progress and the timeline, refreshed every second.
(() => {
  const {esc, time, getJSON, postJSON} = window.f3d;
  const root = document.getElementById("job-detail");
  const jobId = root.dataset.job;
  const live = document.getElementById("live");
  const cancelBtn = document.getElementById("cancel-btn");
  const requeueBtn = document.getElementById("requeue-btn");

  function card(label, value) {
    return `<div class="card"><div class="label">${label}</div><div class="value">${value}</div></div>`;
  }
  async function refresh() {
    try {
      const d = await getJSON(`/api/jobs/${encodeURIComponent(jobId)}`);
      const j = d.job;
      document.getElementById("job-cards").innerHTML =
        card("State", `<span class="badge ${esc(j.state)}">${esc(j.state)}</span>`) +
        card("Object", `<a class="mono" href="/objects/${encodeURIComponent(j.object_id)}">${esc(j.object_id)}</a>`) +
        card("Attempt", `${j.attempt} / ${j.max_attempts}`) +
        card("Priority", esc(j.priority)) +
        card("Trainer", esc(j.trainer || "—")) +
        card("Dataset", `<span class="mono" style="font-size:12px">${esc(j.dataset)}</span>`) +
        // The job's OpenTelemetry trace (W3C traceparent "00-<trace id>-<span>-<flags>").
        card("Trace", `<span class="mono" style="font-size:12px" id="trace-id">${esc((j.traceparent || "").split("-")[1] || "—")}</span>`);
      const pct = j.state === "succeeded" ? 100 : (j.total ? (100 * j.step) / j.total : 0);
      document.getElementById("job-progress").style.width = `${pct}%`;
      const eta = j.eta_s != null && j.state === "running" ? ` · ETA ${Math.round(j.eta_s)} s` : "";
      document.getElementById("job-stage").textContent =
        j.state === "running" ? `${j.stage || "starting"} ${j.total ? `step ${j.step} of ${j.total}` : ""}${eta}` :
        j.state === "queued" && j.retry_at ? `retry in ${Math.max(0, Math.round(j.retry_at - Date.now() / 1000))} s` : j.state;
      const err = document.getElementById("job-error");
      err.hidden = !j.error;
      err.textContent = j.error || "";
      // A failure someone understood is worth a capture note on the object (the catalog's notes).
      document.getElementById("job-note").hidden = !["failed", "dead"].includes(j.state);
      document.getElementById("job-note-link").href = `/objects/${encodeURIComponent(j.object_id)}#notes`;
      document.getElementById("logs-link").href = d.logs_url || `/logs?job=${encodeURIComponent(jobId)}`;
      cancelBtn.hidden = !["queued", "running", "failed"].includes(j.state);
      requeueBtn.hidden = !["dead", "failed", "cancelled"].includes(j.state);
      const look = {started: "running", retried: "queued", progress: "running"};
      document.querySelector("#timeline tbody").innerHTML = d.timeline.map((t) => {
        const kind = t.type.replace("job.", "");
        return `<tr><td>${time(t.ts)}</td><td><span class="badge ${esc(look[kind] || kind)}">${esc(kind)}</span></td>` +
          `<td>${t.attempt}</td><td>${esc(t.text)}</td></tr>`;
      }).join("");
      live.classList.add("on");
    } catch (e) {
      live.classList.remove("on");
      document.getElementById("job-stage").textContent = `not updating: ${e.message}`;
    }
  }
  async function act(op) {
    try {
      await postJSON(`/api/jobs/${encodeURIComponent(jobId)}/${op}`, {});
    } catch (e) {
      alert(`${op} failed: ${e.message}`);
    }
    refresh();
  }
  cancelBtn.addEventListener("click", () => confirm(`Cancel job ${jobId}?`) && act("cancel"));
  requeueBtn.addEventListener("click", () => act("requeue"));
  refresh();
  setInterval(refresh, 1000);
})();
