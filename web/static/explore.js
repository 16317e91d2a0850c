// Explore page: prior samples, interpolation and arithmetic in latent space. Helpers in common.js.
"use strict";

(() => {
  const L = window.Lookalike;
  const $ = L.$;

  function strip(container, images, label) {
    const alt = (i) => `${label} ${i + 1}`;
    container.replaceChildren(...images.map((src, i) => L.image(src, alt(i), "recon")));
  }

  // -- thumbnails beside the id inputs ---------------------------------------------------------

  // The slots a, b, c: ?a=ID (the library's "Use as A") wins, then this tab's last picks,
  // then the server's examples.
  const SLOTS = { "interp-a": "a", "arith-a": "a", "interp-b": "b", "arith-b": "b", "arith-c": "c" };
  const asked = new URLSearchParams(location.search);
  // This tab's picks; where the browser keeps no site storage, there are none.
  function remembered(slot) {
    try { return sessionStorage.getItem(`lookalike-${slot}`); } catch (_) { return null; }
  }
  function remember(slot, id) {
    try { sessionStorage.setItem(`lookalike-${slot}`, id); } catch (_) { /* not kept */ }
  }
  for (const [inputId, slot] of Object.entries(SLOTS)) {
    const given = asked.get(slot) || remembered(slot);
    if (given && /^\d+$/.test(given)) $(inputId).value = given;
  }

  for (const thumb of document.querySelectorAll("img.id-thumb")) {
    const input = $(thumb.dataset.for);
    const update = () => {
      const id = input.value.trim();
      thumb.hidden = !/^\d+$/.test(id);
      if (thumb.hidden) thumb.removeAttribute("src");
      else thumb.src = `images/${encodeURIComponent(id)}/thumbnail`;
      if (!thumb.hidden) remember(SLOTS[input.id], id);
    };
    thumb.addEventListener("error", () => { thumb.hidden = true; });
    input.addEventListener("change", update);
    update();
  }

  // -- picking an image from the library ------------------------------------------------------

  const picker = $("picker");
  const pickerGrid = $("picker-grid");
  const pickerMore = $("picker-more");
  let pickingFor = null;
  let pickerPage = 1;

  async function morePicks() {
    const body = await L.callApi(`api/library?per_page=60&page=${pickerPage}`);
    pickerPage += 1;
    pickerMore.hidden = pickerPage > body.pages;
    pickerGrid.append(...body.images.map((item) => {
      const choose = document.createElement("button");
      choose.type = "button";
      choose.className = "tile-open";
      choose.title = String(item.path);
      choose.dataset.id = String(item.id);
      choose.append(L.image(item.thumbnail_url, String(item.name), "thumb"));
      choose.addEventListener("click", () => {
        pickingFor.value = String(item.id);
        pickingFor.dispatchEvent(new Event("change"));
        picker.close();
      });
      const tile = document.createElement("div");
      tile.className = "tile";
      tile.append(choose);
      return tile;
    }));
  }

  for (const pick of document.querySelectorAll("button.pick")) {
    pick.addEventListener("click", async () => {
      pickingFor = $(pick.dataset.for);
      picker.showModal();
      if (!pickerGrid.children.length) await L.busy(pick, morePicks);
    });
  }
  pickerMore.addEventListener("click", () => L.busy(pickerMore, morePicks));
  $("picker-cancel").addEventListener("click", () => picker.close());

  // -- sample ------------------------------------------------------------------------------------

  const sampleForm = $("sample-form");
  const sampleButton = $("sample-button");
  sampleForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const n = L.intValue($("sample-n"), "Images");
    const seed = L.intValue($("sample-seed"), "Seed");
    if (n === null || n === "" || seed === null) return;
    const query = new URLSearchParams({ n: String(n) });
    if (seed !== "") query.set("seed", String(seed));
    L.busy(sampleButton, async () => {
      const body = await L.callApi(`api/explore/sample?${query}`);
      $("sample-info").textContent = `Seed ${body.seed}: enter it to draw the same images again.`;
      strip($("sample-strip"), body.images, "Sample");
    });
  });

  // -- interpolate -------------------------------------------------------------------------------

  const interpolateButton = $("interpolate-button");
  $("interpolate-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const a = L.intValue($("interp-a"), "The first id");
    const b = L.intValue($("interp-b"), "The second id");
    const steps = L.intValue($("interp-steps"), "Steps");
    if ([a, b, steps].some((v) => v === null || v === "")) {
      if (![a, b, steps].includes(null)) L.showMessage("Fill in both ids and the steps.");
      return;
    }
    const query = new URLSearchParams({ a: String(a), b: String(b), steps: String(steps) });
    L.busy(interpolateButton, async () => {
      const body = await L.callApi(`api/explore/interpolate?${query}`);
      strip($("interpolate-strip"), body.images, `Step from ${body.a.name} to ${body.b.name}`);
    });
  });

  // -- arithmetic --------------------------------------------------------------------------------

  const arithmeticButton = $("arithmetic-button");
  const hitTemplate = $("hit-template");

  const card = (hit) => L.linkCard(hitTemplate, hit, L.formatNumber(hit.similarity, 3));

  $("arithmetic-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const values = [["a", "arith-a"], ["b", "arith-b"], ["c", "arith-c"], ["k", "arith-k"]]
      .map(([name, id]) => [name, L.intValue($(id), name)]);
    if (values.some(([, v]) => v === null)) return;
    if (values.some(([, v]) => v === "")) {
      L.showMessage("Fill in a, b, c and the number of results.");
      return;
    }
    const query = new URLSearchParams(values.map(([name, v]) => [name, String(v)]));
    L.busy(arithmeticButton, async () => {
      const body = await L.callApi(`api/explore/arithmetic?${query}`);
      $("arithmetic-result").replaceChildren(
        L.figure(body.a.reconstruction_url, `a: ${body.a.name}`, "recon"),
        L.figure(body.b.reconstruction_url, `b: ${body.b.name}`, "recon"),
        L.figure(body.c.reconstruction_url, `c: ${body.c.name}`, "recon"),
        L.figure(body.result, "a − b + c", "recon"));
      $("arithmetic-result").hidden = false;
      $("arithmetic-hits").replaceChildren(...body.results.map(card));
    });
  });
})();
