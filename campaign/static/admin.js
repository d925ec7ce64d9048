// The dashboard works without this file; it only adds conveniences to the signature list.
(function () {
  "use strict";
  // "Tick all on this page" for the bulk actions.
  document.querySelectorAll("input.pick-all").forEach(function (all) {
    var form = all.closest("form");
    var boxes = form ? form.querySelectorAll("input[name=ids]") : [];
    function follow() {
      var ticked = Array.prototype.filter.call(boxes, function (b) { return b.checked; }).length;
      all.checked = boxes.length > 0 && ticked === boxes.length;
      all.indeterminate = ticked > 0 && ticked < boxes.length;
    }
    all.addEventListener("change", function () {
      boxes.forEach(function (box) { box.checked = all.checked; });
    });
    boxes.forEach(function (box) { box.addEventListener("change", follow); });
    // Ticks the server kept after a refused action, or the browser restored on "back".
    follow();
    window.addEventListener("pageshow", follow);
  });
  // Ask once more before an action that cannot be undone.
  document.querySelectorAll("form.bulk, form.erase").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var action = form.querySelector("[name=action]");
      if (action && action.value === "erase" &&
          !window.confirm(form.getAttribute("data-confirm") || "Erase personal data? This cannot be undone.")) {
        event.preventDefault();
      }
    });
  });
}());
