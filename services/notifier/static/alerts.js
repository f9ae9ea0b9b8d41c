// Alerts page: open alerts, recent messages with their outbox state, the notifier's health.
(() => {
  const {esc, time, getJSON} = window.f3d;
  const STATE = {pending: "queued", sent: "ok", rejected: "failed"};
  async function refresh() {
    let d;
    try { d = await getJSON("/api/alerts"); } catch (e) {
      document.getElementById("alert-cards").innerHTML = `<div class="card"><div class="label">notifier</div><div class="value"><span class="badge down">down</span></div><div class="muted">${esc(e.message)}</div></div>`;
      return;
    }
    const h = d.health, c = d.outbox_counts;
    document.getElementById("alert-cards").innerHTML = [
      ["notifier", `<span class="badge ${esc(h.state)}">${esc(h.state)}</span>`, h.state === "ok" ? "" : h.detail],
      ["open alerts", d.open.length, ""],
      ["messages sent", c.sent || 0, ""],
      ["waiting", c.pending || 0, c.pending ? "retrying with backoff" : ""],
      ["refused", c.rejected || 0, ""],
    ].map(([l, v, m]) => `<div class="card" data-card="${esc(l)}"><div class="label">${esc(l)}</div><div class="value">${v}</div><div class="muted">${esc(m)}</div></div>`).join("");
    const sev = (s) => `<span class="badge ${s === "warning" ? "late" : "failed"}">${esc(s)}</span>`;
    document.querySelector("#open-alerts tbody").innerHTML = d.open.length ? d.open.map((a) => `<tr>
      <td>${sev(a.severity)}</td><td>${esc(a.title)}<div class="muted">${esc(a.last_message || "")}</div></td>
      <td>${a.count}</td><td title="${esc(window.f3d.fullTime(a.opened_at))}">${esc(time(a.opened_at))}</td><td title="${esc(window.f3d.fullTime(a.last_at))}">${esc(time(a.last_at))}</td><td>${a.mails}</td></tr>`).join("")
      : `<tr><td colspan="6" class="empty">No open alerts.</td></tr>`;
    document.querySelector("#outbox tbody").innerHTML = d.outbox.length ? d.outbox.map((m) => `<tr data-channel="${esc(m.channel)}">
      <td><span class="badge ${STATE[m.state] || ""}">${esc(m.state)}</span></td><td title="${esc(window.f3d.fullTime(m.created_at))}">${esc(time(m.created_at))}</td>
      <td>${esc(m.channel === "file" ? "local outbox" : m.channel)}</td><td class="mono">${esc(m.target)}</td>
      <td><a href="/api/alerts/messages/${m.id}" target="_blank">${esc(m.subject)}</a></td><td>${m.attempts}</td>
      <td class="muted">${esc(m.last_error || "")}</td></tr>`).join("")
      : `<tr><td colspan="7" class="empty">No messages yet.</td></tr>`;
    document.querySelector("#resolved tbody").innerHTML = d.resolved.length ? d.resolved.map((a) => `<tr>
      <td>${esc(a.title)}</td><td>${a.count}</td><td title="${esc(window.f3d.fullTime(a.opened_at))}">${esc(time(a.opened_at))}</td><td title="${esc(window.f3d.fullTime(a.resolved_at))}">${esc(time(a.resolved_at))}</td>
      <td>${esc(a.resolve_reason || "")}</td></tr>`).join("")
      : `<tr><td colspan="5" class="empty">Nothing resolved yet.</td></tr>`;
  }
  document.addEventListener("DOMContentLoaded", () => { refresh(); setInterval(refresh, 2000); });
})();
