// Small helpers shared by the dashboard pages (no framework, no build step).
window.f3d = {
  esc(s) {
    return String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  },
  time(ts) {
    if (!ts) return "";
    const d = new Date(ts * 1000);
    return d.toLocaleString(undefined, {hour12: false}) + "." + String(d.getMilliseconds()).padStart(3, "0");
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
