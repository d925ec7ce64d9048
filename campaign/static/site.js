/* Public pages: focus why a request was refused, keep the count current, and copy links and
   snippets. Every page works without this script: the count is right when the page loads,
   "copy link" is a link. */
(function () {
  "use strict";

  // A page that came back instead of doing what was asked (the letter closed meanwhile, a
  // lost session) says why in #error-summary at its top: focus it, so it is seen and read
  // out first. (sign.js does the same for the sign form's own errors.)
  var summary = document.getElementById("error-summary");
  if (summary && document.activeElement !== summary) {
    summary.focus();
  }

  var REFRESH_SECONDS = 15;
  var lang = document.documentElement.lang || "en";
  var plurals = window.Intl && Intl.PluralRules ? new Intl.PluralRules(lang) : null;
  // Digits grouped as the server writes them ("1,234", "1 234", "1.234").
  // "always": Spanish CLDR leaves 4 digits ungrouped ("1234"), Babel groups them ("1.234").
  var digits = window.Intl && Intl.NumberFormat ? new Intl.NumberFormat(lang, { useGrouping: "always" }) : null;

  // The server's forms are [the CLDR "one" form, every other form] (see campaign/i18n.py).
  function counted(forms, num) {
    var category = plurals ? plurals.select(num) : (num === 1 ? "one" : "other");
    return forms[category === "one" ? 0 : 1].replace("%(num)d", digits ? digits.format(num) : String(num));
  }

  function restate(element, data) {
    if (!data.signatures) {
      return element.getAttribute("data-live-empty");
    }
    var forms = JSON.parse(element.getAttribute("data-live-forms"));
    var text = element.getAttribute("data-live-template");
    Object.keys(forms).forEach(function (key) {
      text = text.split("{" + key + "}").join(counted(forms[key], data[key]));
    });
    return text;
  }

  function live(element) {
    var url = element.getAttribute("data-live");
    var target = element.querySelector("[data-live-text]") || element;
    var shown = element.getAttribute("data-live-numbers");
    var every = parseFloat(element.getAttribute("data-live-every")) || REFRESH_SECONDS;

    function refresh() {
      if (document.hidden || !window.fetch) {
        return;
      }
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data || typeof data.signatures !== "number") {
            return;
          }
          var numbers = [data.signatures, data.countries, data.continents].join(" ");
          if (numbers !== shown) {
            shown = numbers;
            // The element is aria-live="polite": a changed count is read out once.
            target.textContent = restate(element, data);
          }
        })
        .catch(function () { /* offline for a moment: the next round tries again */ });
    }

    window.setInterval(refresh, Math.max(every, 1) * 1000);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) {
        refresh();
      }
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-live]"), live);

  // Copy to the clipboard where the browser allows it; otherwise the link still works.
  function announce(from, message) {
    var section = from.closest("section") || document;
    var status = section.querySelector(".copy-status");
    if (status) {
      status.textContent = "";
      window.setTimeout(function () { status.textContent = message; }, 50);
    }
  }

  if (navigator.clipboard && window.isSecureContext) {
    Array.prototype.forEach.call(document.querySelectorAll("[data-copy]"), function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        navigator.clipboard.writeText(link.getAttribute("data-copy")).then(function () {
          announce(link, link.getAttribute("data-copied"));
        }, function () {
          window.location.href = link.href;
        });
      });
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-copy-from]"), function (button) {
    var source = document.getElementById(button.getAttribute("data-copy-from"));
    if (!source) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      source.focus();
      source.select();
      var done = function () { announce(button, button.getAttribute("data-copied")); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(source.value).then(done, function () {});
      } else if (document.execCommand && document.execCommand("copy")) {
        done();
      }
    });
  });
})();
