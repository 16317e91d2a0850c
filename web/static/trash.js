// Trash page: the copies moved out of the library, each restorable until the trash is
// emptied. Moving files needs the admin token (common.js keeps it for this tab).
"use strict";

(() => {
  const L = window.Lookalike;
  const $ = L.$;
  const box = $("trash");
  const template = $("trashed-template");
  const summary = $("trash-summary");
  let said = ""; // what the last action did

  function item(entry) {
    const node = template.content.firstElementChild.cloneNode(true);
    node.dataset.id = String(entry.id);
    const thumb = node.querySelector(".thumb");
    thumb.src = L.safeUrl(entry.thumbnail_url);
    thumb.alt = String(entry.name);
    node.querySelector(".name").textContent = String(entry.name);
    node.querySelector(".was").textContent = String(entry.path);
    node.querySelector(".when").textContent = String(entry.trashed_at || "").slice(0, 10);
    node.querySelector(".file-size").textContent =
      entry.present ? L.formatBytes(entry.bytes) : "missing from the trash";
    const restore = node.querySelector(".restore");
    restore.disabled = !entry.present;
    restore.addEventListener("click", () => L.busy(restore, async () => {
      const body = await L.callAdmin("api/trash/restore", { images: [entry.id] });
      const back = body.restored[0];
      said = `Restored ${entry.name} to ${back.path}` +
        (back.reencode ? " (the next re-index encodes it with the current model)." : ".");
      await load();
    }));
    return node;
  }

  async function load() {
    const body = await L.callApi("api/trash");
    const count = `${body.trash.length} image(s) in the trash.`;
    summary.textContent = said ? `${said} ${count}` : count;
    said = "";
    box.replaceChildren(...body.trash.map(item));
  }

  $("empty-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const days = $("older-than-input").value.trim();
    if (days !== "" && !(Number.isFinite(Number(days)) && Number(days) >= 0)) {
      L.showMessage("Days must be a number of 0 or more.");
      return;
    }
    const what = days === "" ? "every file in the trash" : `the files trashed over ${days} days ago`;
    if (!confirm(`Delete ${what} for good? This cannot be undone.`)) return;
    L.busy($("empty-button"), async () => {
      const body = await L.callAdmin("api/trash/empty",
        days === "" ? {} : { older_than_days: Number(days) });
      said = `Deleted ${body.deleted.length} file(s) for good.`;
      await load();
    });
  });

  L.adminToken();
  L.busy($("empty-button"), load);
})();
