// The Logs page: search with filters kept in the URL, "load older" paging, live tail over SSE.
// Rows are in the records' own time order (ts, then source, then sequence), newest first, as
// the store returns them; a live record that arrives late (a spool replay, a rig back online)
// is put where it belongs and marked "late".
(() => {
  const form = document.getElementById("log-filters");
  const tbody = document.querySelector("#log-table tbody");
  const status = document.getElementById("log-status");
  const older = document.getElementById("log-older");
  const empty = document.getElementById("log-empty");
  const live = document.getElementById("log-live");
  const FILTERS = ["source", "kind", "job", "object", "host", "level", "q", "since"];
  const MAX_ROWS = 2000;
  const LEVELS = [[50, "CRITICAL"], [40, "ERROR"], [30, "WARNING"], [20, "INFO"], [10, "DEBUG"]];
  // A live record this much older than the newest shown arrived late; less is ordinary batching.
  const LATE_AFTER_S = 5;
  let nextBefore = null;
  let shown = new Set();
  let stream = null;
  let lateHidden = 0;

  const levelName = (n) => (LEVELS.find(([v]) => n >= v) || [0, "DEBUG"])[1];
  const link = (param, value) =>
    `<a href="/logs?${param}=${encodeURIComponent(value)}" class="${param}-link">${f3d.esc(value)}</a>`;

  function filters() {
    const p = f3d.formParams(form);
    for (const k of [...p.keys()]) if (!FILTERS.includes(k)) p.delete(k);
    return p;
  }

  const pad = (n, w = 2) => String(n).padStart(w, "0");
  function when(ts) {
    const d = new Date(ts * 1000);
    const today = new Date().toDateString() === d.toDateString();
    const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `;
    return (today ? "" : day) + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function row(r) {
    const name = levelName(r.level);
    const tr = document.createElement("tr");
    tr.className = `row-${name}`;
    tr.dataset.id = r.id;
    tr.dataset.ts = r.ts;
    tr.dataset.kind = r.source_kind;
    tr.dataset.source = r.source_id;
    tr.dataset.seq = r.seq;
    const refs = [r.job_id ? link("job", r.job_id) : "", r.object_id ? link("object", r.object_id) : ""]
      .filter(Boolean).join('<span class="muted"> · </span>');
    const exc = r.exc ? `<details><summary>exception</summary><pre>${f3d.esc(r.exc)}</pre></details>` : "";
    tr.innerHTML =
      `<td class="when" title="${f3d.esc(new Date(r.ts * 1000).toISOString())}">${f3d.esc(when(r.ts))}</td>` +
      `<td class="lvl"><span class="lvl-${name}">${name}</span></td>` +
      `<td class="src" title="${f3d.esc(r.host ? "host " + r.host : "")}"><span class="muted">${f3d.esc(r.source_kind)}/</span>${link("source", r.source_id)}</td>` +
      `<td class="refs">${refs}</td>` +
      `<td class="msg">${r.logger ? `<span class="muted">${f3d.esc(r.logger)}</span> ` : ""}${f3d.esc(r.message)}${exc}</td>`;
    return tr;
  }

  function showStatus(text) { status.textContent = text; }

  // The store's order: ts, then source kind, source id, sequence.
  function compare(r, tr) {
    const d = tr.dataset;
    const a = [r.ts, r.source_kind, r.source_id, r.seq];
    const b = [Number(d.ts), d.kind, d.source, Number(d.seq)];
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    return 0;
  }
  // The paging cursor of a row (as the store writes next_before).
  const cursorOf = (tr) => `${tr.dataset.ts}:${tr.dataset.seq}:${tr.dataset.kind}:${tr.dataset.source}`;

  async function load(append) {
    const p = filters();
    p.set("limit", "200");
    if (append && nextBefore) p.set("before", nextBefore);
    try {
      const reply = await f3d.getJSON("/api/logs?" + p.toString());
      if (!append) { tbody.replaceChildren(); shown = new Set(); lateHidden = 0; }
      for (const r of reply.records) {
        if (shown.has(r.id)) continue;
        shown.add(r.id);
        tbody.appendChild(row(r));
      }
      nextBefore = reply.next_before || null;
      older.hidden = !nextBefore;
      empty.hidden = tbody.children.length > 0;
      showStatus(`${tbody.children.length} record(s)` + (nextBefore ? ", more available" : ""));
    } catch (err) {
      showStatus("Error: " + err.message);
    }
  }

  function startLive() {
    stopLive();
    const p = filters();
    p.delete("since");
    stream = new EventSource("/api/logs/stream?" + p.toString());
    stream.onopen = () => showStatus("live: waiting for new records…");
    stream.onmessage = (ev) => {
      const r = JSON.parse(ev.data);
      if (shown.has(r.id)) return;
      // Its place in time order: before the first row it is newer than.
      let at = tbody.firstElementChild;
      while (at && compare(r, at) < 0) at = at.nextElementSibling;
      if (!at && nextBefore) {
        // Older than every row shown while older ones exist: "Load older" will bring it.
        lateHidden += 1;
        showStatus(`live · ${tbody.children.length} record(s) · ${lateHidden} late record(s) older than this page`);
        return;
      }
      shown.add(r.id);
      const tr = row(r);
      tr.classList.add("fresh");
      const top = tbody.firstElementChild;
      if (top && r.ts < Number(top.dataset.ts) - LATE_AFTER_S) {
        tr.classList.add("late");
        tr.title = "arrived late (after newer records): shown where it was written";
        tr.querySelector("td.when").insertAdjacentHTML("beforeend", ' <span class="late-tag">late</span>');
      }
      tbody.insertBefore(tr, at);
      while (tbody.children.length > MAX_ROWS) {
        tbody.lastChild.remove();
        nextBefore = cursorOf(tbody.lastChild);
        older.hidden = false;
      }
      empty.hidden = true;
      showStatus(`live · ${tbody.children.length} record(s)`);
    };
    stream.addEventListener("gap", (ev) => {
      const n = JSON.parse(ev.data).dropped;
      showStatus(`live · ${n} record(s) skipped (too fast to show); search to see them`);
    });
    stream.onerror = () => showStatus("live: connection lost, reconnecting…");
  }

  function stopLive() {
    if (stream) { stream.close(); stream = null; }
  }

  function syncUrl() {
    const p = filters();
    if (live.checked) p.set("live", "1");
    const qs = p.toString();
    history.replaceState(null, "", location.pathname + (qs ? "?" + qs : ""));
  }

  function fromUrl() {
    const p = new URLSearchParams(location.search);
    for (const name of FILTERS) {
      const el = form.elements.namedItem(name);
      if (el) el.value = p.get(name) || "";
    }
    live.checked = p.get("live") === "1";
  }

  async function apply() {
    syncUrl();
    await load(false);
    if (live.checked) startLive(); else stopLive();
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); apply(); });
  document.getElementById("log-clear").addEventListener("click", () => { form.reset(); apply(); });
  form.querySelector("select[name=level]").addEventListener("change", apply);
  older.addEventListener("click", () => load(true));
  live.addEventListener("change", () => { syncUrl(); if (live.checked) startLive(); else { stopLive(); showStatus(""); } });
  fromUrl();
  apply();
})();
