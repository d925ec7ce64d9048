/* The sign form: show the continent of the chosen country, and move to the errors after a
   refused submission. The form works without this script. */
(function () {
  "use strict";
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }
  var select = document.getElementById("country");
  var out = document.getElementById("country-continent");
  if (!select || !out) {
    return;
  }
  var template = out.getAttribute("data-template") || "__CONTINENT__";
  function show() {
    var option = select.options[select.selectedIndex];
    var continent = option ? option.getAttribute("data-continent") : null;
    if (continent) {
      out.textContent = template.replace("__CONTINENT__", continent);
      out.hidden = false;
    } else {
      out.textContent = "";
      out.hidden = true;
    }
  }
  select.addEventListener("change", show);
  show();
})();
