// Anomalies page: the collection's worst-reconstructed images. Helpers in common.js.
"use strict";

(() => {
  const L = window.Lookalike;
  const $ = L.$;
  const form = $("anomalies-form");
  const topInput = $("top-input");
  const thresholdInput = $("threshold-input");
  const button = $("anomalies-button");
  const summary = $("anomalies-summary");
  const grid = $("anomalies");
  const template = $("outlier-template");

  function card(item) {
    const node = L.linkCard(template, item, `error ${L.formatNumber(item.reconstruction_error, 5)}`);
    node.querySelector(".score").classList.toggle("flagged", item.anomalous === true);
    return node;
  }

  function describe(body) {
    const count = body.anomalies.length;
    const parts = [];
    if (typeof body.threshold === "number") {
      const whose = body.threshold === body.model_threshold ? " (the model's threshold)" : "";
      const above = L.formatNumber(body.threshold, 5);
      parts.push(`${body.total} image(s) with error above ${above}${whose}`);
    } else {
      parts.push(`${body.total} image(s) indexed with this model`);
    }
    if (count < body.total) parts.push(`showing the worst ${count}`);
    return `${parts.join("; ")}.`;
  }

  async function load() {
    const top = L.intValue(topInput, "Worst");
    if (top === null) return;
    const threshold = thresholdInput.value.trim();
    if (threshold !== "" && !(Number(threshold) >= 0)) {
      L.showMessage("The error threshold must be a number of at least 0.");
      return;
    }
    const query = new URLSearchParams();
    if (top !== "") query.set("top", String(top));
    if (threshold !== "") query.set("threshold", threshold);
    await L.busy(button, async () => {
      const body = await L.callApi(`api/anomalies?${query}`);
      summary.textContent = describe(body);
      grid.replaceChildren(...body.anomalies.map(card));
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });

  if (document.body.dataset.ready !== "false") load();
})();
