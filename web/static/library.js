// Library page: every indexed image as a grid of tiles, a page at a time, and a lightbox.
// Helpers (and the rules they keep) in common.js.
"use strict";

(() => {
  const L = window.Lookalike;
  const $ = L.$;
  const form = $("library-form");
  const button = $("library-button");
  const grid = $("library");
  const more = $("more-button");
  const summary = $("library-summary");
  const filters = L.filters();
  const template = $("tile-template");
  const lightbox = L.lightbox({
    step: (delta) => openAt(openIndex + delta),
    closed: () => { // back to the tile last shown
      const tileButton = grid.querySelector(`.tile-open[data-index="${openIndex}"]`);
      if (tileButton) tileButton.focus();
    },
  });
  const PER_PAGE = 200;
  let items = []; // the images shown, in order
  let nextPage = 1;
  let pages = 0;
  let latest = 0; // only the newest request's answer is drawn
  let loading = false;
  let openIndex = -1;
  let asked = null; // the form as it was when Show was pressed: every page of it follows it

  function formQuery() {
    return filters.addTo(new URLSearchParams({
      sort: $("sort-input").value, order: $("order-input").value, per_page: String(PER_PAGE),
    }));
  }

  function tile(item, index) {
    const node = template.content.firstElementChild.cloneNode(true);
    const name = String(item.name);
    const img = node.querySelector(".thumb");
    img.src = L.safeUrl(item.thumbnail_url);
    img.alt = name;
    node.querySelector(".name").textContent = name;
    const open = node.querySelector(".tile-open");
    open.title = `${item.path}\nOpen`;
    open.dataset.index = String(index);
    open.addEventListener("click", () => openAt(index));
    const similar = node.querySelector(".similar");
    similar.href = `search?similar=${encodeURIComponent(item.id)}`;
    similar.setAttribute("aria-label", `Images similar to ${name}`);
    return node;
  }

  async function fetchPage(reset) {
    if (!reset && loading) return; // a new listing is on its way: its own pages follow
    const mine = ++latest;
    if (reset) {
      asked = formQuery();
      nextPage = 1;
      items = [];
      grid.replaceChildren();
      more.hidden = true;
    }
    loading = true;
    try {
      const params = new URLSearchParams(asked);
      params.set("page", String(nextPage));
      const body = await L.callApi(`api/library?${params}`);
      if (mine !== latest) return;
      const start = items.length;
      items.push(...body.images);
      grid.append(...body.images.map((item, i) => tile(item, start + i)));
      pages = body.pages;
      nextPage = body.page + 1;
      more.hidden = nextPage > pages;
      summary.textContent = `${body.total} image(s); showing ${items.length}.`;
    } finally {
      if (mine === latest) loading = false;
    }
  }

  function openAt(index) {
    if (index < 0 || index >= items.length) return;
    openIndex = index;
    lightbox.show(items[index], { first: index === 0, last: index === items.length - 1 });
  }

  // Arrow keys move between tiles as they are laid out; Enter opens one (it is a button).
  L.gridKeys(grid, ".tile-open");

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    L.busy(button, () => fetchPage(true));
  });
  more.addEventListener("click", () => L.busy(more, () => fetchPage(false)));
  // Scrolling to the end shows more, as the button does.
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && !loading && !more.hidden) more.click();
  }).observe(more);

  // What the watcher (serve --watch) is doing, every few seconds; nothing without one.
  async function showWatcher() {
    const box = $("watch-status");
    let body;
    try {
      body = await L.callApi("api/watch");
    } catch (_) {
      setTimeout(showWatcher, 15000); // a status line is not worth an error message
      return;
    }
    box.hidden = !body.watching;
    if (!body.watching) return;
    const folders = `${body.folders.length} folder(s)`;
    const when = body.last_pass_at
      ? new Date(body.last_pass_at * 1000).toLocaleTimeString() : "not yet";
    const changed = Object.entries(body.last_changes || {}).filter(([, n]) => n > 0)
      .map(([what, n]) => `${what} ${n}`).join(", ");
    let text = `Keeping ${folders} current (${body.state}); last scan ${when}` +
      (changed ? `: ${changed}` : "") + ".";
    if (body.settling) text += ` ${body.settling} file(s) still being written.`;
    if (!body.events) text += ` Scanning every ${body.interval} s (no file events here).`;
    if (body.note) text += ` ${body.note}`;
    box.textContent = text;
    setTimeout(showWatcher, 5000);
  }
  showWatcher();

  if (document.body.dataset.ready !== "false") {
    filters.loaded.catch((err) => L.showMessage(err.message)); // the grid does not wait for it
    L.busy(button, () => fetchPage(true));
  }
})();
