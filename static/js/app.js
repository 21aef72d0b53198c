/* SceneImg keyboard review. The server does the work; this file only moves focus, keeps the
 * selection and an undo stack, and fires the same htmx requests the buttons do. */
(function () {
  "use strict";

  var UNDO_KEY = "sceneimg.undo";
  var UNDO_MAX = 100;

  var focusedId = null;
  var anchorId = null;
  var selected = new Set();

  function $(sel) { return document.querySelector(sel); }
  function body() { return document.body; }

  function currentQs() {
    var el = document.getElementById("current-qs");
    return el ? el.value : "";
  }
  // The CSRF header comes from hx-headers on <body>, which htmx.ajax inherits like any request.
  function post(url, values, target, swap) {
    values.qs = currentQs();
    return htmx.ajax("POST", url, {
      values: values,
      target: target || "#flash",
      swap: swap || "none",
    });
  }
  function flash(message) {
    var box = document.getElementById("flash");
    if (!box) return;
    box.textContent = "";
    var div = document.createElement("div");
    div.className = "flash";
    div.textContent = message;
    box.appendChild(div);
  }

  // --- Undo stack: one entry per action, kept per browser tab so it survives navigation. ---
  function loadStack() {
    try {
      return JSON.parse(sessionStorage.getItem(UNDO_KEY) || "[]");
    } catch (e) {
      return [];
    }
  }
  function saveStack(stack) {
    sessionStorage.setItem(UNDO_KEY, JSON.stringify(stack.slice(-UNDO_MAX)));
  }
  // Large actions send their ids in the response body, not the HX-Trigger header (proxies limit
  // header size); htmx fires header events after htmx:beforeOnLoad, so the response is at hand.
  var lastResponse = "";
  document.addEventListener("htmx:beforeOnLoad", function (e) {
    lastResponse = (e.detail && e.detail.xhr && e.detail.xhr.responseText) || "";
  });
  function idsFromBody(name) {
    var doc = new DOMParser().parseFromString(lastResponse, "text/html");
    var el = doc.querySelector('.undo-ids[data-event="' + name + '"]');
    function ints(text) { return text ? text.split(",").map(Number) : []; }
    return el ? { reviews: ints(el.dataset.reviews), images: ints(el.dataset.images) } : { reviews: [], images: [] };
  }
  function eventIds(e, name) {
    var d = e.detail || {};
    var ids = d.in_body ? idsFromBody(name) : { reviews: d.reviews || [], images: d.images || [] };
    ids.run = d.run || null;
    return ids;
  }
  document.addEventListener("reviewed", function (e) {
    var d = eventIds(e, "reviewed");
    if (!d.reviews.length && !d.run) return;
    var stack = loadStack();
    stack.push({ reviews: d.reviews, images: d.images, run: d.run });
    saveStack(stack);
  });

  function undo() {
    var stack = loadStack();
    var token = stack.pop();
    if (!token) {
      flash("Nothing to undo in this tab.");
      return;
    }
    saveStack(stack);
    var values = token.run ? { run: token.run } : { reviews: token.reviews.join(",") };
    post(body().dataset.undoUrl, values).then(function () {
      if (document.getElementById("detail-nav")) {
        window.location.reload();
        return;
      }
      if (token.images && token.images.length) {
        var card = cardById(token.images[0]);
        if (card) setFocus(card);
      }
    });
  }

  // --- Cards, focus and selection ---
  function cards() { return Array.prototype.slice.call(document.querySelectorAll("#grid .card")); }
  function cardById(id) { return document.getElementById("card-" + id); }
  function focused() { return focusedId ? cardById(focusedId) : null; }

  function setFocus(card, scroll) {
    document.querySelectorAll(".card.is-focused").forEach(function (c) { c.classList.remove("is-focused"); });
    if (!card) {
      focusedId = null;
      return;
    }
    focusedId = card.dataset.id;
    card.classList.add("is-focused");
    if (scroll === false) return;
    card.scrollIntoView({ block: "nearest" });
    // On the last row, bring the "load more" sentinel into view too so the next page arrives.
    var sentinel = document.querySelector("#grid .sentinel");
    var list = cards();
    if (sentinel && list.indexOf(card) >= list.length - columns(list)) sentinel.scrollIntoView({ block: "nearest" });
  }

  function columns(list) {
    if (!list.length) return 1;
    var top = list[0].offsetTop;
    var n = 0;
    for (var i = 0; i < list.length && list[i].offsetTop === top; i++) n++;
    return Math.max(n, 1);
  }

  function move(step, byRow) {
    var list = cards();
    if (!list.length) return null;
    var i = list.indexOf(focused());
    if (i < 0) {
      setFocus(list[0]);
      return list[0];
    }
    var j = i + (byRow ? step * columns(list) : step);
    j = Math.min(Math.max(j, 0), list.length - 1);
    setFocus(list[j]);
    return list[j];
  }

  function renderSelection() {
    document.querySelectorAll("#grid .card").forEach(function (c) {
      c.classList.toggle("is-selected", selected.has(c.dataset.id));
    });
    var info = document.getElementById("selection-info");
    if (info) {
      info.hidden = selected.size === 0;
      document.getElementById("selection-count").textContent = String(selected.size);
    }
  }
  function toggleSelect(card) {
    var id = card.dataset.id;
    if (selected.has(id)) selected.delete(id);
    else selected.add(id);
    anchorId = id;
    renderSelection();
  }
  function selectRange(fromCard, toCard) {
    var list = cards();
    var a = list.indexOf(fromCard);
    var b = list.indexOf(toCard);
    if (a < 0) a = b;
    if (b < 0) return;
    for (var i = Math.min(a, b); i <= Math.max(a, b); i++) selected.add(list[i].dataset.id);
    renderSelection();
  }
  function clearSelection() {
    selected.clear();
    renderSelection();
  }

  function decide(decision) {
    if (selected.size) {
      var ids = Array.from(selected);
      post(body().dataset.reviewUrl, { ids: ids.join(","), decision: decision }).then(clearSelection);
      return;
    }
    var card = focused();
    if (!card) return;
    var list = cards();
    var next = list[list.indexOf(card) + 1];
    htmx.ajax("POST", card.dataset.decide, {
      target: card,
      swap: "outerHTML",
      values: { decision: decision, qs: currentQs() },
    });
    if (next && decision !== "clear") setFocus(next); // review flow: straight on to the next picture
  }

  // New content (first load, infinite scroll, swapped cards) gets its focus and selection marks back.
  function restore(root) {
    var found = root.matches && root.matches(".card") ? [root] : root.querySelectorAll ? root.querySelectorAll(".card") : [];
    Array.prototype.forEach.call(found, function (c) {
      c.classList.toggle("is-selected", selected.has(c.dataset.id));
      c.classList.toggle("is-focused", c.dataset.id === focusedId);
    });
  }

  function onGalleryLoad() {
    if (!document.getElementById("grid")) return;
    var hash = window.location.hash.match(/^#card-(\d+)$/);
    var start = hash ? cardById(hash[1]) : null;
    setFocus(start || cards()[0] || null, !!start);
  }

  // --- Events ---
  document.addEventListener("htmx:load", function (e) { restore(e.target); });
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.target && e.target.id === "results") {
      clearSelection();
      focusedId = null;
      onGalleryLoad();
    }
  });
  document.addEventListener("refresh-results", function () {
    if (!document.getElementById("results")) return;
    htmx.ajax("GET", window.location.pathname + window.location.search, { target: "#results", swap: "outerHTML" });
  });

  document.addEventListener("click", function (e) {
    var opener = e.target.closest("[data-keymap-open]");
    if (opener) {
      openKeymap();
      return;
    }
    var action = e.target.closest("[data-selection-action]");
    if (action) {
      decide(action.getAttribute("data-selection-action"));
      return;
    }
    if (e.target.closest("[data-selection-none]")) {
      clearSelection();
      return;
    }
    var card = e.target.closest("#grid .card");
    if (!card) return;
    var onToggle = e.target.closest(".select-toggle");
    if (e.shiftKey) {
      e.preventDefault(); // shift-click selects a range instead of opening a window
      selectRange(anchorId ? cardById(anchorId) : card, card);
      setFocus(card, false);
      return;
    }
    if (onToggle || ((e.ctrlKey || e.metaKey) && !e.target.closest("a"))) {
      e.preventDefault();
      toggleSelect(card);
      setFocus(card, false);
      return;
    }
    setFocus(card, false);
    if (!e.target.closest("a, button")) anchorId = card.dataset.id;
  });

  function openKeymap() {
    var dialog = document.getElementById("keymap");
    if (dialog && !dialog.open) dialog.showModal();
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName));
  }
  // Enter and Space belong to a focused link or button (activate it), not to the gallery.
  function activates(e) {
    return (e.key === "Enter" || e.key === " ") && e.target && e.target.closest &&
      e.target.closest("a, button, summary, [role=button]");
  }

  function galleryKey(e) {
    var key = e.key;
    var card;
    switch (key) {
      case "ArrowRight": card = move(1, false); break;
      case "ArrowLeft": card = move(-1, false); break;
      case "ArrowDown": card = move(1, true); break;
      case "ArrowUp": card = move(-1, true); break;
      case "Home": setFocus(cards()[0] || null); return true;
      case "End": var list = cards(); setFocus(list[list.length - 1] || null); return true;
      case "k": decide("keep"); return true;
      case "r": decide("reject"); return true;
      case "c": decide("clear"); return true;
      case "K": var bk = document.getElementById("bulk-keep"); if (bk) bk.click(); return true;
      case "R": var br = document.getElementById("bulk-reject"); if (br) br.click(); return true;
      case "u": undo(); return true;
      case "Enter":
      case "o": if (focused()) window.location.href = focused().dataset.detail; return true;
      case "x":
      case " ": if (focused()) toggleSelect(focused()); return true;
      case "a": cards().forEach(function (c) { selected.add(c.dataset.id); }); renderSelection(); return true;
      case "Escape": clearSelection(); return true;
      case "/": var first = document.querySelector("#filter-form select, #filter-form input"); if (first) first.focus(); return true;
      default: return false;
    }
    // Arrow keys: with shift, the range from the anchor grows with the focus.
    if (card && e.shiftKey) selectRange(anchorId ? cardById(anchorId) : card, card);
    else if (card) anchorId = card.dataset.id;
    return true;
  }

  function detailKey(e) {
    var nav = document.getElementById("detail-nav");
    switch (e.key) {
      case "k": click("#detail-keep"); return true;
      case "r": click("#detail-reject"); return true;
      case "c": click("#detail-clear"); return true;
      case "u": undo(); return true;
      case "ArrowRight":
      case "n": if (nav.dataset.next) window.location.href = nav.dataset.next; return true;
      case "ArrowLeft":
      case "p": if (nav.dataset.prev) window.location.href = nav.dataset.prev; return true;
      case "Escape":
      case "g": window.location.href = nav.dataset.gallery + "#card-" + (window.location.pathname.match(/(\d+)\/?$/) || ["", ""])[1]; return true;
      default: return false;
    }
  }
  function click(sel) {
    var el = $(sel);
    if (el && !el.disabled) el.click();
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target) || activates(e)) return;
    var dialog = document.getElementById("keymap");
    if (dialog && dialog.open) return; // the dialog closes itself on Escape
    if (e.key === "?") {
      openKeymap();
      e.preventDefault();
      return;
    }
    var handled = false;
    if (document.getElementById("grid")) handled = galleryKey(e);
    else if (document.getElementById("detail-nav")) handled = detailKey(e);
    if (handled) e.preventDefault();
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", onGalleryLoad);
  else onGalleryLoad();
})();
