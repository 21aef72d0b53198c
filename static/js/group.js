// The near-duplicate group page: b keeps the best, 1-9 choose a representative, u undoes.
(function () {
  "use strict";
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target && /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName)) return;
    var dialog = document.getElementById("keymap");
    if (dialog && dialog.open) return;
    if (e.key === "b") {
      var keep = document.getElementById("keep-best");
      if (keep) { e.preventDefault(); keep.click(); }
    } else if (/^[1-9]$/.test(e.key)) {
      var member = document.querySelector('.group-member[data-number="' + e.key + '"] .choose-rep');
      if (member) { e.preventDefault(); member.click(); }
    } else if (e.key === "u" && window.SceneImg) {
      e.preventDefault();
      window.SceneImg.undo();
    }
  });
  // An undo changes decisions this page shows: show them again.
  document.addEventListener("undone", function () { window.location.reload(); });
})();
