// Duplicates page: the library's groups of copies a page at a time, the reviewer's
// decisions on them, a rule that decides every pending group at once, and moving the
// copies not kept to the trash. Helpers in common.js.
"use strict";

(() => {
  const L = window.Lookalike;
  const $ = L.$;
  const form = $("duplicates-form");
  const statusInput = $("status-input");
  const thresholdInput = $("threshold-input");
  const perPageInput = $("per-page-input");
  const button = $("duplicates-button");
  const summary = $("duplicates-summary");
  const groupsBox = $("groups");
  const pager = $("pager");
  const groupTemplate = $("group-template");
  const memberTemplate = $("member-template");
  const STATUS_WORDS = { pending: "to review", reviewed: "reviewed", all: "in all" };
  const asked = new URLSearchParams(location.search); // a reload shows the same page
  let page = Math.max(1, Math.floor(Number(asked.get("page")))) || 1;
  if (Object.hasOwn(STATUS_WORDS, asked.get("status") || "")) statusInput.value = asked.get("status");
  if (asked.has("threshold")) thresholdInput.value = asked.get("threshold");
  if (asked.has("per_page")) perPageInput.value = asked.get("per_page");
  // duplicates?image=ID (the lightbox's "Its copies"): only that image's group.
  const onlyImage = /^\d+$/.test(asked.get("image") || "") ? asked.get("image") : null;
  $("every-group").hidden = onlyImage === null;
  let latest = 0; // only the newest request's answer is drawn
  let shown = null;
  let summaryNote = ""; // what the last action did, said after the summary

  async function decide(body) {
    await L.callApi("api/duplicates/decisions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  // Move these images to the trash (the admin token's call); how many moved.
  async function trash(ids) {
    if (ids.length === 0) return 0;
    const body = await L.callAdmin("api/trash", { images: ids });
    return body.trashed.length;
  }

  // A group's copies that are not kept: a pending group is first decided for its first
  // image (the one the page shows to keep), as "Keep this one" would.
  async function trashOthers(group) {
    L.requireAdminToken();
    if (group.decision === null) {
      await decide({ kind: "keep", images: group.images.map((i) => i.id), keep: group.images[0].id });
    }
    const moved = await trash(group.images.slice(1).map((i) => i.id));
    summaryNote = `${moved} copies moved to the trash.`;
  }

  async function undo(decision) {
    await L.callApi(`api/duplicates/decisions/${encodeURIComponent(decision.id)}`,
      { method: "DELETE" });
  }

  function member(item, index, group) {
    const node = L.linkCard(memberTemplate, item,
      index === 0 ? "to keep" : `similarity ${L.formatNumber(item.similarity_to_first, 3)}`);
    node.classList.toggle("first", index === 0);
    node.querySelector(".dimensions").textContent = `${item.width} × ${item.height}`;
    node.querySelector(".file-size").textContent = L.formatBytes(item.bytes);
    node.querySelector(".largest").hidden = !item.largest;
    const decision = group.decision;
    node.querySelector(".kept").hidden = !item.kept;
    const original = node.querySelector(".original");
    original.href = L.safeUrl(item.original_url);
    const compareButton = node.querySelector(".compare");
    compareButton.hidden = index === 0;
    compareButton.addEventListener("click", () => compare.open(group.images[0], item));
    const keep = node.querySelector(".keep");
    keep.hidden = decision !== null;
    keep.addEventListener("click", () => act(keep, () => decide(
      { kind: "keep", images: group.images.map((i) => i.id), keep: item.id })));
    return node;
  }

  function describeDecision(decision) {
    if (!decision) return "";
    const when = decision.decided_at.slice(0, 10);
    return decision.kind === "keep"
      ? `Reviewed ${when}: keep image ${decision.keep_id}`
      : `Reviewed ${when}: not duplicates`;
  }

  function group(item) {
    const node = groupTemplate.content.firstElementChild.cloneNode(true);
    node.dataset.id = String(item.id);
    const kind = item.exact ? "identical files" : "near copies";
    node.querySelector(".group-title").textContent =
      `Group ${item.id} · ${item.size} images · ${kind}`;
    node.querySelector(".group-decision").textContent = describeDecision(item.decision);
    const apart = node.querySelector(".not-duplicates");
    apart.hidden = item.decision !== null;
    apart.addEventListener("click", () => act(apart, () => decide(
      { kind: "not_duplicates", images: item.images.map((i) => i.id) })));
    const undoButton = node.querySelector(".undo");
    undoButton.hidden = item.decision === null;
    undoButton.addEventListener("click", () => act(undoButton, () => undo(item.decision)));
    const toTrash = node.querySelector(".trash-others");
    toTrash.hidden = item.decision !== null && item.decision.kind !== "keep";
    toTrash.addEventListener("click", () => act(toTrash, () => trashOthers(item)));
    node.querySelector(".members").replaceChildren(
      ...item.images.map((image, index) => member(image, index, item)));
    return node;
  }

  // A decision, then the same page again (its groups have moved on).
  async function act(actionButton, task) {
    await L.busy(actionButton, async () => {
      await task();
      await fetchPage();
    });
  }

  function describe(body) {
    const at = String(Number(body.threshold.toFixed(4)));
    if (onlyImage !== null) {
      const text = body.total ? "The group holding" : "No group holds";
      return `${text} image ${onlyImage} at similarity ≥ ${at}` +
        `${body.total ? "" : ": no copies of it found; set a lower similarity to look further"}.`;
    }
    const counts = `${body.counts.pending} to review, ${body.counts.reviewed} reviewed`;
    if (body.threshold === body.model_threshold && !body.model_separates_copies) {
      // The model's own word: on this collection its codes cannot tell an edited copy
      // from a look-alike, so it groups only identical images unless asked for a threshold.
      return `${body.total} group(s) ${STATUS_WORDS[body.status]}: identical images only. ` +
        "On this collection the model cannot tell edited copies from images that merely " +
        "look alike, so it groups only identical images; set a similarity to look " +
        `further. ${counts}.`;
    }
    const whose = body.threshold === body.model_threshold ? " (the model's threshold)" : "";
    return `${body.total} group(s) ${STATUS_WORDS[body.status]} at similarity ≥ ${at}${whose}; ` +
      `${counts}.`;
  }

  // The pager for *body*; with null (a page is loading) its buttons wait.
  function showPager(body) {
    if (body === null) {
      $("previous-page").disabled = $("next-page").disabled = true;
      return;
    }
    pager.hidden = body.pages <= 1;
    $("page-info").textContent = `Page ${body.page} of ${Math.max(body.pages, 1)}`;
    $("previous-page").disabled = body.page <= 1;
    $("next-page").disabled = body.page >= body.pages;
  }

  async function fetchPage() {
    const perPage = L.intValue(perPageInput, "Per page");
    if (perPage === null) return;
    const threshold = thresholdInput.value.trim();
    const query = new URLSearchParams({ status: statusInput.value });
    if (perPage !== "") query.set("per_page", String(perPage));
    if (threshold !== "") query.set("threshold", threshold);
    if (onlyImage !== null) query.set("image", onlyImage);
    const mine = ++latest;
    showPager(null);
    try {
      query.set("page", String(page));
      let body = await L.callApi(`api/duplicates?${query}`);
      if (body.groups.length === 0 && body.pages > 0 && page > body.pages) {
        page = body.pages; // the last page emptied by a decision: show the one before
        query.set("page", String(page));
        body = await L.callApi(`api/duplicates?${query}`);
      }
      if (mine !== latest) return;
      shown = body;
      history.replaceState(null, "", `?${query}`);
      summary.textContent = summaryNote ? `${summaryNote} ${describe(body)}` : describe(body);
      summaryNote = "";
      $("csv-link").href = `api/duplicates/csv?${groupsQuery(statusInput.value)}`;
      groupsBox.replaceChildren(...body.groups.map(group));
    } finally {
      if (mine === latest) showPager(shown);
    }
  }

  function load() {
    return L.busy(button, fetchPage);
  }

  // The grouping's own parameters (threshold), as every request about the groups sends them.
  function groupsQuery(status) {
    const query = new URLSearchParams();
    if (status) query.set("status", status);
    const threshold = thresholdInput.value.trim();
    if (threshold !== "") query.set("threshold", threshold);
    return query;
  }

  // Every reviewed group that keeps one image, over all pages: its other copies go.
  async function trashReviewed() {
    const ids = [];
    let groupCount = 0;
    for (let at = 1, pages = 1; at <= pages; at += 1) {
      const query = groupsQuery("reviewed");
      query.set("per_page", perPageInput.max);
      query.set("page", String(at));
      const body = await L.callApi(`api/duplicates?${query}`);
      pages = body.pages;
      for (const g of body.groups) {
        if (g.decision && g.decision.kind === "keep" && g.images.length > 1) {
          groupCount += 1;
          ids.push(...g.images.slice(1).map((i) => i.id));
        }
      }
    }
    if (ids.length === 0) {
      summaryNote = "No reviewed group has copies to move.";
    } else if (confirm(`Move ${ids.length} copies from ${groupCount} reviewed group(s) to the trash?`)) {
      summaryNote = `${await trash(ids)} copies moved to the trash.`;
    }
    await fetchPage();
  }

  // -- two images side by side (or one over the other), one zoom and pan -----------------
  const compare = (() => {
    const dialog = $("compare");
    const panes = $("compare-panes");
    const imgs = [$("compare-a"), $("compare-b")];
    const viewports = [...panes.querySelectorAll(".viewport")];
    const slider = $("overlay-slider");
    const STEP = 1.25;
    const view = { zoom: 1, x: 0, y: 0 }; // zoom over each image's fit; pan in viewport px

    // Each image is scaled to fit its viewport, times the shared zoom, and moved by the
    // shared pan: the same part of both shows, whatever their resolutions.
    function draw() {
      imgs.forEach((img, i) => {
        const box = viewports[i].getBoundingClientRect();
        if (!img.naturalWidth || !box.width) return;
        const fit = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight);
        const scale = fit * view.zoom;
        const left = (box.width - img.naturalWidth * scale) / 2 + view.x;
        const top = (box.height - img.naturalHeight * scale) / 2 + view.y;
        img.style.transform = `translate(${left}px, ${top}px) scale(${scale})`;
        img.style.imageRendering = scale >= 2 ? "pixelated" : "auto"; // pixels, when close
      });
      panes.dataset.zoom = String(view.zoom);
      $("zoom-level").textContent = view.zoom === 1 ? "fit" : `${Math.round(view.zoom * 100)} %`;
      viewports[1].style.clipPath = panes.classList.contains("overlay")
        ? `inset(0 0 0 ${slider.value}%)` : "";
    }

    function zoomBy(factor) {
      const zoom = Math.min(64, Math.max(1, view.zoom * factor));
      view.x *= zoom / view.zoom; // the middle of the view stays where it is
      view.y *= zoom / view.zoom;
      view.zoom = zoom;
      if (zoom === 1) view.x = view.y = 0;
      draw();
    }

    function pan(dx, dy) {
      if (view.zoom === 1) return;
      view.x += dx;
      view.y += dy;
      draw();
    }

    function setMode(mode) {
      panes.classList.toggle("overlay", mode === "overlay");
      panes.classList.toggle("side", mode !== "overlay");
      dialog.classList.toggle("overlay-mode", mode === "overlay");
      draw();
    }

    function open(first, other) {
      [[imgs[0], first, "compare-a-caption", "to keep"], [imgs[1], other, "compare-b-caption",
        `similarity ${L.formatNumber(other.similarity_to_first, 3)}`]].forEach(
        ([img, item, caption, what]) => {
          img.src = L.safeUrl(item.preview_url);
          img.alt = String(item.name);
          $(caption).textContent =
            `${item.name} · ${item.width} × ${item.height} · ${L.formatBytes(item.bytes)} · ${what}`;
        });
      view.zoom = 1;
      view.x = view.y = 0;
      dialog.showModal();
      panes.focus();
      draw();
    }

    imgs.forEach((img) => img.addEventListener("load", draw));
    document.querySelectorAll('input[name="compare-mode"]').forEach(
      (radio) => radio.addEventListener("change", () => setMode(radio.value)));
    slider.addEventListener("input", draw);
    $("zoom-in").addEventListener("click", () => zoomBy(STEP));
    $("zoom-out").addEventListener("click", () => zoomBy(1 / STEP));
    $("zoom-fit").addEventListener("click", () => zoomBy(0));
    $("compare-close").addEventListener("click", () => dialog.close());
    L.panZoom(panes, { zoomBy, pan, step: STEP });
    window.addEventListener("resize", () => dialog.open && draw());
    return { open };
  })();

  // -- a rule for every pending group ---------------------------------------------------
  const ruleInput = $("rule-input");
  const ruleArg = $("rule-arg");
  const ruleArgLabel = $("rule-arg-label");
  const rulePreview = $("rule-preview");
  const applyButton = $("apply-button");
  const planTemplate = $("plan-template");
  let previewed = null; // the rule the preview shows, which Apply applies

  function showRuleArg() {
    const needs = ruleInput.value === "format" || ruleInput.value === "folder";
    ruleArg.hidden = ruleArgLabel.hidden = !needs;
    ruleArgLabel.textContent = ruleInput.value === "format" ? "Formats" : "Folder";
    ruleArg.placeholder = ruleInput.value === "format" ? "raw,heic,png,jpeg" : "/photos/originals";
    rulePreview.hidden = true;
  }

  function ruleText() {
    if (ruleArg.hidden) return ruleInput.value;
    const arg = ruleArg.value.trim();
    if (arg === "") throw new Error(`Name the ${ruleArgLabel.textContent.toLowerCase()} first.`);
    return `${ruleInput.value}=${arg}`;
  }

  function plan(item) {
    const node = planTemplate.content.firstElementChild.cloneNode(true);
    node.querySelector(".plan-group").textContent = `Group ${item.group}: keep`;
    const thumb = node.querySelector(".plan-keep-thumb");
    thumb.src = L.safeUrl(item.keep.thumbnail_url);
    thumb.alt = String(item.keep.name);
    node.querySelector(".plan-keep").textContent = String(item.keep.name);
    node.querySelector(".plan-keep").title = String(item.keep.path);
    node.querySelector(".plan-others").textContent =
      `· ${item.others.length} other(s): ${item.others.map((o) => o.name).join(", ")}`;
    return node;
  }

  async function previewRule() {
    const rule = ruleText();
    const query = groupsQuery();
    query.set("rule", rule);
    const body = await L.callApi(`api/duplicates/keep?${query}`);
    previewed = query;
    $("rule-summary").textContent = body.groups === 0
      ? "No group is waiting for review."
      : `“${body.rule}” keeps one image in each of ${body.groups} group(s); ` +
        `${body.others} other copies.`;
    $("rule-plans").replaceChildren(...body.plans.map(plan));
    applyButton.textContent = `Apply to ${body.groups} group(s)`;
    applyButton.disabled = body.groups === 0;
    rulePreview.hidden = false;
  }

  async function applyRule() {
    if ($("rule-trash").checked) L.requireAdminToken();
    rulePreview.hidden = true;
    try {
      const body = await L.callApi(`api/duplicates/keep?${previewed}`, { method: "POST" });
      summaryNote = `${body.decisions.length} decision(s) recorded.`;
      if ($("rule-trash").checked) {
        const moved = await trash(body.plans.flatMap((p) => p.others.map((o) => o.id)));
        summaryNote += ` ${moved} copies moved to the trash.`;
      }
    } finally {
      await fetchPage(); // what was recorded shows, even when the trash refused
    }
  }

  ruleInput.addEventListener("change", showRuleArg);
  $("rule-form").addEventListener("submit", (event) => {
    event.preventDefault();
    L.busy($("preview-button"), previewRule);
  });
  applyButton.addEventListener("click", () => L.busy(applyButton, applyRule));
  $("trash-reviewed").addEventListener("click", () => L.busy($("trash-reviewed"), trashReviewed));
  L.adminToken();
  showRuleArg();

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    page = 1;
    load();
  });
  $("previous-page").addEventListener("click", () => { page -= 1; load(); });
  $("next-page").addEventListener("click", () => { page += 1; load(); });

  if (document.body.dataset.ready !== "false") load();
})();
