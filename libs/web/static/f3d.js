// Small helpers shared by the dashboard pages (no framework, no build step).
window.f3d = {
  esc(s) {
    return String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  },
  // Short enough for a table cell: "14:05:51" today, "Nov 26 14:05" this year, else with the year.
  time(ts) {
    if (!ts) return "";
    const d = new Date(ts * 1000), now = new Date();
    const hm = {hour: "2-digit", minute: "2-digit", hour12: false};
    if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString(undefined, {...hm, second: "2-digit"});
    const day = {month: "short", day: "numeric", ...(d.getFullYear() === now.getFullYear() ? {} : {year: "numeric"})};
    return `${d.toLocaleDateString(undefined, day)} ${d.toLocaleTimeString(undefined, hm)}`;
  },
  // The full local date and time, for a tooltip.
  fullTime(ts) {
    return ts ? new Date(ts * 1000).toLocaleString(undefined, {hour12: false}) : "";
  },
  ago(seconds) {
    if (seconds == null) return "";
    if (seconds < 60) return `${seconds.toFixed(0)} s ago`;
    if (seconds < 3600) return `${(seconds / 60).toFixed(0)} min ago`;
    if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h ago`;
    return `${(seconds / 86400).toFixed(1)} d ago`;
  },
  async getJSON(url) {
    const r = await fetch(url, {headers: {Accept: "application/json"}});
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
    return body;
  },
  async postJSON(url, data) {
    const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(data || {})});
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
    return body;
  },
  formParams(form) {
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) if (String(v).trim() !== "") p.set(k, String(v).trim());
    return p;
  },
};
