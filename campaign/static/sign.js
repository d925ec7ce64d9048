/* The sign form: show the continent of the chosen country. The form works without it. */
(function () {
  "use strict";
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
