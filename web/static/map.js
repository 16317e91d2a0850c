// Map page: every indexed image as a point placed by its code (GET /api/map); close in,
// the points in view become thumbnails, links that search by their image. Helpers in
// common.js.
"use strict";

(() => {
  const L = window.Lookalike;
  const $ = L.$;
  const view = $("map-view");
  const canvas = $("map-canvas");
  const tiles = $("map-tiles");
  const colourInput = $("colour-input");
  const MOST_TILES = 120; // thumbnails drawn at once, at most: never all of them
  const TILE = 56; // px
  const STEP = 1.5;
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const state = { zoom: 1, cx: 0, cy: 0 }; // the map point at the view's centre
  let points = null;

  // Map coordinates ([-1, 1]) → pixels in the view, and back.
  function scale() {
    return (Math.min(view.clientWidth, view.clientHeight) / 2.2) * state.zoom;
  }
  function toScreen(x, y) {
    const s = scale();
    return [view.clientWidth / 2 + (x - state.cx) * s, view.clientHeight / 2 - (y - state.cy) * s];
  }

  function colours() {
    const by = colourInput.value;
    if (by === "folder") {
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
      return points.folder.map((f) => PALETTE[f % PALETTE.length]);
    }
    const values = by === "date" ? points.date : points.reconstruction_error;
    const sorted = [...values].sort((a, b) => a - b);
    const lo = sorted[0];
    const hi = sorted[Math.floor(sorted.length * 0.99)] || lo;
    $("map-legend").textContent = by === "date"
      ? "Blue: oldest, red: newest."
      : "Blue: reconstructed well, red: unusual (the anomalies).";
    return values.map((v) => {
      const t = hi > lo ? Math.min(1, Math.max(0, (v - lo) / (hi - lo))) : 0.5;
      return `rgb(${Math.round(40 + 200 * t)}, 80, ${Math.round(240 - 200 * t)})`;
    });
  }

  let paint = [];
  let outside = new Set(); // points the folder and date filters leave out, drawn grey

  // The library's filters, applied here: the folder (or below it) and the day range.
  function filtered() {
    const folder = $("folder-input").value;
    const from = $("from-input").value ? Date.parse(`${$("from-input").value}T00:00:00Z`) / 1000 : -Infinity;
    const to = $("to-input").value ? Date.parse(`${$("to-input").value}T23:59:59Z`) / 1000 : Infinity;
    const out = new Set();
    points.ids.forEach((_, i) => {
      const where = points.folders[points.folder[i]] || "";
      const inFolder = !folder || where === folder || where.startsWith(`${folder}/`);
      if (!inFolder || points.date[i] < from || points.date[i] > to) out.add(i);
    });
    $("map-summary").textContent = `${points.count} image(s), placed by ${points.method.toUpperCase()} ` +
      `of their codes; ${points.folders.length} folder(s)` +
      (out.size ? `; ${points.count - out.size} within the filters.` : ".");
    return out;
  }

  function draw() {
    if (!points) return;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = view.clientWidth * ratio;
    canvas.height = view.clientHeight * ratio;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, view.clientWidth, view.clientHeight);
    const inView = [];
    const r = Math.min(6, 1.5 + state.zoom / 4);
    for (let i = 0; i < points.count; i += 1) {
      const [sx, sy] = toScreen(points.x[i], points.y[i]);
      if (sx < -TILE || sy < -TILE || sx > view.clientWidth + TILE || sy > view.clientHeight + TILE) continue;
      inView.push(i);
      ctx.fillStyle = outside.has(i) ? "#d0d0d0" : paint[i];
      ctx.fillRect(sx - r / 2, sy - r / 2, r, r);
    }
    $("map-zoom").textContent = state.zoom === 1 ? "whole map" : `${Math.round(state.zoom * 100)} %`;
    drawTiles(inView.length <= MOST_TILES ? inView : []);
    view.dataset.visible = String(inView.length);
  }

  // The images in view as thumbnails (links), once few enough are in view.
  function drawTiles(shown) {
    const wanted = new Set(shown.map((i) => String(points.ids[i])));
    for (const tile of [...tiles.children]) if (!wanted.has(tile.dataset.id)) tile.remove();
    const have = new Set([...tiles.children].map((t) => t.dataset.id));
    for (const i of shown) {
      const id = String(points.ids[i]);
      let tile = tiles.querySelector(`[data-id="${id}"]`);
      if (!have.has(id)) {
        tile = document.createElement("a");
        tile.className = "map-tile";
        tile.dataset.id = id;
        tile.href = `search?similar=${encodeURIComponent(id)}`;
        tile.title = "Search by this image";
        const thumb = new URL(`images/${encodeURIComponent(id)}/thumbnail`, document.baseURI);
        tile.append(L.image(thumb.pathname, `image ${id}`)); // a path from the page's own root
        tiles.append(tile);
      }
      const [sx, sy] = toScreen(points.x[i], points.y[i]);
      tile.style.transform = `translate(${sx - TILE / 2}px, ${sy - TILE / 2}px)`;
      tile.style.borderColor = paint[i];
      tile.classList.toggle("outside", outside.has(i));
    }
  }

  // Zoom by *factor* (0: the whole map), about the pointer when a wheel *event* says where.
  function zoomBy(factor, event) {
    const box = view.getBoundingClientRect();
    const px = event ? event.clientX - box.left - view.clientWidth / 2 : 0;
    const py = event ? event.clientY - box.top - view.clientHeight / 2 : 0;
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

  async function load() {
    points = await L.callApi("api/map");
    paint = colours();
    outside = filtered();
    draw();
    centreOnAsked();
  }

  colourInput.addEventListener("change", () => { if (points) { paint = colours(); draw(); } });
  L.filters().loaded.catch((err) => L.showMessage(err.message));
  for (const id of ["folder-input", "from-input", "to-input"]) {
    $(id).addEventListener("change", () => { if (points) { outside = filtered(); draw(); } });
  }
  $("map-zoom-in").addEventListener("click", () => zoomBy(STEP));
  $("map-zoom-out").addEventListener("click", () => zoomBy(1 / STEP));
  $("map-fit").addEventListener("click", () => zoomBy(0));
  L.panZoom(view, {
    zoomBy,
    pan,
    step: STEP,
    ignore: (target) => Boolean(target.closest(".map-tile")), // Enter or a click follows the link
  });
  window.addEventListener("resize", draw);
  // map?id=N opens centred on that image, close enough to see it and its neighbours.
  function centreOnAsked() {
    const asked = Number(new URLSearchParams(location.search).get("id"));
    const i = points.ids.indexOf(asked);
    if (i < 0) return;
    state.cx = points.x[i];
    state.cy = points.y[i];
    state.zoom = 16;
    draw();
  }

  if (document.body.dataset.ready !== "false") L.busy($("map-fit"), load);
})();
