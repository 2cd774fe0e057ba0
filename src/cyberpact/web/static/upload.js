// Resumable evidence upload for the desk. The file is sent in slices of the server's chunk size with
// PUT and an Upload-Offset header; when a slice fails (a dropped connection, a timeout, a restart), the
// script asks the server how far it got and continues from there. Nothing here is needed by any other
// page; no framework, no network access beyond this origin.
"use strict";

(function () {
  const MAX_FAILURES = 12;

  function message(key) {
    const tpl = document.getElementById("upload-messages");
    const el = tpl && tpl.content.querySelector('[data-key="' + key + '"]');
    return el ? el.textContent : key;
  }

  function csrfToken() {
    const field = document.querySelector('input[name="csrf"]');
    return field ? field.value : "";
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  async function serverOffset(stateUrl) {
    const r = await fetch(stateUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error("state " + r.status);
    const s = await r.json();
    return s;
  }

  async function send(file, info, progress, status) {
    const chunk = Math.max(1, info.chunk);
    progress.hidden = false;
    progress.max = Math.max(1, file.size);
    let offset = info.offset || 0;
    let failures = 0;
    status.textContent = message("uploading");
    for (;;) {
      const end = Math.min(offset + chunk, file.size);
      try {
        const r = await fetch(info.content, {
          method: "PUT",
          credentials: "same-origin",
          headers: {
            "Upload-Offset": String(offset),
            "X-CSRF-Token": csrfToken(),
            "Content-Type": "application/octet-stream",
            Accept: "application/json",
          },
          body: file.slice(offset, end),
        });
        if (r.status === 409) {
          // The server kept a different amount than we thought: take its word and go on from there.
          const s = await serverOffset(info.state);
          if (s.complete) { offset = file.size; break; }
          offset = s.offset;
          continue;
        }
        if (!r.ok) throw new Error("upload " + r.status);
        const s = await r.json();
        offset = s.offset;
        failures = 0;
        status.textContent = message("uploading");
        progress.value = offset;
        if (s.complete) break;
      } catch (err) {
        failures += 1;
        if (failures > MAX_FAILURES) {
          status.textContent = message("failed");
          return false;
        }
        status.textContent = message("retrying");
        await sleep(Math.min(500 * Math.pow(2, failures - 1), 15000));
        try {
          const s = await serverOffset(info.state);
          if (s.complete) { offset = file.size; break; }
          offset = s.offset;
        } catch (ignored) {
          // Still unreachable: the next round retries from the offset we last knew.
        }
      }
      progress.value = offset;
    }
    progress.value = progress.max;
    status.textContent = message("done");
    return true;
  }

  function startNew(form) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const input = form.querySelector('input[type="file"]');
      const progress = form.querySelector("progress");
      const status = form.querySelector(".upload-status");
      const button = form.querySelector('button[type="submit"]');
      const file = input.files && input.files[0];
      if (!file) { input.focus(); return; }
      form.elements.name.value = file.name;
      form.elements.size.value = String(file.size);
      form.elements.media_type.value = file.type || "application/octet-stream";
      const data = new URLSearchParams();
      for (const [key, value] of new FormData(form)) {
        if (typeof value === "string") data.append(key, value);
      }
      button.disabled = true;
      const r = await fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        body: data,
      });
      if (!r.ok) {
        // The server's page says what is wrong with the form; show it as a normal submission would.
        form.submit();
        return;
      }
      const info = await r.json();
      const ok = await send(file, { content: info.content, state: info.state, chunk: info.chunk_size, offset: 0 }, progress, status);
      if (ok) window.location.reload();
      else button.disabled = false;
    });
  }

  function startResume(form) {
    const input = form.querySelector('input[type="file"]');
    input.addEventListener("change", async function () {
      const file = input.files && input.files[0];
      const status = form.querySelector(".upload-status");
      if (!file) return;
      if (file.name !== form.dataset.name || String(file.size) !== form.dataset.size) {
        status.textContent = message("mismatch");
        return;
      }
      const s = await serverOffset(form.dataset.state);
      const info = { content: form.dataset.content, state: form.dataset.state, chunk: Number(form.dataset.chunk), offset: s.offset };
      if (await send(file, info, form.querySelector("progress"), status)) window.location.reload();
    });
  }

  document.querySelectorAll("form[data-upload]").forEach(startNew);
  document.querySelectorAll("form[data-resume]").forEach(startResume);
})();
