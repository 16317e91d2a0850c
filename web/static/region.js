// Drawing a region on an image: drag across it and get the rectangle as fractions of the
// picture (0..1), whatever its size on screen. Used by the search page.
"use strict";

window.LookalikeRegion = (() => {
  // The picture's rectangle inside an <img> laid out with object-fit: contain.
  function pictureRect(img) {
    const box = img.getBoundingClientRect();
    const scale = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight);
    const width = img.naturalWidth * scale;
    const height = img.naturalHeight * scale;
    return { left: box.left + (box.width - width) / 2, top: box.top + (box.height - height) / 2,
      width, height };
  }

  const clamp = (v) => Math.min(1, Math.max(0, v));

  // The outline of the rectangle from corner a to corner b (fractions) over the picture.
  function drawOutline(frame, img, outline, a, b) {
    const r = pictureRect(img);
    const f = frame.getBoundingClientRect();
    outline.style.left = `${r.left - f.left + Math.min(a.x, b.x) * r.width}px`;
    outline.style.top = `${r.top - f.top + Math.min(a.y, b.y) * r.height}px`;
    outline.style.width = `${Math.abs(a.x - b.x) * r.width}px`;
    outline.style.height = `${Math.abs(a.y - b.y) * r.height}px`;
    outline.hidden = false;
  }

  // The outline of *region* (fractions), once the picture has loaded.
  function show(frame, img, outline, region) {
    const draw = () => drawOutline(frame, img, outline, { x: region.x0, y: region.y0 },
      { x: region.x1, y: region.y1 });
    if (img.complete && img.naturalWidth) draw();
    else img.addEventListener("load", draw, { once: true });
  }

  // Calls onRegion({x0, y0, x1, y1}) in fractions once a drag of a few pixels ends.
  function attach(frame, img, outline, onRegion) {
    let start = null;
    const at = (event) => {
      const r = pictureRect(img);
      return { x: clamp((event.clientX - r.left) / r.width),
        y: clamp((event.clientY - r.top) / r.height) };
    };
    const draw = (a, b) => drawOutline(frame, img, outline, a, b);
    frame.addEventListener("pointerdown", (event) => {
      if (!img.naturalWidth || event.button !== 0) return;
      event.preventDefault();
      start = at(event);
      frame.setPointerCapture(event.pointerId);
    });
    frame.addEventListener("pointermove", (event) => {
      if (start) draw(start, at(event));
    });
    frame.addEventListener("pointercancel", () => {
      start = null;
    });
    frame.addEventListener("pointerup", (event) => {
      if (!start) return;
      const a = start;
      const b = at(event);
      start = null;
      const r = pictureRect(img);
      if (Math.abs(a.x - b.x) * r.width < 4 || Math.abs(a.y - b.y) * r.height < 4) {
        return; // a click, not a region: the outline stays as it was
      }
      draw(a, b);
      onRegion({ x0: Math.min(a.x, b.x), y0: Math.min(a.y, b.y),
        x1: Math.max(a.x, b.x), y1: Math.max(a.y, b.y) });
    });
  }

  // Fractions → "x0,y0,x1,y1" in an image of width × height pixels (the API's box).
  function boxText(region, width, height) {
    return [Math.floor(region.x0 * width), Math.floor(region.y0 * height),
      Math.ceil(region.x1 * width), Math.ceil(region.y1 * height)].join(",");
  }

  return Object.freeze({ attach, boxText, show });
})();
