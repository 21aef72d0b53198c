/* SceneImg keyboard review. The server does the work; this file moves the cursor (which is the focused
 * card), keeps the selection and an undo stack, and sends decisions through one queue so that none is
 * lost: in order, one at a time, retried when the network or the server fails. */
(function () {
  "use strict";

  var UNDO_KEY = "sceneimg.undo";
  var UNDO_MAX = 100;
  // Waits before each automatic retry of a failed request; after the last one the decision shows
  // "not saved" with a Retry button.
  var RETRY_DELAYS = [300, 800, 1600, 3200];
  var REQUEST_TIMEOUT = 20000;

  var focusedId = null;
  var anchorId = null;
  var selected = new Set();

  function $(sel) { return document.querySelector(sel); }
  function body() { return document.body; }

  function currentQs() {
    var el = document.getElementById("current-qs");
    return el ? el.value : "";
  }
  function flash(message, level, action) {
    var box = document.getElementById("flash");
    if (!box) return;
    box.textContent = "";
    var div = document.createElement("div");
    div.className = "flash" + (level ? " flash-" + level : "");
    div.textContent = message;
    if (action) {
      // A message with something to do stays until it is done.
      div.classList.add("flash-sticky");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "linklike flash-action";
      button.textContent = action.label;
      button.addEventListener("click", function () {
        box.textContent = "";
        action.run();
      });
      div.appendChild(document.createTextNode(" "));
      div.appendChild(button);
    }
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

  function detailImage() {
    var panel = document.getElementById("decision");
    return panel && document.getElementById("detail-nav") ? Number(panel.dataset.image) : null;
  }

  // Takes the action to undo off the stack: the last one, or on the detail page the last one that
  // touched this image (and only this image of it is undone). Null when there is none.
  function takeUndo() {
    var stack = loadStack();
    var image = detailImage();
    if (image === null) {
      var token = stack.pop();
      saveStack(stack);
      return token ? { token: token, index: stack.length, values: token.run ? { run: token.run } : { reviews: token.reviews.join(",") } } : null;
    }
    for (var i = stack.length - 1; i >= 0; i--) {
      var entry = stack[i];
      if (entry.run || entry.images.indexOf(image) < 0) continue;
      var rest = entry.images.filter(function (id) { return id !== image; });
      if (rest.length) stack[i] = { reviews: entry.reviews, images: rest, run: null };
      else stack.splice(i, 1);
      saveStack(stack);
      return { token: entry, index: i, restore: !!rest.length,
               values: { reviews: entry.reviews.join(","), image: image, view: "detail" } };
    }
    return null;
  }
  // An undo that could not be sent goes back where it was, so pressing u again retries it.
  function putBackUndo(taken) {
    var stack = loadStack();
    if (taken.restore) stack[taken.index] = taken.token;
    else stack.splice(Math.min(taken.index, stack.length), 0, taken.token);
    saveStack(stack);
  }

  function undo() {
    enqueue({
      kind: "undo",
      url: body().dataset.undoUrl,
      // Decided when its turn comes, so the decisions queued before it are on the stack by then.
      prepare: function (job) {
        job.taken = takeUndo();
        if (!job.taken) {
          flash(detailImage() === null ? "Nothing to undo in this tab." : "Nothing to undo for this image.");
          return null;
        }
        return job.taken.values;
      },
      swapTarget: null,
      done: function (job) {
        var images = job.values.image ? [job.values.image] : job.taken.token.images || [];
        // "saved" spoke of the decision just undone.
        images.forEach(function (id) {
          delete saves[id];
          paintSave(saveHolder(id));
        });
        if (images.length && !document.getElementById("detail-nav")) {
          var card = cardById(images[0]);
          if (card) setFocus(card);
        }
      },
      failed: function (job) {
        if (job.taken) putBackUndo(job.taken);
      },
    });
  }

  // --- The request queue: every decision is sent, in order, one at a time. ---
  // Not through htmx: one htmx request slot keeps only the newest waiting request, so fast keys
  // would be dropped. A job: {kind, url, values or prepare(job), image, swapTarget, done, failed}.
  var queue = [];
  var sending = false;
  var waiting = false; // the first job waits out its retry delay; nothing overtakes it
  var failedChanges = []; // selection changes not made because the server was unreachable
  var saves = {}; // image id -> {state: "pending" | "saved" | "failed", job, decision, message}
  var leaveTo = null; // where to go once everything is saved (keys that leave the page wait for it)

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    // randomUUID needs a secure context (https or localhost); getRandomValues does not.
    var bytes = new Uint8Array(16);
    if (window.crypto && crypto.getRandomValues) crypto.getRandomValues(bytes);
    else for (var i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    return Array.prototype.map.call(bytes, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
  }

  function csrfToken() {
    try {
      return JSON.parse(body().getAttribute("hx-headers"))["x-csrftoken"] || "";
    } catch (e) {
      return "";
    }
  }

  function unsaved() {
    if (sending || queue.length) return true;
    return Object.keys(saves).some(function (id) { return saves[id].state === "failed"; });
  }

  function enqueue(job) {
    job.attempts = 0;
    queue.push(job);
    sendNext();
  }

  function sendNext() {
    if (sending || waiting) return;
    var job = queue[0];
    if (!job) {
      idle();
      return;
    }
    if (job.prepare && !job.values) {
      job.values = job.prepare(job);
      if (!job.values) {
        queue.shift();
        sendNext();
        return;
      }
    }
    sending = true;
    var jobs = job.batchUrl ? batchAtHead(job) : [job];
    post(job.batchUrl ? batchRequest(jobs) : job).then(function (outcome) {
      sending = false;
      if (outcome.ok) {
        queue.splice(0, jobs.length);
        if (job.batchUrl) succeedEach(jobs, outcome);
        else succeed(job, outcome);
      } else if (outcome.transient && job.attempts < RETRY_DELAYS.length) {
        waiting = true;
        setTimeout(function () {
          waiting = false;
          sendNext();
        }, RETRY_DELAYS[job.attempts++]);
        paintRetrying(job);
      } else if (outcome.transient) {
        // The server is unreachable: what waits behind this job would meet the same fate.
        failAll(queue.splice(0), outcome.message);
      } else {
        queue.splice(0, jobs.length).forEach(function (refused) { fail(refused, outcome.message); });
      }
    }).catch(function (error) {
      console.error(error); // a fault in showing the answer must not stop the queue
    }).then(sendNext);
  }

  // The viewer's decisions waiting at the head of the queue go out together, in order, each with its
  // own client_id: a reviewer faster than one request per decision is not held to the server's pace.
  var BATCH_MAX = 50;
  function batchAtHead(job) {
    var jobs = [];
    for (var i = 0; i < queue.length && jobs.length < BATCH_MAX && queue[i].batchUrl === job.batchUrl; i++) jobs.push(queue[i]);
    return jobs;
  }
  function batchRequest(jobs) {
    var items = jobs.map(function (j) { return { image: Number(j.image), decision: j.decision, client_id: j.values.client_id }; });
    return { url: jobs[0].batchUrl, values: { items: JSON.stringify(items) } };
  }
  // One answer per decision: each is saved (and goes on the undo stack) or fails on its own.
  function succeedEach(jobs, outcome) {
    var results = JSON.parse(outcome.text).results || [];
    jobs.forEach(function (job, i) {
      var result = results[i] || { error: "the server did not answer for this decision" };
      if (result.error) {
        fail(job, result.error);
        return;
      }
      if (result.reviews.length) {
        htmx.trigger(body(), "reviewed", { count: result.reviews.length, reviews: result.reviews, images: [result.image], run: null });
      }
      setSave(job, "saved");
    });
  }

  function post(job) {
    var values = Object.assign({ qs: currentQs() }, job.values);
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller && setTimeout(function () { controller.abort(); }, REQUEST_TIMEOUT);
    return fetch(job.url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true", "HX-Current-URL": window.location.href },
      body: new URLSearchParams(values),
      signal: controller ? controller.signal : undefined,
    }).then(function (response) {
      return response.text().then(function (text) {
        if (response.redirected) return { ok: false, message: "signed out: sign in again (in another tab), then retry" };
        if (response.ok) return { ok: true, text: text, trigger: response.headers.get("HX-Trigger") };
        var transient = response.status >= 500 || response.status === 429 || response.status === 408;
        // A 400 says what was wrong in plain words; other refusals come as whole HTML pages.
        var said = /^</.test(text.trim()) ? "" : text.trim().slice(0, 200);
        var reason = transient ? "the server answered " + response.status : said || "refused (" + response.status + ")";
        return { ok: false, transient: transient, message: reason };
      });
    }).catch(function () {
      return { ok: false, transient: true, message: "no answer from the server" };
    }).then(function (outcome) {
      clearTimeout(timer);
      return outcome;
    });
  }

  function succeed(job, outcome) {
    lastResponse = outcome.text;
    var target = job.swapTarget ? document.querySelector(job.swapTarget) : null;
    var hadFocus = target && target.contains(document.activeElement);
    if (target) htmx.swap(target, outcome.text, { swapStyle: "outerHTML", ignoreTitle: true });
    else if (outcome.text) htmx.swap(body(), outcome.text, { swapStyle: "none", ignoreTitle: true }); // out-of-band parts only
    if (hadFocus && job.swapTarget && (document.activeElement === body() || !document.activeElement)) {
      var again = document.querySelector(job.swapTarget);
      if (again) again.focus({ preventScroll: true });
    }
    fireTriggers(outcome.trigger);
    if (job.image !== undefined) setSave(job, "saved");
    if (job.done) job.done(job);
  }

  // The same events htmx fires for an HX-Trigger header, so the undo stack hears of every change.
  function fireTriggers(header) {
    if (!header) return;
    var events;
    try {
      events = JSON.parse(header);
    } catch (e) {
      events = {};
      header.split(",").forEach(function (name) { events[name.trim()] = {}; });
    }
    Object.keys(events).forEach(function (name) {
      var detail = events[name];
      htmx.trigger(body(), name, detail !== null && typeof detail === "object" ? detail : { value: detail });
    });
  }

  function fail(job, message) {
    if (job.image !== undefined) {
      setSave(job, "failed", message);
      flash("A decision on image #" + job.image + " was not saved: " + message + ".", "error",
            { label: "Retry", run: function () { retry(job); } });
    } else {
      flash((job.kind === "undo" ? "Undo" : "The change") + " was not saved: " + message + ".", "error",
            job.kind === "undo" ? null : { label: "Retry", run: function () { retry(job); } });
    }
    if (job.failed) job.failed(job);
    leaveTo = null;
  }

  function failAll(jobs, message) {
    var decisions = jobs.filter(function (job) { return job.image !== undefined; });
    jobs.forEach(function (job) {
      if (job.image !== undefined) setSave(job, "failed", message);
      else if (job.kind === "selection") failedChanges.push(job);
      if (job.failed) job.failed(job);
    });
    var others = jobs.length - decisions.length;
    var parts = [];
    if (decisions.length) parts.push(decisions.length + " decision" + (decisions.length === 1 ? " was" : "s were") + " not saved");
    if (others) parts.push(others + " other change" + (others === 1 ? " was" : "s were") + " not made");
    flash(parts.join("; ") + " (" + message + ").", "error", { label: "Retry all", run: retryAll });
    leaveTo = null;
  }

  function retry(job) {
    if (job.image !== undefined) {
      if (!saves[job.image] || saves[job.image].job !== job) return; // a newer decision replaced it
      setSave(job, "pending");
    }
    enqueue(job);
  }
  function retryAll() {
    failedChanges.splice(0).concat(Object.keys(saves).filter(function (id) { return saves[id].state === "failed"; })
      .map(function (id) { return saves[id].job; }))
      .sort(function (a, b) { return a.seq - b.seq; })
      .forEach(retry);
  }

  function idle() {
    var url = leaveTo;
    leaveTo = null;
    if (url && !unsaved()) window.location.href = url;
  }

  // Keys and links that leave the page wait until every decision is sent, instead of asking the
  // reviewer; with decisions that failed, the browser asks (beforeunload).
  function go(url) {
    if (!sending && !queue.length) {
      window.location.href = url;
      return;
    }
    leaveTo = url;
    flash("Saving your decisions, then leaving…");
  }
  window.addEventListener("beforeunload", function (e) {
    if (!unsaved()) return;
    e.preventDefault();
    e.returnValue = ""; // older browsers show the prompt only when this is set
  });

  // --- One decision on one image: its card (or the detail panel) shows pending, saved or failed. ---
  var seq = 0;
  function decideImage(imageId, url, decision, view, note) {
    var job = {
      kind: "decide",
      seq: seq++,
      image: String(imageId),
      decision: decision,
      url: url,
      values: { decision: decision, client_id: newClientId() },
      // The viewer has no card to swap: it asks for the bare 204 and paints the state itself.
      swapTarget: view === "detail" ? "#decision" : view === "viewer" ? null : "#card-" + imageId,
    };
    if (view === "detail" || view === "viewer") job.values.view = view;
    var viewer = view === "viewer" && document.getElementById("viewer");
    if (viewer && viewer.dataset.decideMany) job.batchUrl = viewer.dataset.decideMany;
    if (note) job.values.note = note;
    setSave(job, "pending");
    enqueue(job);
  }

  function setSave(job, state, message) {
    var current = saves[job.image];
    if (current && current.job !== job && current.job.seq > job.seq) return; // a newer decision speaks for the image
    saves[job.image] = { state: state, job: job, decision: job.decision, message: message || "" };
    paintSave(saveHolder(job.image));
    // Pages without cards (the viewer) show the state themselves.
    document.dispatchEvent(new CustomEvent("sceneimg:save", { detail: { image: job.image, state: state, message: message || "" } }));
  }

  function saveHolder(imageId) {
    var card = cardById(imageId);
    if (card) return card;
    var panel = document.getElementById("decision");
    return panel && panel.dataset.image === String(imageId) ? panel : null;
  }

  function paintSave(holder) {
    if (!holder) return;
    var save = saves[holder.dataset.id || holder.dataset.image];
    var label = holder.querySelector(".save-state");
    holder.classList.remove("save-pending", "save-saved", "save-failed");
    holder.dataset.pending = save && save.state !== "saved" ? save.decision : "";
    if (label) {
      label.textContent = "";
      label.title = save ? save.message : "";
    }
    if (!save) return;
    holder.classList.add("save-" + save.state);
    if (!label) return;
    if (save.state === "pending") label.textContent = save.job.attempts ? "retrying…" : "saving…";
    else if (save.state === "saved") label.textContent = "saved";
    else {
      label.textContent = "not saved ";
      var button = document.createElement("button");
      button.type = "button";
      button.className = "linklike save-retry";
      button.textContent = "Retry";
      button.title = save.message;
      label.appendChild(button);
    }
  }
  function paintRetrying(job) {
    if (job.image !== undefined && saves[job.image] && saves[job.image].job === job) paintSave(saveHolder(job.image));
  }

  // --- Cards: the cursor is the focused card ---
  function cards() { return Array.prototype.slice.call(document.querySelectorAll("#grid .card")); }
  function cardById(id) { return document.getElementById("card-" + id); }
  function focused() { return focusedId ? cardById(focusedId) : null; }

  // Focus moves with the cursor, except away from a field the reviewer is using (the filters).
  function mayTakeFocus() {
    var active = document.activeElement;
    if (!active || active === body()) return true;
    return !(typing(active) || active.closest("#filter-form, .filters, dialog"));
  }

  // The toolbar's Viewer link opens the viewer at the cursor, in the same filter and order.
  function pointViewer() {
    var link = document.getElementById("open-viewer");
    if (!link) return;
    var base = link.dataset.base;
    link.href = focusedId ? base + (base.indexOf("?") < 0 ? "?" : "&") + "at=" + focusedId : base;
  }

  function setFocus(card, scroll) {
    document.querySelectorAll("#grid .card.is-focused").forEach(function (c) {
      c.classList.remove("is-focused");
      c.tabIndex = -1;
    });
    if (!card) {
      focusedId = null;
      pointViewer();
      return;
    }
    focusedId = card.dataset.id;
    pointViewer();
    card.classList.add("is-focused");
    card.tabIndex = 0; // Tab into the grid lands on the cursor
    if (!card.contains(document.activeElement) && mayTakeFocus()) card.focus({ preventScroll: true });
    if (scroll === false) return;
    card.scrollIntoView({ block: "nearest" });
    // On the last row, bring the "load more" sentinel into view too so the next page arrives.
    var sentinel = document.querySelector("#grid .sentinel");
    var list = cards();
    if (sentinel && list.indexOf(card) >= list.length - columns(list)) sentinel.scrollIntoView({ block: "nearest" });
  }

  // Tab, a click or anything else that focuses a card (or a button in it) moves the cursor there.
  document.addEventListener("focusin", function (e) {
    var card = e.target.closest && e.target.closest("#grid .card");
    if (card && card.dataset.id !== focusedId) setFocus(card, false);
  });

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
      enqueue({ kind: "selection", seq: seq++, url: body().dataset.reviewUrl, values: { ids: ids.join(","), decision: decision }, swapTarget: null });
      clearSelection();
      return;
    }
    var card = focused();
    if (!card) return;
    var list = cards();
    var next = list[list.indexOf(card) + 1];
    decideImage(card.dataset.id, card.dataset.decide, decision, "card");
    if (next && decision !== "clear") setFocus(next); // review flow: straight on to the next picture
  }

  function decideDetail(decision) {
    var panel = document.getElementById("decision");
    if (!panel) return;
    if (decision === "clear") {
      var clear = document.getElementById("detail-clear");
      if (clear && clear.disabled && !saves[panel.dataset.image]) return; // nothing to clear
    }
    var note = document.getElementById("decision-note");
    decideImage(panel.dataset.image, panel.dataset.decide, decision, "detail", note ? note.value.trim() : "");
  }

  // New content (first load, infinite scroll, swapped cards) gets its cursor, selection and save marks back.
  function restore(root) {
    var found = root.matches && root.matches(".card, #decision") ? [root] : root.querySelectorAll ? root.querySelectorAll(".card, #decision") : [];
    Array.prototype.forEach.call(found, function (c) {
      if (c.classList.contains("card")) {
        c.classList.toggle("is-selected", selected.has(c.dataset.id));
        c.classList.toggle("is-focused", c.dataset.id === focusedId);
        c.tabIndex = c.dataset.id === focusedId ? 0 : -1;
      }
      paintSave(c);
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
    var link = e.target.closest("a[href]");
    if (link && (sending || queue.length) && leavesPage(link, e)) {
      e.preventDefault();
      go(link.href);
      return;
    }
    var retryButton = e.target.closest(".save-retry");
    if (retryButton) {
      var holder = retryButton.closest(".card, #decision");
      var save = holder && saves[holder.dataset.id || holder.dataset.image];
      if (save) retry(save.job);
      return;
    }
    var button = e.target.closest("[data-decision]");
    if (button && button.closest("#decision")) {
      e.preventDefault(); // the form is for browsers without JavaScript
      decideDetail(button.dataset.decision);
      return;
    }
    var card = e.target.closest("#grid .card");
    if (!card) return;
    if (button) {
      setFocus(card, false);
      decideImage(card.dataset.id, card.dataset.decide, button.dataset.decision, "card");
      return;
    }
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

  // A plain click on a link to another page of this site (not a new tab, not a download).
  function leavesPage(link, e) {
    if (e.button !== 0 || e.shiftKey || e.ctrlKey || e.metaKey || e.altKey) return false;
    if (link.target || link.hasAttribute("download") || link.origin !== window.location.origin) return false;
    return link.pathname + link.search !== window.location.pathname + window.location.search;
  }

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
      case "o": if (focused()) go(focused().dataset.detail); return true;
      case "v": var viewerLink = document.getElementById("open-viewer"); if (viewerLink) go(viewerLink.href); return true;
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

  function focusField(field) {
    if (typeof field === "string") field = document.getElementById(field);
    if (field) field.focus();
  }

  function detailKey(e) {
    var nav = document.getElementById("detail-nav");
    switch (e.key) {
      case "k": decideDetail("keep"); return true;
      case "r": decideDetail("reject"); return true;
      case "c": decideDetail("clear"); return true;
      case "u": undo(); return true;
      case "m": focusField("decision-note"); return true;
      case "l": focusField(document.querySelector(".label-add input[name=name]")); return true;
      case "ArrowRight":
      case "n": if (nav.dataset.next) go(nav.dataset.next); return true;
      case "ArrowLeft":
      case "p": if (nav.dataset.prev) go(nav.dataset.prev); return true;
      case "Escape":
      case "g": go(nav.dataset.gallery + "#card-" + detailImage()); return true;
      default: return false;
    }
  }

  document.addEventListener("keydown", function (e) {
    // Enter in the note must not submit the decision form as "keep"; Escape leaves the field.
    if (e.target && e.target.id === "decision-note" && (e.key === "Enter" || e.key === "Escape")) {
      e.preventDefault();
      e.target.blur();
      return;
    }
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

  // Narrow screens fold the menu and the filter panel behind a button that toggles is-open on its target.
  document.addEventListener("click", function (e) {
    var toggle = e.target.closest && e.target.closest("[data-toggle-open]");
    var target = toggle && document.querySelector(toggle.dataset.toggleOpen);
    if (!target) return;
    toggle.setAttribute("aria-expanded", String(target.classList.toggle("is-open")));
  });

  // The review viewer (viewer.js) sends its decisions and undos through this same queue.
  window.SceneImg = { decide: decideImage, undo: undo, go: go, unsaved: unsaved };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", onGalleryLoad);
  else onGalleryLoad();
})();
