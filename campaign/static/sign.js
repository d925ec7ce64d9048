/* The sign form: show the continent of the chosen country, move to the errors after a
   refused submission, and send a filled form once however often Sign is tapped. The form
   works without this script. */
(function () {
  "use strict";
  var form = document.querySelector("#sign form");
  var button = form && form.querySelector("button[type='submit']");
  if (button) {
    var sent = false;
    form.addEventListener("submit", function (event) {
      if (sent) {
        // A second tap, or Enter, while the first submission is on its way.
        event.preventDefault();
        return;
      }
      // The form is novalidate (the server's messages are the clearer ones): a form the
      // browser finds incomplete is sent as it is, and may be sent again after the answer.
      if (!form.checkValidity()) {
        return;
      }
      sent = true;
      button.disabled = true;
      form.setAttribute("aria-busy", "true");
    });
    // Back to the page (the browser's back/forward cache keeps the disabled button): the
    // form is usable again, to sign another letter or correct a detail.
    window.addEventListener("pageshow", function () {
      sent = false;
      button.disabled = false;
      form.removeAttribute("aria-busy");
    });
  }
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
