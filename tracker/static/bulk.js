// "Select every patient on this page" as one tick box above the list's tick boxes. Without
// JavaScript the list's "Every patient on this page" button does the same.
(function () {
  "use strict";
  var all = document.getElementById("bulk-all");
  if (!all) { return; }
  var ticks = document.querySelectorAll("input.bulk-tick");
  all.classList.remove("d-none");
  all.addEventListener("change", function () {
    ticks.forEach(function (t) { t.checked = all.checked; });
  });
  ticks.forEach(function (t) {
    t.addEventListener("change", function () {
      var ticked = Array.prototype.filter.call(ticks, function (x) { return x.checked; }).length;
      all.checked = ticked === ticks.length;
      all.indeterminate = ticked > 0 && ticked < ticks.length;
    });
  });
}());
