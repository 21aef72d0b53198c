/* SceneImg review viewer: one image large, in the gallery's filter and order. Images come in batches from
 * /viewer/items/ (the gallery's keyset cursor); the next few are kept decoded in hidden <img> elements so
 * moving on only swaps which one is visible. Decisions go through app.js's queue (window.SceneImg), the
 * same in-order, retried, never-lost path as the gallery's. */
(function () {
  "use strict";

  var PRELOAD = 3; // images kept ready ahead of the current one
  var BATCH = 12;
  var KEEP_BEHIND = 3; // decoded images kept behind the current one, for ←
  var ZOOM_MIN = 1;
  var ZOOM_MAX = 10;

  var root, stage, side;
  var items = [];
  var index = 0;
  var nextCursor = null;
  var more = true;
  var fetching = null;
  var elements = {}; // image id -> its <img> in the stage
  var states = {}; // image id -> "pending" | "saved" | "failed"
  var zoom = { s: 1, x: 0, y: 0 };
  var keyAt = null; // performance.now() of the key that asked for the image being shown
  var timings = [];

  function current() { return items[index] || null; }

  function fetchMore() {
    if (fetching || !more) return fetching;
    var params = new URLSearchParams(root.dataset.qs);
    var after = items.length ? items[items.length - 1].cursor : nextCursor;
    if (after) params.set("after", after);
    params.set("n", String(BATCH));
    fetching = fetch(root.dataset.items + "?" + params.toString(), { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("the server answered " + response.status);
        return response.json();
      })
      .then(function (data) {
        items = items.concat(data.items);
        more = !!data.next;
        fetching = null;
        preload();
        return data;
      }, function (error) {
        fetching = null;
        message("Could not load more images: " + error.message + ".");
        throw error;
      });
    return fetching;
  }

  function message(text) {
    var box = document.getElementById("flash");
    if (!box) return;
    box.textContent = "";
    var div = document.createElement("div");
    div.className = "flash";
    div.textContent = text;
    box.appendChild(div);
  }

  function element(item) {
    var el = elements[item.id];
    if (el) return el;
    el = document.createElement("img");
    el.className = "viewer-img";
    el.alt = "Image " + item.id;
    el.decoding = "async";
    el.draggable = false;
    el.dataset.id = String(item.id);
    el.src = item.full_url;
    stage.appendChild(el);
    elements[item.id] = el;
    // Decoded now, so showing it later costs a style change, not a decode.
    if (el.decode) el.decode().catch(function () {});
    return el;
  }

  // Keeps the next PRELOAD images loading, fetches the next batch early, and drops images far behind.
  function preload() {
    if (current()) element(current()); // the one on screen comes first
    for (var j = index + 1; j <= index + PRELOAD && j < items.length; j++) element(items[j]);
    // A whole batch ahead: a reviewer deciding every 40 ms gets through the rest of one in half a second.
    if (items.length - index <= BATCH) fetchMore();
    Object.keys(elements).forEach(function (id) {
      var at = positionOf(Number(id));
      if (at < index - KEEP_BEHIND || at > index + PRELOAD) {
        elements[id].remove();
        delete elements[id];
      }
    });
  }

  function positionOf(id) {
    for (var i = 0; i < items.length; i++) if (items[i].id === id) return i;
    return -1;
  }

  function show(i) {
    var old = current();
    if (old && elements[old.id]) {
      elements[old.id].classList.remove("is-current");
      elements[old.id].style.transform = "";
    }
    index = i;
    resetZoom();
    var item = current();
    var empty = document.getElementById("viewer-empty");
    empty.hidden = !!item;
    if (!item) {
      side.textContent = "";
      document.getElementById("viewer-position").textContent = "";
      document.getElementById("viewer-back").href = galleryUrl();
      paintState();
      return;
    }
    var el = element(item);
    el.classList.add("is-current");
    // Escaped by the server (curation/_viewer_side.html); no script runs from it.
    side.innerHTML = item.panel;
    document.getElementById("viewer-position").textContent =
      "#" + item.id + " · " + (index + 1) + " of " + items.length + (more ? "+" : "");
    document.getElementById("viewer-back").href = galleryUrl();
    paintState();
    timeShown(el);
    preload();
  }

  // From the key press to the frame that shows the new image (after its load when it was not ready).
  function timeShown(el) {
    if (keyAt === null) return;
    var start = keyAt;
    keyAt = null;
    function done() {
      requestAnimationFrame(function () { timings.push(performance.now() - start); });
    }
    if (el.complete && el.naturalWidth) done();
    else el.addEventListener("load", done, { once: true });
  }

  function galleryUrl() {
    var item = current();
    if (item) return item.gallery_url;
    var last = items[items.length - 1];
    if (!last) return root.dataset.gallery;
    var qs = root.dataset.qs;
    return root.dataset.galleryPath + "?" + (qs ? qs + "&" : "") + "after=" + encodeURIComponent(last.cursor);
  }

  var waiting = false; // for the next batch, because the keys got ahead of the preloading
  var owed = 0; // steps asked for while waiting

  function step(by) {
    if (waiting) {
      if (by > 0) owed += by;
      return;
    }
    var target = index + by;
    if (target < 0) return;
    if (target < items.length) {
      show(target);
      return;
    }
    if (index >= items.length) return; // already past the last one
    if (!more) {
      show(items.length); // "no more images"
      return;
    }
    var p = fetchMore();
    if (!p) return;
    waiting = true;
    owed = by;
    document.getElementById("viewer-position").textContent = "loading…";
    p.then(function () {
      var n = owed;
      waiting = false;
      owed = 0;
      step(n);
    }, function () {
      waiting = false;
      owed = 0;
    });
  }

  function decide(decision) {
    var item = current();
    if (!item || waiting) return; // no decision on an image that is not on screen
    item.decision = decision;
    window.SceneImg.decide(item.id, item.decide_url, decision, "viewer");
    step(1);
  }

  function paintState() {
    var label = document.getElementById("viewer-save");
    var item = current();
    var state = item ? states[item.id] : null;
    var said = state === "pending" ? "saving…" : state === "saved" ? "saved" : state === "failed" ? "not saved" : "";
    // The side panel was rendered before this decision; the bar says what it is now.
    label.textContent = said ? item.decision + " · " + said : "";
    label.dataset.state = state || "";
  }

  document.addEventListener("sceneimg:save", function (e) {
    states[e.detail.image] = e.detail.state;
    paintState();
  });

  // An undo (from app.js's queue) brings the undone image back into view.
  document.addEventListener("undone", function (e) {
    var images = (e.detail && e.detail.images) || [];
    images.forEach(function (id) { delete states[id]; });
    var at = images.length ? positionOf(Number(images[0])) : -1;
    if (at >= 0) show(at);
    else paintState();
  });

  // --- Zoom and pan: a transform on the current image, reset when another is shown. ---
  function applyZoom() {
    var item = current();
    var el = item && elements[item.id];
    if (zoom.s <= ZOOM_MIN) zoom = { s: 1, x: 0, y: 0 };
    if (el) el.style.transform = zoom.s === 1 ? "" : "translate(" + zoom.x + "px, " + zoom.y + "px) scale(" + zoom.s + ")";
    stage.classList.toggle("is-zoomed", zoom.s > 1);
    document.getElementById("viewer-zoom").textContent = zoom.s === 1 ? "fit" : Math.round(zoom.s * 100) + "%";
    root.dataset.zoom = String(zoom.s);
  }
  function resetZoom() {
    zoom = { s: 1, x: 0, y: 0 };
    applyZoom();
  }
  // Zooms by `factor` keeping the point (px, py) (from the stage's centre) where it is.
  function zoomBy(factor, px, py) {
    var s = Math.min(Math.max(zoom.s * factor, ZOOM_MIN), ZOOM_MAX);
    var k = s / zoom.s;
    zoom = { s: s, x: px - (px - zoom.x) * k, y: py - (py - zoom.y) * k };
    applyZoom();
  }
  function fromCentre(e) {
    var box = stage.getBoundingClientRect();
    return [e.clientX - box.left - box.width / 2, e.clientY - box.top - box.height / 2];
  }

  function bindZoom() {
    stage.addEventListener("wheel", function (e) {
      if (!current()) return;
      e.preventDefault();
      var p = fromCentre(e);
      zoomBy(Math.exp(-e.deltaY * 0.0015), p[0], p[1]);
    }, { passive: false });
    var drag = null;
    stage.addEventListener("pointerdown", function (e) {
      if (zoom.s === 1 || e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY };
      stage.setPointerCapture(e.pointerId);
      stage.classList.add("is-dragging");
    });
    stage.addEventListener("pointermove", function (e) {
      if (!drag) return;
      zoom.x += e.clientX - drag.x;
      zoom.y += e.clientY - drag.y;
      drag = { x: e.clientX, y: e.clientY };
      applyZoom();
    });
    function endDrag() {
      drag = null;
      stage.classList.remove("is-dragging");
    }
    stage.addEventListener("pointerup", endDrag);
    stage.addEventListener("pointercancel", endDrag);
  }

  // --- Keys and buttons ---
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName));
  }

  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    var dialog = document.getElementById("keymap");
    if (dialog && dialog.open) return;
    var moves = { k: 1, r: 1, s: 1, ArrowRight: 1, ArrowLeft: 1 };
    if (moves[e.key]) keyAt = performance.now();
    switch (e.key) {
      case "k": decide("keep"); break;
      case "r": decide("reject"); break;
      case "s":
      case "ArrowRight": step(1); break;
      case "ArrowLeft": step(-1); break;
      case "u": window.SceneImg.undo(); break;
      case "+":
      case "=": zoomBy(1.25, 0, 0); break;
      case "-": zoomBy(1 / 1.25, 0, 0); break;
      case "0": resetZoom(); break;
      case "Escape": window.SceneImg.go(galleryUrl()); break;
      default: return;
    }
    e.preventDefault();
  }

  function onClick(e) {
    var decision = e.target.closest("[data-viewer-decision]");
    if (decision) {
      decide(decision.dataset.viewerDecision);
      return;
    }
    var move = e.target.closest("[data-viewer-move]");
    if (!move) return;
    if (move.dataset.viewerMove === "skip") step(1);
    else window.SceneImg.undo();
  }

  function start() {
    root = document.getElementById("viewer");
    if (!root) return;
    stage = document.getElementById("viewer-stage");
    side = document.getElementById("viewer-side");
    nextCursor = root.dataset.after || null;
    bindZoom();
    document.addEventListener("keydown", onKey);
    root.addEventListener("click", onClick);
    // For tests and bench/viewer.py: where the viewer is and how fast images appeared.
    window.SceneImgViewer = {
      timings: timings,
      state: function () {
        var item = current();
        return { index: index, id: item ? item.id : null, loaded: items.length, more: more,
                 preloaded: Object.keys(elements).map(Number), zoom: zoom.s };
      },
    };
    var first = fetchMore();
    if (first) first.then(function () { show(0); }, function () {});
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
