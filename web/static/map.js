// Map page: every indexed image as a point placed by its code (GET /api/map); close in,
// the points in view become thumbnails. A click opens an image in the lightbox; a box
// drawn with Shift (or in Select mode), or "Select what is in view", lists the images
// inside as a grid. Helpers in common.js.
"use strict";

(() => {
  const L = window.Lookalike;
  const $ = L.$;
  const view = $("map-view");
  const canvas = $("map-canvas");
  const tiles = $("map-tiles");
  const box = $("map-box");
  const colourInput = $("colour-input");
  const restrictInput = $("restrict-input");
  const selectMode = $("map-select-mode");
  const selection = $("map-selection");
  const MOST_TILES = 120; // thumbnails drawn at once, at most: never all of them
  const MOST_LISTED = 200; // of a selection, listed as a grid
  const TILE = 56; // px
  const STEP = 1.5;
  const REACH = 8; // px: a click this close to a point picks it
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const RAMP = Array.from({ length: 32 }, (_, k) => { // blue (low) to red (high)
    const t = k / 31;
    return `rgb(${Math.round(40 + 200 * t)}, 80, ${Math.round(240 - 200 * t)})`;
  });
  const GREY = "#d0d0d0";
  const state = { zoom: 1, cx: 0, cy: 0 }; // the map point at the view's centre
  let points = null; // the answer's columns (typed arrays), count, folders, method
  let colourOf = null; // Uint8Array: each point's index into `palette`
  let palette = PALETTE;
  let byColour = null; // point indices ordered by colour: one fillStyle per colour drawn
  let outside = null; // Uint8Array: 1 where the folder and date filters leave a point out
  let selected = []; // indices of the selected points, in the grid's order
  let asked = -1; // the point map?id=N asked for, ringed
  let openIndex = -1; // the selected image the lightbox shows (-1: one clicked on the map)
  let openId = null; // the image it shows

  const lightbox = L.lightbox({
    step: (delta) => openSelected(openIndex + delta),
    closed: () => { // back to where the image was opened from: its grid tile, its map tile
      const back = openIndex >= 0 ? selection.querySelector(`[data-index="${openIndex}"]`)
        : tiles.querySelector(`[data-id="${openId}"]`);
      (back || view).focus();
    },
  });

  // Map coordinates ([-1, 1]) → pixels in the view, and back.
  function scale() {
    return (Math.min(view.clientWidth, view.clientHeight) / 2.2) * state.zoom;
  }
  function toScreen(x, y) {
    const s = scale();
    return [view.clientWidth / 2 + (x - state.cx) * s, view.clientHeight / 2 - (y - state.cy) * s];
  }
  function toMap(sx, sy) {
    const s = scale();
    return [(sx - view.clientWidth / 2) / s + state.cx, -(sy - view.clientHeight / 2) / s + state.cy];
  }
  const hidden = (i) => restrictInput.checked && outside[i] === 1;

  function colours() {
    const by = colourInput.value;
    const n = points.count;
    colourOf = new Uint8Array(n);
    if (by === "folder") {
      palette = PALETTE;
      $("map-legend").replaceChildren(...points.folders.slice(0, PALETTE.length).map((f, i) => {
        const key = document.createElement("span");
        key.className = "map-key";
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.backgroundColor = PALETTE[i]; // a colour patch: the name keeps its contrast
        key.append(swatch, f.split("/").pop());
        key.title = f;
        return key;
      }));
      for (let i = 0; i < n; i += 1) colourOf[i] = points.folder[i] % PALETTE.length;
    } else {
      palette = RAMP;
      const values = by === "date" ? points.date : points.reconstruction_error;
      const sorted = Float64Array.from(values).sort();
      const lo = sorted[0];
      const hi = sorted[Math.floor((n - 1) * 0.99)]; // the top 1 % all red: outliers stand out
      $("map-legend").textContent = by === "date"
        ? "Blue: oldest, red: newest."
        : "Blue: reconstructed well, red: unusual (the anomalies).";
      for (let i = 0; i < n; i += 1) {
        const t = hi > lo ? Math.min(1, Math.max(0, (values[i] - lo) / (hi - lo))) : 0.5;
        colourOf[i] = Math.round(t * (RAMP.length - 1));
      }
    }
    byColour = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => colourOf[a] - colourOf[b]);
  }

  // The library's filters, applied here: the folder (or below it) and the day range.
  function filtered() {
    const folder = $("folder-input").value;
    const from = $("from-input").value ? Date.parse(`${$("from-input").value}T00:00:00Z`) / 1000 : -Infinity;
    const to = $("to-input").value ? Date.parse(`${$("to-input").value}T23:59:59Z`) / 1000 : Infinity;
    const inFolder = points.folders.map((where) => !folder || where === folder || where.startsWith(`${folder}/`));
    outside = new Uint8Array(points.count);
    let out = 0;
    for (let i = 0; i < points.count; i += 1) {
      if (!inFolder[points.folder[i]] || points.date[i] < from || points.date[i] > to) {
        outside[i] = 1;
        out += 1;
      }
    }
    $("map-summary").textContent = `${points.count} image(s), placed by ${points.method.toUpperCase()} ` +
      `of their codes; ${points.folders.length} folder(s)` +
      (out ? `; ${points.count - out} within the filters.` : ".") +
      (points.fitting ? ` A ${points.fitting.toUpperCase()} layout, which keeps neighbours ` +
        "better, is being made: the map changes when it is ready." : "");
  }

  function draw() {
    if (!points) return;
    const ratio = window.devicePixelRatio || 1;
    const width = view.clientWidth;
    const height = view.clientHeight;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const inView = [];
    // Points a little larger when there are few, and as one zooms in.
    const r = Math.min(8, Math.max(1.5, 6 - 1.2 * Math.log10(points.count || 1)) + state.zoom / 4);
    const s = scale();
    const ox = width / 2 - state.cx * s;
    const oy = height / 2 + state.cy * s;
    let style = null;
    for (const grey of [true, false]) { // the filtered-out grey first, under the others
      for (let k = 0; k < points.count; k += 1) {
        const i = byColour[k];
        if ((outside[i] === 1) !== grey || (grey && restrictInput.checked)) continue;
        const sx = ox + points.x[i] * s;
        const sy = oy - points.y[i] * s;
        if (sx < -TILE || sy < -TILE || sx > width + TILE || sy > height + TILE) continue;
        inView.push(i);
        const fill = grey ? GREY : palette[colourOf[i]];
        if (fill !== style) ctx.fillStyle = style = fill;
        ctx.fillRect(sx - r / 2, sy - r / 2, r, r);
      }
    }
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "#000";
    for (const i of selected.length <= 5000 ? selected : []) { // the selection, outlined
      const [sx, sy] = toScreen(points.x[i], points.y[i]);
      ctx.strokeRect(sx - r / 2 - 1.5, sy - r / 2 - 1.5, r + 3, r + 3);
    }
    if (asked >= 0) {
      const [sx, sy] = toScreen(points.x[asked], points.y[asked]);
      ctx.beginPath();
      ctx.arc(sx, sy, TILE / 2 + 6, 0, 2 * Math.PI);
      ctx.stroke();
    }
    $("map-zoom").textContent = state.zoom === 1 ? "whole map" : `${Math.round(state.zoom * 100)} %`;
    drawTiles(inView.length <= MOST_TILES ? inView : []);
    view.dataset.visible = String(inView.length);
  }

  // The images in view as thumbnails (buttons that open the lightbox), once few enough
  // are in view.
  function drawTiles(shown) {
    const wanted = new Set(shown.map((i) => String(points.ids[i])));
    for (const tile of [...tiles.children]) if (!wanted.has(tile.dataset.id)) tile.remove();
    const have = new Map([...tiles.children].map((t) => [t.dataset.id, t]));
    for (const i of shown) {
      const id = String(points.ids[i]);
      let tile = have.get(id);
      if (!tile) {
        tile = thumbnail(i, "map-tile");
        tile.addEventListener("click", () => openImage(points.ids[i], -1));
        tiles.append(tile);
      }
      const [sx, sy] = toScreen(points.x[i], points.y[i]);
      tile.style.transform = `translate(${sx - TILE / 2}px, ${sy - TILE / 2}px)`;
      tile.style.borderColor = outside[i] ? GREY : palette[colourOf[i]];
      tile.classList.toggle("outside", outside[i] === 1);
    }
  }

  function thumbnail(i, className) {
    const id = String(points.ids[i]);
    const button = document.createElement("button");
    button.type = "button";
    button.className = className;
    button.dataset.id = id;
    button.title = "Open this image";
    const thumb = new URL(`images/${encodeURIComponent(id)}/thumbnail`, document.baseURI);
    button.append(L.image(thumb.pathname, `image ${id}`)); // a path from the page's own root
    return button;
  }

  async function openImage(id, index) {
    openIndex = index;
    openId = String(id);
    let item;
    try {
      item = await L.callApi(`api/images/${encodeURIComponent(id)}`);
    } catch (err) { // removed since the map was drawn, say
      L.showMessage(err.message);
      return;
    }
    // Opened from the map, not the grid: nothing to step to.
    const steps = index >= 0 ? { first: index === 0, last: index === listedCount() - 1 }
      : { first: true, last: true };
    lightbox.show(item, steps);
  }
  const listedCount = () => Math.min(selected.length, MOST_LISTED);
  function openSelected(index) {
    if (index < 0 || index >= listedCount()) return;
    openImage(points.ids[selected[index]], index);
  }

  // The nearest shown point within REACH pixels of a click, or -1.
  function pointAt(sx, sy) {
    let best = -1;
    let bestDistance = REACH * REACH;
    for (let i = 0; i < points.count; i += 1) {
      if (hidden(i)) continue;
      const [px, py] = toScreen(points.x[i], points.y[i]);
      const d = (px - sx) ** 2 + (py - sy) ** 2;
      if (d <= bestDistance) { best = i; bestDistance = d; }
    }
    return best;
  }

  // Every shown point inside the map rectangle spanned by two screen corners.
  function select(ax, ay, bx, by) {
    const [x0, y0] = toMap(Math.min(ax, bx), Math.max(ay, by));
    const [x1, y1] = toMap(Math.max(ax, bx), Math.min(ay, by));
    selected = [];
    for (let i = 0; i < points.count; i += 1) {
      const x = points.x[i];
      const y = points.y[i];
      if (x >= x0 && x <= x1 && y >= y0 && y <= y1 && !hidden(i)) selected.push(i);
    }
    listSelection();
    draw();
  }

  function listSelection() {
    const listed = selected.slice(0, MOST_LISTED);
    $("map-selection-summary").textContent = selected.length
      ? `${selected.length} image(s) selected` +
        (selected.length > listed.length ? `; the first ${listed.length} shown.` : ".") +
        " Arrow keys move between them, Enter opens one."
      : "Nothing selected: Shift-drag a box on the map, or select what is in view.";
    selection.replaceChildren(...listed.map((i, index) => {
      const tile = thumbnail(i, "selection-tile");
      tile.dataset.index = String(index);
      tile.addEventListener("click", () => openSelected(index));
      return tile;
    }));
    $("map-clear").disabled = selected.length === 0;
  }

  // Zoom by *factor* (0: the whole map), about the pointer when a wheel *event* says where.
  function zoomBy(factor, event) {
    const [x, y] = event ? pointerAt(event) : [view.clientWidth / 2, view.clientHeight / 2];
    const px = x - view.clientWidth / 2;
    const py = y - view.clientHeight / 2;
    const mx = px / scale() + state.cx;
    const my = -py / scale() + state.cy;
    state.zoom = Math.min(4096, Math.max(1, state.zoom * factor));
    state.cx = mx - px / scale(); // the point under the pointer stays under it
    state.cy = my + py / scale();
    if (state.zoom === 1) state.cx = state.cy = 0;
    draw();
  }
  function pan(dx, dy) { // in pixels
    state.cx -= dx / scale();
    state.cy += dy / scale();
    draw();
  }

  // The columns come packed (GET /api/map?packed=true): base64 of little-endian arrays,
  // read straight into typed arrays, no number parsed one at a time.
  function unpack(text, Type) {
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    return new Type(bytes.buffer);
  }

  let waiting = null; // the next look for the layout being made
  let latest = 0; // only the newest request's answer is drawn

  async function load() {
    clearTimeout(waiting);
    const mine = ++latest;
    const query = new URLSearchParams({ method: $("method-input").value, packed: "true" });
    const body = await L.callApi(`api/map?${query}`);
    if (mine !== latest) return; // the method changed meanwhile: a newer request follows
    // The better layout is made in the background: look again until it is there.
    if (body.fitting) waiting = setTimeout(() => load().catch((err) => L.showMessage(err.message)), 5000);
    if (points && body.method === points.method && body.fitting) return; // nothing new yet
    const selectedIds = new Set(selected.map((i) => points.ids[i])); // kept across layouts
    points = {
      count: body.count, method: body.method, folders: body.folders, fitting: body.fitting,
      ids: Float64Array.from(unpack(body.ids, BigInt64Array), Number), x: unpack(body.x, Float32Array),
      y: unpack(body.y, Float32Array), folder: unpack(body.folder, Int32Array),
      date: unpack(body.date, Float64Array),
      reconstruction_error: unpack(body.reconstruction_error, Float32Array),
    };
    colours();
    filtered();
    selected = [];
    points.ids.forEach((id, i) => { if (selectedIds.has(id)) selected.push(i); });
    listSelection();
    draw();
    centreOnAsked();
  }

  $("method-input").addEventListener("change", () => L.busy($("map-fit"), load));

  colourInput.addEventListener("change", () => { if (points) { colours(); draw(); } });
  L.filters().loaded.catch((err) => L.showMessage(err.message));
  for (const id of ["folder-input", "from-input", "to-input", "restrict-input"]) {
    $(id).addEventListener("change", () => {
      if (!points) return;
      filtered();
      if (restrictInput.checked) selected = selected.filter((i) => !outside[i]);
      listSelection();
      draw();
    });
  }
  $("map-zoom-in").addEventListener("click", () => zoomBy(STEP));
  $("map-zoom-out").addEventListener("click", () => zoomBy(1 / STEP));
  $("map-fit").addEventListener("click", () => zoomBy(0));
  $("map-select-view").addEventListener("click", () => {
    if (!points) return;
    select(0, 0, view.clientWidth, view.clientHeight);
    if (selected.length) selection.firstElementChild.focus();
  });
  $("map-clear").addEventListener("click", () => { selected = []; listSelection(); draw(); });
  selectMode.addEventListener("click", () => {
    const on = selectMode.getAttribute("aria-pressed") !== "true";
    selectMode.setAttribute("aria-pressed", String(on));
    view.classList.toggle("selecting", on);
  });

  // A drag with Shift held (or in Select mode) draws a box; a click without moving picks
  // the nearest point; any other drag pans (common.js).
  let drawing = null;
  const boxing = (event) => event.shiftKey || selectMode.getAttribute("aria-pressed") === "true";
  function pointerAt(event) { // the pointer's place in the map's box, in pixels
    const rect = view.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }
  view.addEventListener("pointerdown", (event) => {
    if (!points || event.target.closest(".map-tile")) return;
    const [x, y] = pointerAt(event);
    drawing = { x, y, box: boxing(event), moved: false };
    // A box's release may come outside the map: the view still hears it (a pan captures
    // the pointer in common.js).
    if (drawing.box) view.setPointerCapture(event.pointerId);
  });
  view.addEventListener("pointercancel", () => { drawing = null; box.hidden = true; });
  view.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const [x, y] = pointerAt(event);
    drawing.moved = drawing.moved || Math.abs(x - drawing.x) + Math.abs(y - drawing.y) > 4;
    if (!drawing.box) return;
    Object.assign(box.style, {
      left: `${Math.min(x, drawing.x)}px`, top: `${Math.min(y, drawing.y)}px`,
      width: `${Math.abs(x - drawing.x)}px`, height: `${Math.abs(y - drawing.y)}px`,
    });
    box.hidden = false;
  });
  view.addEventListener("pointerup", (event) => {
    if (!drawing) return;
    const [x, y] = pointerAt(event);
    const { x: startX, y: startY, box: boxed, moved } = drawing;
    drawing = null;
    box.hidden = true;
    if (boxed && moved) select(startX, startY, x, y);
    else if (!moved) {
      const i = pointAt(x, y);
      if (i >= 0) openImage(points.ids[i], -1);
    }
  });
  L.panZoom(view, {
    zoomBy,
    pan,
    step: STEP,
    // Tiles keep their own keys and clicks; a box being drawn is not a pan.
    ignore: (target, event) => Boolean(target.closest(".map-tile")) || Boolean(event && boxing(event)),
  });

  // Arrow keys move between the selection's tiles as they are laid out.
  L.gridKeys(selection, ".selection-tile");
  window.addEventListener("resize", draw);

  // map?id=N opens centred on that image, ringed, close enough to see it and its neighbours.
  function centreOnAsked() {
    const id = Number(new URLSearchParams(location.search).get("id"));
    asked = points.ids.indexOf(id);
    if (asked < 0) return;
    state.cx = points.x[asked];
    state.cy = points.y[asked];
    state.zoom = 16;
    draw();
  }

  if (document.body.dataset.ready !== "false") L.busy($("map-fit"), load);
})();
