// Status page: every participant's last heartbeat, refreshed every 2 s.
(() => {
  const {esc, ago, getJSON} = window.f3d;
  const ORDER = {lost: 0, late: 1, alive: 2, stopped: 3};
  function progress(p) {
    if (!p.progress) return p.job_id ? `<span class="mono">${esc(p.job_id)}</span>` : "";
    const pr = p.progress;
    const pct = pr.total ? Math.round((100 * (pr.step || 0)) / pr.total) : null;
    const bar = pct == null ? "" : `<div class="progress"><span style="width:${pct}%"></span></div>`;
    // An ETA is only news while the job still beats; a stopped or lost one keeps its last step.
    const live = p.state === "alive" || p.state === "late";
    const label = [pr.stage, pct == null ? "" : `${pct} %`, live && pr.eta_s != null ? `ETA ${Math.round(pr.eta_s)} s` : ""]
      .filter(Boolean).join(" · ");
    return `${p.job_id ? `<span class="mono">${esc(p.job_id)}</span> ` : ""}${esc(label)}${bar}`;
  }
  async function refresh() {
    let data;
    try { data = await getJSON("/api/status"); } catch (e) { return; }
    const rows = data.participants.slice().sort((a, b) => (ORDER[a.state] - ORDER[b.state]) || a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id));
    const count = (s) => rows.filter((r) => r.state === s).length;
    document.getElementById("hb-cards").innerHTML = ["alive", "late", "lost", "stopped"].map((s) =>
      `<div class="card"><div class="label">${s}</div><div class="value" data-count="${s}">${count(s)}</div></div>`).join("");
    const body = document.querySelector("#participants tbody");
    body.innerHTML = rows.length ? rows.map((p) => `<tr data-kind="${esc(p.kind)}" data-id="${esc(p.id)}">
      <td><span class="badge ${esc(p.state)}">${esc(p.state)}</span>${p.pending ? ` <span class="muted">${p.pending} unsent</span>` : ""}</td>
      <td>${esc(p.kind)}</td><td class="mono">${esc(p.id)}</td><td>${esc(p.host)}</td><td class="mono">${esc(p.version)}</td>
      <td title="${esc(window.f3d.fullTime(p.seen_at))}">${esc(ago(p.age_s))}</td><td>${progress(p)}</td></tr>`).join("")
      : `<tr><td colspan="7" class="empty">No heartbeats yet.</td></tr>`;
  }
  document.addEventListener("DOMContentLoaded", () => { refresh(); setInterval(refresh, 2000); });
})();
