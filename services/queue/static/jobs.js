// Jobs page: the table refreshes every second from /api/jobs.
(() => {
  const {esc, time, getJSON} = window.f3d;
  const form = document.getElementById("job-filters");
  const body = document.querySelector("#jobs-table tbody");
  const counts = document.getElementById("job-counts");
  const live = document.getElementById("live");
  const leader = document.getElementById("leader");
  const noTrainer = document.getElementById("no-trainer");
  const STATES = ["queued", "running", "succeeded", "failed", "dead", "cancelled"];
  const params = new URLSearchParams(location.search);
  for (const [k, v] of params.entries()) if (form.elements[k]) form.elements[k].value = v;

  function progress(j) {
    if (j.state !== "running") return "";
    const pct = j.total ? Math.min(100, (100 * j.step) / j.total) : 0;
    const eta = j.eta_s != null ? ` · ETA ${Math.round(j.eta_s)} s` : "";
    return `<div class="progress" title="${pct.toFixed(1)}%"><span style="width:${pct}%"></span></div>` +
      `<div class="muted">${esc(j.stage || "")} ${j.total ? `${j.step}/${j.total}` : ""}${eta}</div>`;
  }
  function note(j) {
    if (j.retry_at && j.state === "queued") return `retry in ${Math.max(0, Math.round(j.retry_at - Date.now() / 1000))} s`;
    return esc(j.error || "");
  }
  // Time spent running: until it finished, or until now while it runs; blank before it starts.
  function duration(j) {
    if (!j.started) return "";
    const end = j.finished || (j.state === "running" ? Date.now() / 1000 : j.updated);
    const s = Math.max(0, end - j.started);
    if (s < 60) return `${s.toFixed(0)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  }
  function row(j) {
    return `<tr data-job="${esc(j.job_id)}"><td class="mono" style="white-space:nowrap"><a href="/jobs/${encodeURIComponent(j.job_id)}">${esc(j.job_id)}</a></td>` +
      `<td class="mono"><a href="/objects/${encodeURIComponent(j.object_id)}">${esc(j.object_id)}</a></td><td><span class="badge ${esc(j.state)}">${esc(j.state)}</span></td>` +
      `<td>${j.priority === "vip" ? '<span class="badge running">vip</span>' : "normal"}</td>` +
      `<td>${j.attempt} / ${j.max_attempts}</td><td class="progress-cell">${progress(j)}</td>` +
      `<td class="mono">${esc(j.trainer || "")}</td><td>${time(j.created)}</td><td class="duration">${duration(j)}</td><td class="muted">${note(j)}</td></tr>`;
  }
  async function refresh() {
    const q = window.f3d.formParams(form);
    try {
      const data = await getJSON(`/api/jobs?${q}`);
      counts.innerHTML = STATES.map((s) =>
        `<div class="card"><div class="label">${s}</div><div class="value">${(data.counts || {})[s] || 0}</div></div>`).join("");
      body.innerHTML = data.jobs.length ? data.jobs.map(row).join("") :
        '<tr><td colspan="10" class="empty">No jobs match.</td></tr>';
      leader.textContent = data.leader ? `queue leader: ${data.leader}` : "no queue leader";
      live.classList.add("on");
      // Queued jobs nobody can take: say so here, not only in an alert later.
      const waiting = await getJSON("/api/queue/waiting");
      noTrainer.hidden = !waiting.note;
      noTrainer.textContent = waiting.note ? `${waiting.queued} job(s) queued: ${waiting.note}` : "";
    } catch (err) {
      live.classList.remove("on");
      leader.textContent = `not updating: ${err.message}`;
    }
  }
  form.addEventListener("input", () => {
    history.replaceState(null, "", `?${window.f3d.formParams(form)}`);
    refresh();
  });
  form.addEventListener("submit", (e) => e.preventDefault());
  refresh();
  setInterval(refresh, 1000);
})();
