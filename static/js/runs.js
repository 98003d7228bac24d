/*
 * Stepwise: the runs pages.
 *
 *   tr[data-href]       a click anywhere in a run's row opens it (the row's
 *                       first cell holds the real link, for keyboards and
 *                       for opening in a new tab).
 *   form.run-filters    the runs list's filters drop empty values from the
 *                       address they push.
 *   #run-live           the run detail polls itself while the run is active;
 *                       each swap would close the <details> the reader opened
 *                       (a step's messages), so their open state is carried
 *                       over from the old content to the new, and a change
 *                       of the run's status is announced to screen readers.
 */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var row = event.target.closest("tr[data-href]");
    if (!row) return;
    if (event.target.closest("a, button, input, select, textarea, label")) return;
    if (window.getSelection && String(window.getSelection()).length > 0) return; // selecting text
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button === 1) {
      window.open(row.dataset.href, "_blank", "noopener");
      return;
    }
    window.location.assign(row.dataset.href);
  });

  // Filters left at "any" stay out of the address: ?status=failed, not ?status=failed&trigger=&…
  document.addEventListener("htmx:configRequest", function (event) {
    var form = event.detail.elt;
    if (!form.matches || !form.matches("form.run-filters")) return;
    var data = event.detail.formData;
    Array.from(data.keys()).forEach(function (key) {
      if (data.getAll(key).every(function (value) { return value === ""; })) data.delete(key);
    });
  });

  var openDetails = null;
  var statusBefore = null;

  function statusText() {
    var badge = document.getElementById("run-status");
    return badge ? badge.textContent.trim() : null;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "run-live") return;
    openDetails = Array.prototype.map.call(target.querySelectorAll("details[open][id]"), function (d) {
      return d.id;
    });
    statusBefore = statusText();
  });

  document.addEventListener("htmx:afterSwap", function () {
    if (!openDetails) return;
    openDetails.forEach(function (id) {
      var details = document.getElementById(id);
      if (details) details.open = true;
    });
    openDetails = null;
    // The swapped-in badge is new, so no live region would notice the change: say it.
    var now = statusText();
    var announcer = document.getElementById("sr-status");
    if (announcer && now && now !== statusBefore) announcer.textContent = "Run " + now.toLowerCase() + ".";
  });
})();
