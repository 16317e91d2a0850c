// Denoise and compress page: one upload, two tools. Helpers in common.js.
"use strict";

(() => {
  const L = window.Lookalike;
  const $ = L.$;
  const form = $("denoise-form");
  const fileInput = $("file-input");
  const dropZone = $("drop-zone");
  const noiseInput = $("noise-input");
  const noiseValue = $("noise-value");
  const denoiseButton = $("denoise-button");
  const denoiseResult = $("denoise-result");
  const cleanFigure = $("clean-figure");
  const cleanImage = $("clean-image");
  const noisyImage = $("noisy-image");
  const noisyCaption = $("noisy-caption");
  const denoisedImage = $("denoised-image");
  const psnrFacts = $("psnr-facts");
  const psnrNoisy = $("psnr-noisy");
  const psnrDenoised = $("psnr-denoised");
  const dtypeSelect = $("dtype-select");
  const compressButton = $("compress-button");
  const compressResult = $("compress-result");
  const decodedImage = $("decoded-image");
  const codeBytes = $("code-bytes");
  const uploadBytes = $("upload-bytes");
  const pngLabel = $("png-label");
  const pngBytes = $("png-bytes");
  const compressPsnr = $("compress-psnr");
  const codeDownload = $("code-download");
  const codeInput = $("code-input");
  const decompressedFigure = $("decompressed-figure");
  const decompressedImage = $("decompressed-image");
  const decompressedCaption = $("decompressed-caption");

  let file = null;          // the current upload
  let codeUrl = null;       // object URL of the downloadable code, revoked when replaced
  let decodedUrl = null;    // object URL of the decompressed PNG
  let denoiseSequence = 0;  // only the newest answer of each tool may draw
  let compressSequence = 0;

  const decibels = (value) =>
    (typeof value === "number" ? `${L.formatNumber(value, 2)} dB` : "identical");

  function uploadData() {
    const data = new FormData();
    data.append("image", file, file.name || "pasted-image");
    return data;
  }

  function showDenoised(body) {
    const noised = body.add_noise > 0;
    cleanFigure.hidden = !noised;
    if (noised) cleanImage.src = L.safeDataUrl(body.clean);
    noisyImage.src = L.safeDataUrl(body.noisy);
    noisyCaption.textContent =
      noised ? `Noisy (σ = ${L.formatNumber(body.add_noise, 2)})` : "Upload";
    denoisedImage.src = L.safeDataUrl(body.denoised);
    psnrFacts.hidden = !body.psnr;
    if (body.psnr) {
      psnrNoisy.textContent = decibels(body.psnr.noisy);
      psnrDenoised.textContent = decibels(body.psnr.denoised);
    }
    denoiseResult.hidden = false;
  }

  async function denoise() {
    if (!file) {
      L.showMessage("Choose, drop or paste an image first.");
      return;
    }
    const mine = ++denoiseSequence;
    await L.busy(denoiseButton, async () => {
      const data = uploadData();
      data.append("add_noise", noiseInput.value);
      const body = await L.callApi("api/denoise?format=json", { method: "POST", body: data });
      if (mine === denoiseSequence) showDenoised(body);
    });
  }

  function codeFile(base64) {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    if (codeUrl) URL.revokeObjectURL(codeUrl);
    codeUrl = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    return codeUrl;
  }

  function showCompressed(body) {
    decodedImage.src = L.safeDataUrl(body.decoded);
    const times = (n, ratio) => `${L.formatBytes(n)}: ${L.formatNumber(ratio, 1)}× the code`;
    codeBytes.textContent =
      `${L.formatBytes(body.bytes.code)} (${body.dtype}, ${body.latent_dim} numbers)`;
    uploadBytes.textContent = times(body.bytes.upload, body.ratio.upload);
    pngLabel.textContent = `PNG at ${body.image_size} px`;
    pngBytes.textContent = times(body.bytes.png, body.ratio.png);
    compressPsnr.textContent = decibels(body.psnr);
    codeDownload.href = codeFile(body.code_base64);
    const stem = (file.name || "image").replace(/\.[^.]*$/, "");
    codeDownload.download = `${stem}.${body.dtype}.lkc`;
    compressResult.hidden = false;
  }

  async function compress() {
    if (!file) {
      L.showMessage("Choose, drop or paste an image first.");
      return;
    }
    const mine = ++compressSequence;
    await L.busy(compressButton, async () => {
      const url = `api/compress?dtype=${encodeURIComponent(dtypeSelect.value)}`;
      const body = await L.callApi(url, { method: "POST", body: uploadData() });
      if (mine === compressSequence) showCompressed(body);
    });
  }

  function useFile(chosen) {
    if (!chosen) return;
    file = chosen;
    denoise();
    compress();
  }

  // -- inputs --------------------------------------------------------------------------------

  L.acceptImages(dropZone, fileInput, useFile);
  noiseInput.addEventListener("input", () => {
    noiseValue.textContent = Number(noiseInput.value).toFixed(2);
  });
  noiseInput.addEventListener("change", () => { if (file) denoise(); });
  dtypeSelect.addEventListener("change", () => { if (file) compress(); });
  compressButton.addEventListener("click", compress);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    denoise();
  });

  codeInput.addEventListener("change", async () => {
    const code = codeInput.files && codeInput.files[0];
    if (!code) return;
    L.showMessage("");
    try {
      const png = await L.callApi("api/decompress", {
        method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: code,
      });
      if (decodedUrl) URL.revokeObjectURL(decodedUrl);
      decodedUrl = URL.createObjectURL(png);
      decompressedImage.src = decodedUrl;
      decompressedCaption.textContent = code.name;
      decompressedFigure.hidden = false;
    } catch (err) {
      L.showMessage(err.message);
    }
  });
})();
