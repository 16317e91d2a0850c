// Lookalike search page. Helpers (and the rules they keep) in common.js.
"use strict";

(() => {
  const L = window.Lookalike;
  const { $, safeUrl, showMessage, callApi, formatNumber } = L;
  const form = $("search-form");
  const fileInput = $("file-input");
  const kInput = $("k-input");
  const dropZone = $("drop-zone");
  const button = $("search-button");
  const querySection = $("query");
  const queryImage = $("query-image");
  const queryName = $("query-name");
  const queryRecon = $("query-reconstruction");
  const queryReconCaption = $("query-reconstruction-caption");
  const denoiseInput = $("denoise-input");
  const collapseInput = $("collapse-input");
  const queryError = $("query-error");
  const queryAnomaly = $("query-anomaly");
  const queryAnomalyLabel = $("query-anomaly-label");
  const results = $("results");
  const template = $("card-template");
  const stats = $("stats");
  const filters = L.filters();
  const regionBox = $("region-box");
  const regionInfo = $("region-info");
  const regionClear = $("region-clear");
  const WHOLE = regionInfo.textContent;

  let current = null;      // {file, region} or {id}: what the form's Search button re-runs
  let shownSize = null;    // {width, height}: the query's own pixels, which a region is in
  let lastUpload = null;   // {file, body}: shown again when history goes back to it
  let objectUrl = null;    // preview of the uploaded file, revoked when replaced
  let sequence = 0;        // only the newest request may draw

  function setBusy(busy) {
    document.body.classList.toggle("busy", busy);
    results.setAttribute("aria-busy", busy ? "true" : "false");
    button.disabled = busy || document.body.dataset.ready === "false";
  }

  function kValue() {
    const k = Number(kInput.value);
    if (!Number.isInteger(k) || k < 1 || k > Number(kInput.max)) {
      showMessage(`Results must be a whole number from 1 to ${kInput.max}.`);
      return null;
    }
    return k;
  }

  function showQuery(src, name, reconSrc, query) {
    queryImage.src = src;
    queryImage.alt = `Query: ${name}`;
    queryName.textContent = name;
    if (reconSrc) {
      queryRecon.src = reconSrc;
      queryRecon.hidden = false;
    } else {
      queryRecon.removeAttribute("src");
      queryRecon.hidden = true;
    }
    queryReconCaption.textContent = query.denoised
      ? "Denoised (searched with this)" : "Reconstruction";
    queryError.textContent = formatNumber(query.reconstruction_error, 5);
    shownSize = { width: query.width, height: query.height };
    const box = Array.isArray(query.box) ? query.box : null;
    regionBox.hidden = !box;
    if (box) {
      window.LookalikeRegion.show($("region-frame"), queryImage, regionBox, {
        x0: box[0] / query.width, y0: box[1] / query.height,
        x1: box[2] / query.width, y1: box[3] / query.height });
    }
    regionClear.hidden = !box;
    regionInfo.textContent = box ? `pixels ${box.join(", ")} searched` : WHOLE;
    // The anomaly flag, once the API reports one (a boolean `anomalous`).
    const flagged = typeof query.anomalous === "boolean";
    queryAnomaly.hidden = queryAnomalyLabel.hidden = !flagged;
    if (flagged) {
      queryAnomaly.textContent = query.anomalous ? "unusual for this collection" : "no";
      queryAnomaly.classList.toggle("flagged", query.anomalous);
    }
    querySection.hidden = false;
  }

  function card(hit) {
    const node = L.card(template, hit, formatNumber(hit.similarity, 3));
    const open = node.querySelector(".card-button");
    open.dataset.id = String(hit.id);
    open.addEventListener("click", () => navigateToImage(hit.id));
    node.querySelector(".original").href = safeUrl(hit.original_url);
    node.querySelector(".on-map").href = `map?id=${encodeURIComponent(hit.id)}`;
    const copies = Array.isArray(hit.copies) ? hit.copies : [];
    if (copies.length) {
      const label = node.querySelector(".copies");
      label.textContent = `+${copies.length} ${copies.length === 1 ? "copy" : "copies"}`;
      label.title = copies.map((c) => String(c.name)).join("\n");
      label.hidden = false;
    }
    return node;
  }

  function showResults(hits) {
    results.replaceChildren(...hits.map(card));
    if (!hits.length) showMessage("No results.");
  }

  function previewOf(file) {
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(file);
    return objectUrl;
  }

  function drawUpload(file, body) {
    showQuery(previewOf(file), file.name || "pasted image", body.query.reconstruction, body.query);
    showResults(body.results);
  }

  // *region*: fractions of the picture (region.js), searched alone with the API's box.
  async function searchFile(file, region = null) {
    current = { file, region };
    const k = kValue();
    if (k === null) return;
    const mine = ++sequence;
    showMessage("");
    setBusy(true);
    const data = new FormData();
    data.append("image", file, file.name || "pasted-image");
    data.append("k", String(k));
    if (denoiseInput.checked) data.append("denoise", "true");
    if (collapseInput.checked) data.append("collapse", "true");
    filters.addTo(data);
    if (region && shownSize) {
      data.append("box", window.LookalikeRegion.boxText(region, shownSize.width, shownSize.height));
    }
    try {
      const body = await callApi("api/search", { method: "POST", body: data });
      if (mine !== sequence) return;
      lastUpload = { file, body };
      if (new URLSearchParams(location.search).has("similar")) {
        history.pushState({}, "", location.pathname);
      }
      drawUpload(file, body);
    } catch (err) {
      if (mine === sequence) showMessage(err.message);
    } finally {
      if (mine === sequence) setBusy(false);
    }
  }

  async function searchImage(id) {
    current = { id };
    const k = kValue();
    if (k === null) return;
    const mine = ++sequence;
    showMessage("");
    setBusy(true);
    try {
      const query = filters.addTo(new URLSearchParams({ k: String(k) }));
      const url = `api/images/${encodeURIComponent(id)}/similar?${query}`;
      const body = await callApi(url, { headers: { Accept: "application/json" } });
      if (mine !== sequence) return;
      const q = body.query;
      showQuery(safeUrl(q.thumbnail_url), String(q.name), safeUrl(q.reconstruction_url), q);
      showResults(body.results);
    } catch (err) {
      if (mine === sequence) showMessage(err.message);
    } finally {
      if (mine === sequence) setBusy(false);
    }
  }

  function navigateToImage(id) {
    history.pushState({ similar: id }, "", `?similar=${encodeURIComponent(id)}`);
    searchImage(id);
    window.scrollTo({ top: 0, behavior: "smooth" });
  }

  function fromLocation() {
    const id = new URLSearchParams(location.search).get("similar");
    if (id && /^\d+$/.test(id)) {
      searchImage(id);
    } else if (lastUpload) {
      current = { file: lastUpload.file };
      drawUpload(lastUpload.file, lastUpload.body);
    }
  }

  // -- inputs: file chooser, drag and drop, paste, the form -----------------------------

  L.acceptImages(dropZone, fileInput, (file) => searchFile(file));

  // A region of the query: of the upload itself, or of a library image's original file.
  async function searchRegion(region) {
    if (current && current.file) {
      searchFile(current.file, region);
    } else if (current && current.id !== undefined) {
      try {
        const blob = await callApi(`images/${encodeURIComponent(current.id)}/original`);
        searchFile(new File([blob], queryName.textContent, { type: blob.type }), region);
      } catch (err) {
        showMessage(err.message);
      }
    }
  }
  window.LookalikeRegion.attach($("region-frame"), queryImage, regionBox, searchRegion);
  // The same without a pointer: the region typed in the query's own pixels.
  $("region-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const found = /^\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*$/.exec($("region-input").value);
    if (!found || !shownSize) {
      showMessage("Type the region as x0,y0,x1,y1: whole numbers, in the query's pixels.");
      return;
    }
    const [x0, y0, x1, y1] = found.slice(1).map(Number);
    const { width, height } = shownSize;
    regionBox.hidden = true; // drawn again when the answer says which pixels were searched
    searchRegion({ x0: Math.min(x0, x1) / width, y0: Math.min(y0, y1) / height,
      x1: Math.max(x0, x1) / width, y1: Math.max(y0, y1) / height });
  });
  regionClear.addEventListener("click", () => {
    if (current && current.file) searchFile(current.file);
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (current && current.file) searchFile(current.file, current.region);
    else if (current && current.id !== undefined) searchImage(current.id);
    else showMessage("Choose, drop or paste an image first.");
  });

  window.addEventListener("popstate", fromLocation);

  // -- what is in the collection ----------------------------------------------------------

  filters.loaded.catch(() => {}); // without the list, searches are over every folder

  callApi("api/stats")
    .then((info) => {
      if (!info.ready) return;
      const parts = [`${info.images} images`];
      if (info.index_type) parts.push(info.index_type);
      if (info.model_kind) parts.push(`${info.model_kind} model, ${info.latent_dim}-d codes`);
      stats.textContent = parts.join(" · ");
    })
    .catch(() => {});

  fromLocation();
})();
