// Capture notes: send the note form (text, tags, photos) to the JSON API, then reload.
(function () {
  function readBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
      reader.onerror = () => reject(new Error("cannot read " + file.name));
      reader.readAsDataURL(file);
    });
  }

  async function submit(ev) {
    const form = ev.target.closest("form.note-form");
    if (!form) return;
    ev.preventDefault();
    const msg = form.querySelector(".msg");
    const button = form.querySelector("button");
    button.disabled = true;
    msg.className = "msg busy";
    msg.textContent = "Saving…";
    try {
      const photos = [];
      for (const file of form.querySelector('input[name="photos"]').files) {
        photos.push({ name: file.name, b64: await readBase64(file) });
      }
      await window.f3d.postJSON(form.getAttribute("data-post"), {
        text: form.querySelector('[name="text"]').value,
        tags: form.querySelector('[name="tags"]').value,
        new_tags: form.querySelector('[name="new_tags"]').checked,
        photos,
      });
      window.location.reload();
    } catch (err) {
      msg.className = "msg error";
      msg.textContent = err.message;
      button.disabled = false;
    }
  }

  document.addEventListener("submit", submit);
})();
