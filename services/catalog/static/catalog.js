// Catalog pages: send action forms to the JSON API, then show the result.
(function () {
  function readBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
      reader.onerror = () => reject(new Error("cannot read " + file.name));
      reader.readAsDataURL(file);
    });
  }

  // getAttribute, not form.dataset: a field named "dataset" would shadow that property.
  const attr = (form, name) => form.getAttribute(`data-${name}`);

  async function body(form, submitter) {
    const data = {};
    if (attr(form, "kind") === "review") {
      data.decision = submitter ? submitter.value : "approved";
      data.checklist = {};
      for (const cb of form.querySelectorAll('input[type="checkbox"]')) data.checklist[cb.name] = cb.checked;
      data.comment = form.querySelector('[name="comment"]').value;
      return data;
    }
    for (const [k, v] of new FormData(form).entries()) {
      if (typeof v === "string") data[k] = v.trim();
    }
    const file = form.querySelector('input[type="file"]');
    if (file && file.files && file.files[0]) {
      data.reference_image_b64 = await readBase64(file.files[0]);
      data.reference_image_name = file.files[0].name;
    }
    return data;
  }

  async function submit(ev) {
    const form = ev.target.closest("form.action");
    if (!form) return;
    ev.preventDefault();
    const msg = form.querySelector(".msg");
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    if (msg) {
      msg.className = "msg busy";
      msg.textContent = attr(form, "busy") || "Working…";
    }
    try {
      const result = await window.f3d.postJSON(attr(form, "post"), await body(form, ev.submitter));
      if (attr(form, "go") === "object" && result.object_id) {
        window.location.href = "/objects/" + encodeURIComponent(result.object_id);
      } else if (attr(form, "go") === "customer" && result.slug) {
        // the page says "Added customer …" and lists it in the register form
        window.location.href = "/objects?added=" + encodeURIComponent(result.slug);
      } else {
        window.location.reload();
      }
    } catch (err) {
      if (msg) {
        msg.className = "msg error";
        msg.textContent = err.message;
      }
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  document.addEventListener("submit", submit);
})();
