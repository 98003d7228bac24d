/*
 * Stepwise: what htmx and HTML do not do by themselves; every page works without it.
 * Requests, confirmations (hx-confirm), autosave delays (hx-trigger), partials (inherited
 * hx-target, chosen by the server from request.htmx), polls that keep state (idiomorph) and
 * toasts (HX-Trigger) are htmx's; the progress bar is CSS, menus are <details name>. The CSP
 * forbids inline scripts, so what is left hangs on data attributes, each saying why it is here.
 */
(function () {
  "use strict";

  // A morph swap keeps elements, focus and scroll, but would close a <details> the reader
  // opened (its "open" is not in the server's markup): keep that one attribute.
  if (window.Idiomorph) {
    window.Idiomorph.defaults.callbacks.beforeAttributeUpdated = function (name, element, change) {
      return !(name === "open" && change === "remove");
    };
  }

  // <details class="dropdown"> has no outside click: a click elsewhere or on an item closes it.
  function closeMenus(keep, restoreFocus) {
    document.querySelectorAll("details.dropdown[open]").forEach(function (details) {
      if (keep && details.contains(keep)) return;
      var focus = restoreFocus && details.contains(document.activeElement);
      details.removeAttribute("open");
      if (focus) details.querySelector("summary").focus();
    });
  }
  document.addEventListener("click", function (event) {
    closeMenus(event.target.closest(".dropdown-menu a, .dropdown-menu button") ? null : event.target, false);
  });

  // Keyboard menus: Escape closes, arrows open a menu and move between its items (wrapping).
  var MOVES = { ArrowDown: 1, ArrowUp: -1, Home: 0, End: 0 };
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") return closeMenus(null, true);
    var details = event.target.closest && event.target.closest("details.dropdown");
    if (!details || !(event.key in MOVES) || event.altKey || event.ctrlKey || event.metaKey) return;
    var onSummary = event.target.matches("summary") && event.target.parentElement === details;
    if (onSummary && MOVES[event.key]) details.setAttribute("open", "");
    else if (!details.open || !event.target.closest(".dropdown-menu")) return;
    event.preventDefault();
    var items = Array.prototype.filter.call(details.querySelectorAll(".dropdown-menu .menu-item"), function (item) {
      return !item.disabled && item.getClientRects().length > 0;
    });
    var at = onSummary ? -1 : items.indexOf(event.target.closest(".menu-item"));
    var last = items.length - 1;
    var next = event.key === "Home" ? 0 : event.key === "End" ? last
      : at < 0 ? (MOVES[event.key] > 0 ? 0 : last) : (at + MOVES[event.key] + items.length) % items.length;
    if (items.length) items[next].focus();
  });

  function dismiss(element) {
    if (!element || element.classList.contains("is-leaving")) return;
    element.classList.add("is-leaving");
    window.setTimeout(function () { element.remove(); }, 260); // after its transition
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss]");
    if (button) dismiss(button.closest(".alert, .toast"));
  });

  // Timers are not htmx's: an alert fades after a while, later while hovered or focused.
  function dismissLater(element, delay) {
    window.setTimeout(function () {
      if (element.matches(":hover, :focus-within")) dismissLater(element, 1500);
      else dismiss(element);
    }, delay);
  }
  var scheduled = new WeakSet();
  document.addEventListener("htmx:load", function () {
    document.querySelectorAll(".alert[data-autodismiss]").forEach(function (alert) {
      if (!scheduled.has(alert)) dismissLater(alert, 5000);
      scheduled.add(alert);
    });
  });

  // An HX-Trigger event carries data, not markup: a toast is a copy of the page's
  // <template id="toast-LEVEL"> (base.html) with the message set as text.
  function toast(level, message) {
    var template = document.getElementById("toast-" + level) || document.getElementById("toast-info");
    var region = document.getElementById("toasts");
    if (!template || !region || !message) return;
    var element = template.content.firstElementChild.cloneNode(true);
    element.querySelector(".toast-body").textContent = String(message);
    region.appendChild(element);
    if (level !== "error") dismissLater(element, 6000);
  }
  document.addEventListener("toast", function (event) {
    toast(event.detail.level, event.detail.message || event.detail.value);
  });

  // A failed htmx answer carries its error toast (config/lib/htmx_errors.py); no answer at all
  // (offline, timed out) cannot, so the error template's data-* say why.
  function failure(kind) {
    var template = document.getElementById("toast-error");
    return template && template.getAttribute("data-" + kind);
  }
  ["sendError", "timeout"].forEach(function (name) {
    document.addEventListener("htmx:" + name, function () { toast("error", failure(name)); });
  });

  // The clipboard is a browser API: [data-copy="text"] or [data-copy-target="#id"] copies
  // (by hand where plain http is not a "secure context"), and the label says "Copied".
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = document.createElement("textarea");
    area.value = text;
    area.readOnly = true;
    area.className = "clipboard-helper";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (error) { ok = false; }
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }
  function copied(button, ok) {
    var label = button.querySelector(".copy-label") || (button.children.length === 0 ? button : null);
    var status = document.getElementById("sr-status");
    if (label && !label.hasAttribute("data-label")) label.setAttribute("data-label", label.textContent);
    button.style.minWidth = button.offsetWidth + "px"; // as wide as before
    if (label) label.textContent = ok ? "Copied" : "Copy failed";
    button.classList.toggle("is-copied", ok);
    window.clearTimeout(button._copyTimer);
    button._copyTimer = window.setTimeout(function () {
      if (label) label.textContent = label.getAttribute("data-label");
      button.classList.remove("is-copied");
      button.style.minWidth = "";
    }, 1600);
    if (status) status.textContent = "";
    window.setTimeout(function () { // emptied first, so the same words are said again
      if (status) status.textContent = ok ? "Copied to the clipboard" : "Could not copy; select the text and copy it by hand";
    }, 50);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy], [data-copy-target]");
    if (!button) return;
    event.preventDefault();
    var selector = button.getAttribute("data-copy-target");
    var target = selector ? document.querySelector(selector) : null;
    var field = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement;
    var text = button.getAttribute("data-copy") || (field ? target.value : target ? target.textContent.trim() : "");
    if (text) copyText(text).then(function () { copied(button, true); }, function () { copied(button, false); });
  });

  // The back/forward cache restores a page without asking the server (despite no-store): a
  // secret shown once ([data-shown-once]) is emptied when left, and it or an editor reloaded.
  window.addEventListener("pagehide", function () {
    if (!document.querySelector("[data-shown-once]")) return;
    document.documentElement.setAttribute("data-shown-once-left", "");
    document.body.replaceChildren();
  });
  window.addEventListener("pageshow", function (event) {
    var stale = document.documentElement.hasAttribute("data-shown-once-left") || document.getElementById("editor");
    if (event.persisted && stale) window.location.reload();
  });

  // A table row cannot be a link: a click anywhere in tr[data-href] opens it (its first cell
  // holds the real link, for keyboards and new tabs), unless text is being selected.
  document.addEventListener("click", function (event) {
    var row = event.target.closest("tr[data-href]");
    if (!row || event.target.closest("a, button, input, select, textarea, label")) return;
    if (String(window.getSelection()).length > 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button === 1) window.open(row.dataset.href, "_blank", "noopener");
    else window.location.assign(row.dataset.href);
  });
})();
