/* The sign form: show the continent of the chosen country, and move to the errors after a
   refused submission. The form works without this script. */
(function () {
  "use strict";
  var summary = document.getElementById("error-summary");
  if (summary) {
    // The form's action ends in #error-summary, so the browser itself moves there after a
    // refused submission; focusing it here too covers browsers that only scroll.
    summary.focus();
    // A link in the summary moves the focus into its field, with the field's label in view.
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("a[href^='#']");
      var input = link && document.getElementById(link.getAttribute("href").slice(1));
      if (!input) {
        return;
      }
      event.preventDefault();
      var holder = input.closest(".field") || input;
      holder.scrollIntoView();
      input.focus({ preventScroll: true });
    });
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
