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

  for (const thumb of document.querySelectorAll("img.id-thumb")) {
    const input = $(thumb.dataset.for);
    const update = () => {
      const id = input.value.trim();
      thumb.hidden = !/^\d+$/.test(id);
      if (thumb.hidden) thumb.removeAttribute("src");
      else thumb.src = `images/${encodeURIComponent(id)}/thumbnail`;
    };
    thumb.addEventListener("error", () => { thumb.hidden = true; });
    input.addEventListener("change", update);
    update();
  }

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
