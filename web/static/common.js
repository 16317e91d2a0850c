// Helpers shared by the tool pages (denoise, anomalies, explore). Same rules as
// app.js: plain JS, nothing from the network, and every piece of server data is
// written with textContent or as a property (src, href), never parsed as HTML.
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
    return n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`;
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

  return Object.freeze({
    $, safeUrl, safeDataUrl, showMessage, callApi, formatNumber, formatBytes, image, figure,
    intValue, busy,
  });
})();
