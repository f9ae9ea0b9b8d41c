// Review in 3D: live adjustments on the object page's viewers, saved as viewer settings.
(function () {
  const panel = document.querySelector(".review3d");
  if (!panel) return;
  const form = panel.querySelector("form.review-adjust");
  const viewers = () => Array.from(panel.querySelectorAll("foto3d-viewer"));
  const saved = JSON.parse(panel.dataset.settings || "{}");
  let camera = saved.camera || null;

  function num(name) {
    const v = form.elements[name].value.trim();
    return v === "" ? null : Number(v);
  }

  // The settings the form describes (proto/viewer.py ViewerSettings); empty fields are left out.
  function settings() {
    const out = {};
    const rotation = ["rot_x", "rot_y", "rot_z"].map((n) => Number(form.elements[n].value));
    if (rotation.some((d) => d !== 0)) out.rotation = rotation;
    const limits = {};
    for (const n of ["min_elevation", "max_elevation", "min_distance", "max_distance"]) {
      const v = num(n);
      if (v !== null) limits[n] = v;
    }
    if (Object.keys(limits).length) out.limits = limits;
    const bg = form.elements.background.value.trim();
    if (bg) out.background = bg;
    if (form.elements.auto_rotate.checked) out.auto_rotate = true;
    if (camera) out.camera = camera;
    if (saved.hotspots) out.hotspots = saved.hotspots;
    if (saved.ui) out.ui = saved.ui;
    return out;
  }

  function preview() {
    const s = settings();
    for (const o of form.querySelectorAll("output")) o.textContent = o.previousElementSibling.value;
    // a field left out must fall back to its default in the preview too
    const full = { rotation: [0, 0, 0], limits: {}, background: null, auto_rotate: false, camera: null, ...s };
    for (const v of viewers()) if (v.applyConfig) v.applyConfig(full);
  }

  form.addEventListener("input", preview);
  form.querySelector(".set-view").addEventListener("click", () => {
    const full = panel.querySelector('foto3d-viewer[data-role="full"]') || viewers()[0];
    if (!full || full.state !== "ready") return;
    const view = full.currentView();
    camera = { azimuth: view.azimuth, elevation: view.elevation, distance: view.distance };
    preview();
    const msg = form.querySelector(".msg");
    msg.className = "msg";
    msg.textContent = `default view: azimuth ${view.azimuth}°, elevation ${view.elevation}°, distance ×${view.distance}`;
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const msg = form.querySelector(".msg");
    const button = form.querySelector(".save-viewer");
    button.disabled = true;
    msg.className = "msg busy";
    msg.textContent = "Saving…";
    try {
      const url = `/api/objects/${encodeURIComponent(panel.dataset.object)}/viewer`;
      const result = await window.f3d.postJSON(url, { settings: settings(), comment: form.elements.comment.value });
      msg.className = "msg ok";
      msg.textContent = `saved as version ${result.version}`;
      window.location.reload();
    } catch (err) {
      msg.className = "msg error";
      msg.textContent = err.message;
      button.disabled = false;
    }
  });
  for (const o of form.querySelectorAll("output")) o.textContent = o.previousElementSibling.value;
})();
