// Helpers shared by every page (search, denoise, anomalies, explore). Plain JS, no
// build step, nothing from the network, and every piece of server data is written
// with textContent or as a property (src, href, title), never parsed as HTML.
"use strict";

window.Lookalike = (() => {
  const $ = (id) => document.getElementById(id);

  // URLs come from our own API: same-origin paths, or PNG data URLs it made.
  const safeUrl = (url) =>
    typeof url === "string" && url.startsWith("/") && !url.startsWith("//") ? url : "";
  const safeDataUrl = (url) =>
    typeof url === "string" && url.startsWith("data:image/png;base64,") ? url : "";

  function showMessage(text) {
    const message = $("message");
    message.textContent = text;
    message.hidden = !text;
  }

  async function callApi(url, options) {
    const response = await fetch(url, options);
    const isJson = (response.headers.get("Content-Type") || "").includes("application/json");
    if (!response.ok) {
      let detail = response.statusText;
      if (isJson) {
        try {
          const body = await response.json();
          if (body && body.error) detail = body.error.message;
        } catch (_) { /* keep the status text */ }
      }
      throw new Error(`${detail} (HTTP ${response.status})`);
    }
    return isJson ? response.json() : response.blob();
  }

  function formatNumber(value, digits) {
    return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
  }

  function formatBytes(n) {
    if (typeof n !== "number") return "–";
    if (n < 1024) return `${n} B`;
    return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  // An <img> for a data URL or same-origin path; anything else is left blank.
  function image(src, alt, className) {
    const img = document.createElement("img");
    img.src = safeDataUrl(src) || safeUrl(src);
    img.alt = alt;
    if (className) img.className = className;
    return img;
  }

  function figure(src, caption, className) {
    const fig = document.createElement("figure");
    const text = document.createElement("figcaption");
    text.textContent = caption;
    fig.append(image(src, caption, className), text);
    return fig;
  }

  // The integer in an <input>, or null (with a message) when it is outside its min..max.
  function intValue(input, label) {
    if (input.value.trim() === "") return "";
    const value = Number(input.value);
    const min = input.min === "" ? -Infinity : Number(input.min);
    const max = input.max === "" ? Infinity : Number(input.max);
    if (!Number.isInteger(value) || value < min || value > max) {
      const range =
        Number.isFinite(max) ? `from ${input.min} to ${input.max}` : `of at least ${input.min}`;
      showMessage(`${label} must be a whole number ${range}.`);
      return null;
    }
    return value;
  }

  // Runs *task* with the button disabled and the page marked busy; errors become the message.
  async function busy(button, task) {
    showMessage("");
    button.disabled = true;
    document.body.classList.add("busy");
    try {
      await task();
    } catch (err) {
      showMessage(err.message);
    } finally {
      button.disabled = false;
      document.body.classList.remove("busy");
    }
  }

  // The first image among *files*, else the first file (the server then says what is wrong).
  function firstImage(files) {
    for (const file of files || []) {
      if (file && file.type.startsWith("image/")) return file;
    }
    return files && files.length ? files[0] : null;
  }

  // Every way to give a page an image: its file chooser, a drop anywhere on the page, a
  // paste, or Enter/Space on the drop zone. Each hands the file to *onFile*.
  function acceptImages(dropZone, fileInput, onFile) {
    fileInput.addEventListener("change", () => {
      const file = firstImage(fileInput.files);
      if (file) onFile(file);
    });
    document.addEventListener("dragover", (event) => {
      event.preventDefault();
      dropZone.classList.add("dragging");
    });
    document.addEventListener("dragleave", (event) => {
      if (event.target === document.documentElement || event.target === dropZone) {
        dropZone.classList.remove("dragging");
      }
    });
    document.addEventListener("drop", (event) => {
      event.preventDefault(); // never let the browser navigate to the dropped file
      dropZone.classList.remove("dragging");
      const file = firstImage(event.dataTransfer && event.dataTransfer.files);
      if (file) onFile(file);
      else showMessage("Drop an image file.");
    });
    document.addEventListener("paste", (event) => {
      const items = event.clipboardData ? Array.from(event.clipboardData.items) : [];
      const item = items.find((i) => i.kind === "file" && i.type.startsWith("image/"));
      if (!item) return; // an ordinary text paste, e.g. into a number field
      event.preventDefault();
      const file = item.getAsFile();
      if (file) onFile(file);
    });
    dropZone.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        fileInput.click();
      }
    });
  }

  // A result card cloned from *template* (.thumb, .recon, .score, .name, .card-button) and
  // filled in for one catalog image; the caller makes .card-button follow it.
  function card(template, item, scoreText) {
    const node = template.content.firstElementChild.cloneNode(true);
    const name = String(item.name);
    const thumb = node.querySelector(".thumb");
    thumb.src = safeUrl(item.thumbnail_url);
    thumb.alt = name;
    const recon = node.querySelector(".recon");
    recon.src = safeUrl(item.reconstruction_url);
    recon.alt = `Reconstruction of ${name}`;
    node.querySelector(".score").textContent = scoreText;
    node.querySelector(".name").textContent = name;
    node.querySelector(".card-button").title = `${item.path}\nClick to search by this image`;
    node.dataset.id = String(item.id);
    return node;
  }

  // A card whose .card-button is a link to the search page's results for that image.
  function linkCard(template, item, scoreText) {
    const node = card(template, item, scoreText);
    node.querySelector(".card-button").href = `search?similar=${encodeURIComponent(item.id)}`;
    return node;
  }

  // The page's folder and date filters (_filters.html): the folder list filled from the
  // library, and the chosen values put into URLSearchParams or FormData.
  function filters() {
    const inputs = [["folder", $("folder-input")], ["date_from", $("from-input")],
      ["date_to", $("to-input")]];
    const loaded = callApi("api/folders").then((body) => {
      for (const folder of body.folders) {
        const option = document.createElement("option");
        option.value = folder.path;
        option.textContent = `${folder.path} (${folder.images})`;
        inputs[0][1].append(option);
      }
    });
    const addTo = (params) => {
      for (const [name, input] of inputs) if (input.value) params.set(name, input.value);
      return params;
    };
    return { loaded, addTo };
  }

  // Pan and zoom *element*'s view by keyboard (+, −, 0 to fit, arrows), wheel and drag.
  // zoomBy(factor, event) zooms (factor 0: fit; event: the wheel's, where the pointer is);
  // pan(dx, dy) moves by pixels; targets (and pointer events) that *ignore(target, event)*
  // names keep their own keys and clicks.
  function panZoom(element, { zoomBy, pan, step = 1.25, ignore = () => false }) {
    const moves = { ArrowLeft: [40, 0], ArrowRight: [-40, 0], ArrowUp: [0, 40], ArrowDown: [0, -40] };
    let drag = null;
    element.addEventListener("keydown", (event) => {
      if (ignore(event.target)) return;
      if (event.key === "+" || event.key === "=") zoomBy(step);
      else if (event.key === "-") zoomBy(1 / step);
      else if (event.key === "0") zoomBy(0);
      else if (moves[event.key]) pan(...moves[event.key]);
      else return;
      event.preventDefault();
    });
    element.addEventListener("wheel", (event) => {
      event.preventDefault();
      zoomBy(event.deltaY < 0 ? step : 1 / step, event);
    }, { passive: false });
    element.addEventListener("pointerdown", (event) => {
      if (ignore(event.target, event)) return;
      drag = { x: event.clientX, y: event.clientY };
      element.setPointerCapture(event.pointerId);
    });
    element.addEventListener("pointermove", (event) => {
      if (!drag) return;
      pan(event.clientX - drag.x, event.clientY - drag.y);
      drag = { x: event.clientX, y: event.clientY };
    });
    element.addEventListener("pointerup", () => { drag = null; });
  }

  // Arrow keys move the focus between the *selector* items of a CSS *grid*, as they are laid
  // out (up and down by a row); each item carries its place in data-index.
  function gridKeys(grid, selector) {
    grid.addEventListener("keydown", (event) => {
      const current = event.target.closest(selector);
      if (!current) return;
      const columns = getComputedStyle(grid).gridTemplateColumns.split(" ").filter(Boolean).length || 1;
      const steps = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns, ArrowDown: columns };
      if (!(event.key in steps)) return;
      event.preventDefault();
      const target = Number(current.dataset.index) + steps[event.key];
      const next = grid.querySelector(`${selector}[data-index="${target}"]`);
      if (next) next.focus();
    });
  }

  // The image dialog (_lightbox.html): one image large beside its reconstruction, its facts,
  // and where to go from it (Similar, its copies, the map, Explore's slots). *step(delta)*
  // shows the previous or next image of the caller's list; *closed()* runs once it closes.
  function lightbox({ step = null, closed = () => {} } = {}) {
    const dialog = $("lightbox");
    const fact = (list, label, value) => {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = value;
      list.append(dt, dd);
    };
    const when = (text) => String(text).slice(0, 19).replace("T", " ");
    function show(item, { first = true, last = true } = {}) {
      const name = String(item.name);
      const id = encodeURIComponent(item.id);
      $("lightbox-name").textContent = name;
      const original = $("lightbox-original");
      original.src = safeUrl(item.preview_url);
      original.alt = name;
      const recon = $("lightbox-reconstruction");
      recon.src = safeUrl(item.reconstruction_url);
      recon.alt = `The model's reconstruction of ${name}`;
      const facts = $("lightbox-facts");
      facts.replaceChildren();
      fact(facts, "Path", item.path);
      fact(facts, "Pixels", `${item.width} × ${item.height}`);
      fact(facts, "File", `${formatBytes(item.size)}${item.format ? `, ${item.format}` : ""}`);
      fact(facts, item.taken_at === null ? "Modified" : "Taken", when(item.file_date));
      fact(facts, "Indexed", when(item.indexed_at));
      fact(facts, "Reconstruction error", formatNumber(item.reconstruction_error, 5));
      $("lightbox-similar").href = `search?similar=${id}`;
      $("lightbox-duplicates").href = `duplicates?image=${id}&status=all`;
      $("lightbox-map").href = `map?id=${id}`;
      for (const slot of ["a", "b", "c"]) $(`use-${slot}`).href = `explore?${slot}=${id}`;
      $("lightbox-open").href = safeUrl(item.original_url);
      $("lightbox-previous").hidden = $("lightbox-next").hidden = !step;
      $("lightbox-previous").disabled = first;
      $("lightbox-next").disabled = last;
      if (!dialog.open) dialog.showModal();
      if (document.activeElement && document.activeElement.disabled) $("lightbox-close").focus();
    }
    if (step) {
      dialog.addEventListener("keydown", (event) => { // as the buttons would, when they may
        const button = { ArrowLeft: "lightbox-previous", ArrowRight: "lightbox-next" }[event.key];
        if (button && !$(button).disabled && !$(button).hidden) $(button).click();
      });
      $("lightbox-previous").addEventListener("click", () => step(-1));
      $("lightbox-next").addEventListener("click", () => step(1));
    }
    // After the browser's own focus restore (to what opened the dialog), hence the timeout.
    dialog.addEventListener("close", () => setTimeout(closed, 0));
    $("lightbox-close").addEventListener("click", () => dialog.close());
    return { show, dialog };
  }

  // The operator's admin token (_admin_token.html), which moving files needs. Kept in
  // sessionStorage: for this tab only, gone when it closes, never sent but as a header.
  const TOKEN_KEY = "lookalike-admin-token";

  function adminToken() {
    const input = $("admin-token-input");
    if (input) {
      input.value = sessionStorage.getItem(TOKEN_KEY) || "";
      input.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, input.value));
    }
  }

  // POST *body* as JSON with the admin token; the answer's JSON. Without a token typed,
  // nothing is sent: the error says what to do.
  function requireAdminToken() {
    if (!sessionStorage.getItem(TOKEN_KEY)) {
      throw new Error("Moving files needs the admin token: type it first.");
    }
  }

  async function callAdmin(url, body) {
    requireAdminToken();
    return callApi(url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}`,
      },
      body: JSON.stringify(body),
    });
  }

  return Object.freeze({
    $, safeUrl, safeDataUrl, showMessage, callApi, formatNumber, formatBytes, image, figure,
    intValue, busy, firstImage, acceptImages, card, linkCard, filters, adminToken, callAdmin,
    panZoom, gridKeys, lightbox, requireAdminToken,
  });
})();
