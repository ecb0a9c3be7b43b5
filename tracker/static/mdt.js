// Live SINS and Tokuhashi totals, and the Bilsky flag, on the MDT outcome form. The server
// computes the stored totals; without JavaScript the "Calculate scores" button shows the same.
(function () {
  "use strict";
  var bands = {
    sins: [[0, 6, "Stable"], [7, 12, "Potentially unstable"], [13, 18, "Unstable"]],
    tokuhashi: [[0, 8, "Expected survival under 6 months"], [9, 11, "Expected survival 6 months or more"],
                [12, 15, "Expected survival a year or more"]]
  };
  function update(fieldset) {
    var name = fieldset.getAttribute("data-score");
    var selects = fieldset.querySelectorAll("select");
    var total = 0, entered = 0;
    selects.forEach(function (s) { if (s.value !== "") { total += parseInt(s.value, 10); entered += 1; } });
    var out = document.getElementById(name + "-summary");
    if (!out) { return; }
    out.textContent = "";
    if (entered === 0) { out.textContent = "Enter the components to see the total."; return; }
    var text = "Total " + total;
    if (entered === selects.length) {
      bands[name].forEach(function (b) { if (total >= b[0] && total <= b[1]) { text += " · " + b[2]; } });
    } else {
      text += " (components entered: " + entered + " of " + selects.length + ")";
    }
    out.appendChild(document.createTextNode(text));
    if (name === "sins" && entered === selects.length && total >= 7) {
      var flag = document.createElement("span");
      flag.className = "score-flag d-block";
      flag.textContent = "SINS 7 or more: a spinal surgical opinion is needed.";
      out.appendChild(flag);
    }
  }
  document.querySelectorAll("fieldset[data-score]").forEach(function (fieldset) {
    fieldset.addEventListener("change", function () { update(fieldset); });
  });
  // Bilsky 2-3 is flagged as SINS 7 or more is: a spinal surgical opinion is needed.
  var bilsky = document.getElementById("bilsky_grade");
  var bilskyFlag = document.getElementById("bilsky-flag");
  if (bilsky && bilskyFlag) {
    bilsky.addEventListener("change", function () {
      bilskyFlag.hidden = !(bilsky.value === "2" || bilsky.value === "3");
    });
  }
})();
